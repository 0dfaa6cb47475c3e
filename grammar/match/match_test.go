package match

import (
	"errors"
	"net/url"
	"testing"
)

func mustTarget(t testing.TB, raw string) Target {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	tg, err := ParseURL(u)
	if err != nil {
		t.Fatalf("%s: %v", raw, err)
	}
	return tg
}

func TestMatches(t *testing.T) {
	cases := []struct {
		address, target string
		want            bool
	}{
		{"https://h.test", "https://h.test/anything", true},
		{"https://h.test", "https://H.TEST./x", true},
		{"https://h.test", "https://h.test:443/x", true},
		{"https://h.test", "https://h.test:8443/x", false},
		{"https://h.test", "http://h.test/x", false},
		{"http://h.test", "http://h.test:80/", true},
		{"https://h.test/gitlab", "https://h.test/gitlab", true},
		{"https://h.test/gitlab/", "https://h.test/gitlab/a/b", true},
		{"https://h.test/gitlab", "https://h.test/gitlabx", false},
		{"https://h.test/gitlab", "https://h.test/other", false},
		{"https://h.test/gitlab", "https://h.test/gitlab/../other", false},
		{"https://h.test/gitlab", "https://h.test/gitlab/%2e%2e/other", false},
		{"https://h.test/gitlab", "https://h.test/gitlab%2Fother", false},
		{"https://h.test/gitlab", "https://h.test/gitlab/..%2Fother", false},
		{"https://h.test/gitlab", "https://h.test/gitlab/a%5C..%5Cb", false},
		// GitLab's API names a project by its encoded full path.
		{"https://h.test/gitlab", "https://h.test/gitlab/api/v4/projects/group%2Fapp", true},
		{"https://h.test/gitlab", "https://h.test/gitlab/a%2F..%2F..%2Fother", false},
		{"https://h.test/gitlab", "https://h.test/gitlab/a%2F.", false},
		{"https://h.test/gitlab", "https://h.test/gitlab/%2E%2E%2Fother", false},
		{"https://h.test", "https://h.test/a/./b", false},
		{"https://h.test", "https://h.test.evil.test/", false},
		{"https://h.test", "https://evil.test/h.test", false},
		{"https://[::1]:8443/x", "https://[::1]:8443/x/y", true},
		// Regression: ";params" let "..;" climb out of the prefix on servers
		// that strip them before resolving dot segments.
		{"https://h.test/gitlab", "https://h.test/gitlab/..;/admin", false},
		{"https://h.test/gitlab", "https://h.test/gitlab/%2e%2e;x/admin", false},
		{"https://h.test/gitlab", "https://h.test/gitlab/.%2e;/admin", false},
		{"https://h.test/gitlab", "https://h.test/gitlab;x/admin", false},
		// Double encoding.
		{"https://h.test/gitlab", "https://h.test/gitlab/%252e%252e/admin", false},
	}
	for _, c := range cases {
		a, err := ParseAddress(c.address)
		if err != nil {
			t.Fatalf("%s: %v", c.address, err)
		}
		if _, got := a.Matches(mustTarget(t, c.target)); got != c.want {
			t.Errorf("%s vs %s: %v, want %v", c.address, c.target, got, c.want)
		}
	}
}

// TestNonASCIIHostsAreRefused pins that hosts are not Unicode case-folded:
// the Kelvin sign used to fold onto "k" and match kube.test.
func TestNonASCIIHostsAreRefused(t *testing.T) {
	u, _ := url.Parse("https://\u212Aube.test/")
	if _, err := ParseURL(u); err == nil {
		t.Fatal("a non-ASCII host parsed as a target")
	}
}

func TestUserinfoNeverMatches(t *testing.T) {
	u, _ := url.Parse("https://h.test@evil.test/")
	if _, err := ParseURL(u); !errors.Is(err, ErrUserinfo) {
		t.Errorf("got %v, want ErrUserinfo", err)
	}
}

