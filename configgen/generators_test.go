package configgen

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// TestGitconfigAddresses pins the URL forms: one trailing slash on both
// sides, whatever the address and proxy address carry.
func TestGitconfigAddresses(t *testing.T) {
	tests := []struct {
		name, address, proxy string
		wantURL, wantInstead string
	}{
		{name: "no path, no slash", address: "https://github.com", proxy: "http://p/namespaces/a/connectors/c",
			wantURL: "http://p/namespaces/a/connectors/c/", wantInstead: "https://github.com/"},
		{name: "no path, slash", address: "https://github.com/", proxy: "http://p/namespaces/a/connectors/c/",
			wantURL: "http://p/namespaces/a/connectors/c/", wantInstead: "https://github.com/"},
		{name: "prefix, no slash", address: "https://gitlab.example.com/group/sub", proxy: "http://p/namespaces/a/connectors/c",
			wantURL: "http://p/namespaces/a/connectors/c/", wantInstead: "https://gitlab.example.com/group/sub/"},
		{name: "prefix, slashes", address: "https://gitlab.example.com/group//", proxy: "http://c-c.a.svc//",
			wantURL: "http://c-c.a.svc/", wantInstead: "https://gitlab.example.com/group/"},
		{name: "port", address: "http://gitea.gitea.svc:3000", proxy: "http://p:8080/namespaces/a/connectors/c",
			wantURL: "http://p:8080/namespaces/a/connectors/c/", wantInstead: "http://gitea.gitea.svc:3000/"},
		{name: "comment characters are quoted", address: "https://git.example.com/a#b;c", proxy: "http://p/x",
			wantURL: "http://p/x/", wantInstead: `"https://git.example.com/a#b;c/"`},
		{name: "quotes and backslashes are escaped", address: `https://git.example.com/a"b\c`, proxy: `http://p/x"y`,
			wantURL: `http://p/x\"y/`, wantInstead: `"https://git.example.com/a\"b\\c/"`},
	}
	header := "Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(":"+testToken))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Connector{Object: newConnector("a", "c", "git", tt.address), ProxyAddress: tt.proxy}
			got, err := gitconfig([]Connector{c}, testToken)
			if err != nil {
				t.Fatal(err)
			}
			want := "[http \"" + tt.wantURL + "\"]\n\textraHeader = " + header + "\n\tfollowRedirects = false\n" +
				"[url \"" + tt.wantURL + "\"]\n\tinsteadOf = " + tt.wantInstead + "\n"
			if string(got) != want {
				t.Fatalf("got:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

func TestGitconfigWithoutAddressHasHeaderOnly(t *testing.T) {
	c := Connector{Object: newConnector("a", "c", "git", ""), ProxyAddress: "http://p/x"}
	got, err := gitconfig([]Connector{c}, testToken)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(got), "insteadOf") || !strings.Contains(string(got), `[http "http://p/x/"]`) {
		t.Fatalf("got:\n%s", got)
	}
}

// TestGitconfigRejectsConfigInjection pins that an address with a newline
// cannot add sections to .gitconfig.
func TestGitconfigRejectsConfigInjection(t *testing.T) {
	c := Connector{Object: newConnector("a", "c", "git", "https://x\n[http]\n\tsslVerify = false"), ProxyAddress: "http://p/x"}
	_, err := gitconfig([]Connector{c}, testToken)
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), `connector "a/c" spec.address`) {
		t.Fatalf("err = %v, want ErrInvalid naming spec.address", err)
	}
}

func TestRegistryConfig(t *testing.T) {
	cs := []Connector{
		{Object: newConnector("team-a", "one", "oci", "https://r1.example.com"), ProxyAddress: "http://Proxy.svc/namespaces/team-a/connectors/one"},
		{Object: newConnector("team-b", "two", "oci", "https://r2.example.com"), ProxyAddress: "http://proxy.svc/namespaces/team-b/connectors/two"},
		{Object: newConnector("team-b", "three", "oci", "https://r3.example.com"), ProxyAddress: "https://c-three.team-b.svc:8443"},
	}
	out, err := registryConfig(cs, testToken)
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Auths map[string]struct {
			Auth string `json:"auth"`
		} `json:"auths"`
	}
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"proxy.svc":               "team-a/one:" + testToken,
		"c-three.team-b.svc:8443": "team-b/three:" + testToken,
	}
	if len(cfg.Auths) != len(want) {
		t.Fatalf("auths = %v", cfg.Auths)
	}
	for host, cred := range want {
		raw, err := base64.StdEncoding.DecodeString(cfg.Auths[host].Auth)
		if err != nil {
			t.Fatal(err)
		}
		if string(raw) != cred {
			t.Errorf("auths[%q] = %q, want %q", host, raw, cred)
		}
	}
}

func TestBuildkitdSkipsHTTPSProxyHosts(t *testing.T) {
	cs := []Connector{
		{Object: newConnector("a", "one", "oci", "https://r1"), ProxyAddress: "https://secure.example.com/namespaces/a/connectors/one"},
		{Object: newConnector("a", "two", "oci", "https://r2"), ProxyAddress: "http://proxy.svc:8080/namespaces/a/connectors/two"},
		{Object: newConnector("a", "three", "oci", "https://r3"), ProxyAddress: "http://proxy.svc:8080/namespaces/a/connectors/three"},
	}
	out, err := buildkitd(cs, testToken)
	if err != nil {
		t.Fatal(err)
	}
	if want := "[registry.\"proxy.svc:8080\"]\n  http = true\n"; string(out) != want {
		t.Fatalf("got:\n%s\nwant:\n%s", out, want)
	}
}

func TestGeneratorsRejectProxyAddressWithoutHost(t *testing.T) {
	cs := []Connector{{Object: newConnector("a", "c", "oci", "https://r"), ProxyAddress: "/namespaces/a/connectors/c"}}
	for name, gen := range map[string]func([]Connector, string) ([]byte, error){"registry-config": registryConfig, "buildkitd": buildkitd} {
		if _, err := gen(cs, testToken); err == nil || strings.Contains(err.Error(), testToken) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
}
