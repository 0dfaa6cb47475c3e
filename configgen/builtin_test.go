package configgen

import (
	"net/url"
	"os/exec"
	"strings"
	"testing"

	"github.com/connectors-node/connectors-node/grammar/publicurl"
)

func TestBuiltinFilesAlwaysWritten(t *testing.T) {
	files := render(t, baseInput(t, mount(newConnector("default", "github", "git", "https://github.com"), nil)))
	want := []string{
		FileEnv, FileCABundle, FileCACertLegacy, FileCACert, FileProxyAddress,
		FileContextCA, FileToken, FileHTTPProxy, FileHTTPSProxy,
	}
	got := sortedKeys(files)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("files = %q, want %q", got, want)
	}
	if string(files[FileToken]) != testToken {
		t.Fatalf("context.token = %q", files[FileToken])
	}
}

func TestForwardProxyURL(t *testing.T) {
	a := newConnector("team-a", "gitlab", "git", "https://gitlab.example.com")
	b := newConnector("team-b", "github", "git", "https://github.com")
	tests := []struct {
		name     string
		proxyURL string
		cs       []Connector
		want     string
	}{
		{name: "one", proxyURL: testProxyURL, cs: []Connector{mount(a, nil)},
			want: "http://team-a%2Fgitlab:" + testToken + "@connectors-proxy.connectors-system.svc"},
		{name: "two in volume order", proxyURL: testProxyURL, cs: []Connector{mount(b, nil), mount(a, nil)},
			want: "http://team-b%2Fgithub,team-a%2Fgitlab:" + testToken + "@connectors-proxy.connectors-system.svc"},
		{name: "repeat named once", proxyURL: testProxyURL, cs: []Connector{mount(a, nil), mount(b, nil), mount(a, nil)},
			want: "http://team-a%2Fgitlab,team-b%2Fgithub:" + testToken + "@connectors-proxy.connectors-system.svc"},
		{name: "port and trailing slash", proxyURL: "http://10.0.0.7:3128/", cs: []Connector{mount(a, nil)},
			want: "http://team-a%2Fgitlab:" + testToken + "@10.0.0.7:3128"},
		{name: "https proxy", proxyURL: "https://proxy.example.com", cs: []Connector{mount(a, nil)},
			want: "https://team-a%2Fgitlab:" + testToken + "@proxy.example.com"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := baseInput(t, tt.cs...)
			in.ProxyURL = publicurl.MustParse(tt.proxyURL)
			files := render(t, in)
			if got := string(files[FileHTTPProxy]); got != tt.want {
				t.Fatalf("http.proxy = %q, want %q", got, tt.want)
			}
			if string(files[FileHTTPSProxy]) != tt.want {
				t.Fatalf("https.proxy = %q", files[FileHTTPSProxy])
			}
			// What the proxy reads back from Proxy-Authorization.
			u, err := url.Parse(tt.want)
			if err != nil {
				t.Fatal(err)
			}
			if pw, _ := u.User.Password(); pw != testToken {
				t.Fatalf("password = %q", pw)
			}
		})
	}
}

func TestProxyAddressFileIsLastConnector(t *testing.T) {
	in := baseInput(t,
		mount(newConnector("team-a", "gitlab", "git", "https://gitlab.example.com"), nil),
		mount(newConnector("team-b", "harbor", "oci", "https://harbor.example.com", withProxyStatus("https://c-harbor.team-b.svc")), nil),
	)
	if got := string(render(t, in)[FileProxyAddress]); got != "https://c-harbor.team-b.svc" {
		t.Fatalf("connector.status.proxyAddress = %q", got)
	}
}

func TestCABundle(t *testing.T) {
	tests := []struct{ roots, ca, want string }{
		{roots: "R\n", ca: "C\n", want: "R\nC\n"},
		{roots: "R", ca: "C\n", want: "R\nC\n"},
		{roots: "", ca: "C\n", want: "C\n"},
	}
	for _, tt := range tests {
		if got := string(caBundle([]byte(tt.roots), []byte(tt.ca))); got != tt.want {
			t.Errorf("caBundle(%q, %q) = %q, want %q", tt.roots, tt.ca, got, tt.want)
		}
	}
}

// TestEnvFileSourcesInShell reads .env back through a real shell.
func TestEnvFileSourcesInShell(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	tricky := "it's $HOME `id` \\"
	env, err := envFile("http://a%2Fb:"+tricky+"@h", "localhost,.svc")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(t.Context(), sh, "-c", "set -a; eval \"$1\"; printf '%s|%s|%s' \"$https_proxy\" \"$NO_PROXY\" \"$HTTP_PROXY\"", "sh", string(env)).Output()
	if err != nil {
		t.Fatal(err)
	}
	want := "http://a%2Fb:" + tricky + "@h|localhost,.svc|http://a%2Fb:" + tricky + "@h"
	if string(out) != want {
		t.Fatalf("shell read %q, want %q", out, want)
	}
}
