package publicurl

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	good := map[string]string{
		Default:                      Default,
		"https://proxy.example:8443": "https://proxy.example:8443",
		"http://proxy/":              "http://proxy",
		"http://[::1]:8080":          "http://[::1]:8080",
		"http://Proxy.Example.":      "http://Proxy.Example.",
	}
	for in, want := range good {
		u, err := Parse(in)
		if err != nil || u.String() != want {
			t.Errorf("%q: %q %v, want %q", in, u.String(), err, want)
		}
	}
	for _, in := range []string{
		"", "proxy:8080", "ftp://proxy", "http://", "http://proxy/x", "http://u:p@proxy",
		"http://proxy?x=1", "http://proxy#f", "http://proxy?", "http://proxy#", "http://proxy:port",
		"http://proxy:99999", "http://proxy:0", "http://proxy:", "http:proxy", "http://:80",
	} {
		if _, err := Parse(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}

func TestParseErrorHidesThePassword(t *testing.T) {
	_, err := Parse("http://user:s3cret@proxy")
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("error %v", err)
	}
}

func TestParts(t *testing.T) {
	u := MustParse("http://Proxy.Example.")
	if u.Hostname() != "Proxy.Example." || u.Port() != "80" || u.Scheme() != "http" {
		t.Errorf("parts %q %q %q", u.Hostname(), u.Port(), u.Scheme())
	}
	if h, p := MustParse("https://[::1]").Hostname(), MustParse("https://[::1]").Port(); h != "::1" || p != "443" {
		t.Errorf("https IPv6: host %q port %q", h, p)
	}
	if p := MustParse("http://proxy:8080").Port(); p != "8080" {
		t.Errorf("explicit port %q", p)
	}
	if got := (URL{}).OrDefault().String(); got != Default {
		t.Errorf("OrDefault %q", got)
	}
	if got := (URL{}).String(); got != "" {
		t.Errorf("zero String %q", got)
	}
}

func TestCheckClusterDomain(t *testing.T) {
	for _, ok := range []string{DefaultClusterDomain, "corp.example", "corp.example."} {
		if err := CheckClusterDomain(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "corp,example", "Corp.Example", ".corp", "a..b"} {
		if err := CheckClusterDomain(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
