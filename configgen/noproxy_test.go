package configgen

import (
	"testing"

	"github.com/connectors-node/connectors-node/grammar/publicurl"
)

func TestNoProxy(t *testing.T) {
	const defaults = "localhost,127.0.0.1,::1,.svc,.svc.cluster.local,.cluster.local"
	const proxyHost = "connectors-proxy.connectors-system.svc"
	tests := []struct {
		name     string
		proxyURL string
		domain   string
		cs       []Connector
		want     string
	}{
		{name: "the cluster domain sets the cluster-local suffixes",
			domain: "corp.example.",
			cs:     []Connector{mount(newConnector("a", "github", "git", "https://github.com"), nil)},
			want:   "localhost,127.0.0.1,::1,.svc,.svc.corp.example,.corp.example," + proxyHost},
		{name: "a tool in the cluster domain drops its suffixes",
			domain: "corp.example",
			cs:     []Connector{mount(newConnector("a", "nexus", "oci", "https://nexus.tools.svc.corp.example"), nil)},
			want:   "localhost,127.0.0.1,::1,.svc," + proxyHost},
		{name: "external tool keeps every default",
			cs:   []Connector{mount(newConnector("a", "github", "git", "https://github.com"), nil)},
			want: defaults + "," + proxyHost},
		{name: "tool in .svc drops .svc but keeps the proxy host",
			cs:   []Connector{mount(newConnector("a", "gitlab", "git", "http://gitlab.gitlab.svc:8080/"), nil)},
			want: "localhost,127.0.0.1,::1,.svc.cluster.local,.cluster.local," + proxyHost},
		{name: "tool in .svc.cluster.local drops both cluster.local suffixes",
			cs:   []Connector{mount(newConnector("a", "nexus", "oci", "https://NEXUS.tools.svc.cluster.local."), nil)},
			want: "localhost,127.0.0.1,::1,.svc," + proxyHost},
		{name: "address extension counts",
			cs: []Connector{mount(newConnector("a", "harbor", "oci", "https://harbor.example.com",
				withExtension("realm", "http://token.auth.svc/service/token")), nil)},
			want: "localhost,127.0.0.1,::1,.svc.cluster.local,.cluster.local," + proxyHost},
		{name: "loopback tool drops loopback entries",
			cs: []Connector{
				mount(newConnector("a", "local", "git", "http://127.0.0.1:3000"), nil),
				mount(newConnector("a", "local6", "git", "http://[0:0::1]:3000"), nil),
				mount(newConnector("a", "localhost", "git", "https://registry.localhost"), nil),
			},
			want: ".svc,.svc.cluster.local,.cluster.local," + proxyHost},
		{name: "reverse-proxy hosts from status are added",
			cs: []Connector{mount(newConnector("a", "harbor", "oci", "https://harbor.example.com",
				withProxyStatus("https://connectors.example.net/x")), nil)},
			want: defaults + "," + proxyHost + ",connectors.example.net"},
		{name: "proxy given by IP with port",
			proxyURL: "http://10.96.0.20:8080",
			cs:       []Connector{mount(newConnector("a", "github", "git", "https://github.com"), nil)},
			want:     defaults + ",10.96.0.20," + proxyHost},
		{name: "address without scheme",
			cs:   []Connector{mount(newConnector("a", "gitlab", "git", "gitlab.gitlab.svc:8080"), nil)},
			want: "localhost,127.0.0.1,::1,.svc.cluster.local,.cluster.local," + proxyHost},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := baseInput(t, tt.cs...)
			if tt.proxyURL != "" {
				in.ProxyURL = publicurl.MustParse(tt.proxyURL)
			}
			in.ClusterDomain = tt.domain
			proxy, err := checkInput(&in)
			if err != nil {
				t.Fatal(err)
			}
			if got := noProxy(&in, proxy); got != tt.want {
				t.Fatalf("no_proxy = %q\nwant       %q", got, tt.want)
			}
		})
	}
}

func TestNoProxyMatch(t *testing.T) {
	tests := []struct {
		entry, host string
		want        bool
	}{
		{".svc", "gitlab.gitlab.svc", true},
		{".svc", "svc", true},
		{".svc", "gitlab.svc.cluster.local", false},
		{"example.com", "example.com", true},
		{"example.com", "git.example.com", true},
		{"example.com", "badexample.com", false},
		{"localhost", "registry.localhost", true},
		{"127.0.0.1", "127.0.0.1", true},
		{"127.0.0.1", "127.0.0.2", false},
		{"::1", "0:0::1", true},
		{"::1", "localhost", false},
	}
	for _, tt := range tests {
		if got := noProxyMatch(tt.entry, tt.host); got != tt.want {
			t.Errorf("noProxyMatch(%q, %q) = %v, want %v", tt.entry, tt.host, got, tt.want)
		}
	}
}