func TestBestPicksMostSpecific(t *testing.T) {
	var cands []Candidate
	for i, a := range []string{"https://h.test", "https://h.test/a", "https://h.test/a/b", "https://h.test/a"} {
		addr, _ := ParseAddress(a)
		cands = append(cands, Candidate{Index: i, Address: addr})
	}
	for target, want := range map[string]int{
		"https://h.test/a/b/c": 2, "https://h.test/a/x": 1, "https://h.test/z": 0,
	} {
		c, ok := Best(cands, mustTarget(t, target))
		if !ok || c.Index != want {
			t.Errorf("%s: got %d %v, want %d", target, c.Index, ok, want)
		}
	}
}

func TestBelow(t *testing.T) {
	a, _ := ParseAddress("https://h.test/gitlab")
	for in, want := range map[string]string{"/gitlab/x/y": "/x/y", "/gitlab": "", "/gitlab/": "/"} {
		if got := a.Below(in); got != want {
			t.Errorf("Below(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseAuthority(t *testing.T) {
	for in, ok := range map[string]bool{
		"h.test:443": true, "[::1]:8443": true, "h.test": false, "h.test:0": false,
		"h.test:99999": false, "h.test:+1": false, "a@b:443": false, ":443": false,
	} {
		if _, err := ParseAuthority(in); (err == nil) != ok {
			t.Errorf("ParseAuthority(%q): %v", in, err)
		}
	}
}

// TestHostGrammarAllowsOneTrailingDotAndNoEmptyLabel pins one answer for
// every parser: ParseAuthority("0..:1") returned host "0." because only
// one trailing dot was dropped. Exactly one trailing dot is allowed and
// dropped; any other empty label is refused by the authority, URL and
// address parsers alike.
func TestHostGrammarAllowsOneTrailingDotAndNoEmptyLabel(t *testing.T) {
	for host, want := range map[string]string{
		"h.test": "h.test", "H.Test.": "h.test", "0.": "0", "10.0.0.1.": "10.0.0.1",
		"0..": "", "h.test..": "", ".h.test": "", "h..test": "", "..": "", ".": "",
	} {
		t.Run(host, func(t *testing.T) {
			for name, parse := range map[string]func() (string, error){
				"ParseAuthority": func() (string, error) { tg, err := ParseAuthority(host + ":1"); return tg.Host, err },
				"ParseURL": func() (string, error) {
					tg, err := ParseURL(&url.URL{Scheme: "https", Host: host, Path: "/"})
					return tg.Host, err
				},
				"ParseAddress": func() (string, error) { a, err := ParseAddress("https://" + host + "/"); return a.Host, err },
			} {
				got, err := parse()
				if want == "" {
					if err == nil {
						t.Errorf("%s accepted %q as host %q", name, host, got)
					}
					continue
				}
				if err != nil || got != want {
					t.Errorf("%s(%q) = %q, %v; want %q", name, host, got, err, want)
				}
			}
			if n := NormalizeHost(host); want == "" && n != "" && !hasEmptyLabel(n) {
				t.Errorf("NormalizeHost(%q) = %q, a valid host", host, n)
			}
		})
	}
}

func BenchmarkBest(b *testing.B) {
	var cands []Candidate
	for i, a := range []string{"https://github.example.test", "https://gitlab.example.test/group",
		"https://reg.example.test", "https://auth.example.test/token", "https://h.test/a/b/c"} {
		addr, _ := ParseAddress(a)
		cands = append(cands, Candidate{Index: i, Address: addr})
	}
	u, _ := url.Parse("https://h.test/a/b/c/repo.git/info/refs?service=git-upload-pack")
	b.ReportAllocs()
	for b.Loop() {
		tg, _ := ParseURL(u)
		if _, ok := Best(cands, tg); !ok {
			b.Fatal("no match")
		}
	}
}
