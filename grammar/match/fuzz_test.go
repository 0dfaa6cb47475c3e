package match

import (
	"net/url"
	"strings"
	"testing"

	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
)

func FuzzMatch(f *testing.F) {
	for _, s := range [][2]string{
		{"https://git.example.com/group", "https://git.example.com/group/repo.git"},
		{"https://git.example.com/group", "https://git.example.com/groupx"},
		{"https://Git.Example.com.:443/", "https://git.example.com/a"},
		{"http://[::1]:8080/a", "http://[::1]:8080/a/%2e%2e/b"},
		{"https://h/a", "https://u@h/a"},
		{"https://h/a%2Fb", "https://h/a%2Fb/c"},
	} {
		f.Add(s[0], s[1])
	}
	f.Add("https://0..:1/", "https://0.:1/")
	f.Fuzz(func(t *testing.T, address, target string) {
		a, err := ParseAddress(address)
		if err != nil {
			return
		}
		if hasEmptyLabel(a.Host) || NormalizeHost(a.Host) != a.Host {
			t.Fatalf("address %q parsed to host %q, which is not normalized", address, a.Host)
		}
		u, err := url.Parse(target)
		if err != nil {
			return
		}
		tg, err := ParseURL(u)
		if err != nil {
			return
		}
		if _, ok := a.Matches(tg); !ok {
			return
		}
		if u.User != nil {
			t.Fatalf("%q matched %q with userinfo", target, address)
		}
		if tg.Scheme != a.Scheme || tg.Host != a.Host || tg.Port != a.Port {
			t.Fatalf("%q matched %q across origins: %+v vs %+v", target, address, tg, a)
		}
		below := a.Below(u.EscapedPath())
		if below != "" && !strings.HasPrefix(below, "/") {
			t.Fatalf("Below(%q) = %q", u.EscapedPath(), below)
		}
		if _, unsafe := Segments(u.EscapedPath()); unsafe {
			t.Fatalf("%q matched with an unsafe path", target)
		}
	})
}

// FuzzAddressGrammar checks that ParseAddress refuses nothing the address
// grammar of the CRDs (v1alpha1.CheckAddress) accepts, so the API server
// never stores an address the proxy cannot match; and that an accepted
// address holds only characters RFC 3986 allows unencoded.
func FuzzAddressGrammar(f *testing.F) {
	for _, s := range []string{
		"https://git.example.com/group", "http://[::1]:8080/a", "https://h.test./a%20b?x=1",
		"https://h/a\nb", "https://u@h/", "https://h/a/%2e%2E/b", "https://h:65535", "http://[1]/",
		"https://h/a;b", "https://h?%zz", "https://a..b/",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if v1alpha1.CheckAddress(s) != nil {
			return
		}
		if _, err := ParseAddress(s); err != nil {
			t.Fatalf("the grammar accepts %q but ParseAddress refuses it: %v", s, err)
		}
		for i := 0; i < len(s); i++ {
			if c := s[i]; c <= ' ' || c >= 0x7f || strings.IndexByte(`<>"\{}|^`+"`", c) >= 0 {
				t.Fatalf("the grammar accepts %q with byte %#x", s, c)
			}
		}
	})
}
