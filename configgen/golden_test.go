package configgen

import (
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/connectors-node/connectors-node/grammar/publicurl"
)

var update = flag.Bool("update", false, "rewrite testdata/golden from the current output")

// checkGolden compares files with testdata/golden/<dir>/<file>.golden, one
// golden file per rendered file and no others. With -update it rewrites
// the directory instead.
func checkGolden(t *testing.T, dir string, files map[string][]byte) {
	t.Helper()
	root := filepath.Join("testdata", "golden", dir)
	if *update {
		if err := os.RemoveAll(root); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(root, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, content := range files {
			if err := os.WriteFile(filepath.Join(root, name+".golden"), content, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatalf("%v (run go test ./configgen -run %s -update)", err, t.Name())
	}
	var want []string
	for _, e := range entries {
		want = append(want, strings.TrimSuffix(e.Name(), ".golden"))
	}
	got := sortedKeys(files)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("files = %q, golden = %q", got, want)
	}
	for _, name := range got {
		golden, err := os.ReadFile(filepath.Join(root, name+".golden"))
		if err != nil {
			t.Fatal(err)
		}
		if string(files[name]) != string(golden) {
			t.Errorf("%s differs from its golden file\n--- got\n%s\n--- want\n%s", name, files[name], golden)
		}
	}
}

// TestGolden pins every built-in file and built-in generator.
func TestGolden(t *testing.T) {
	generators := []string{GeneratorGitconfig, GeneratorRegistryConfig, GeneratorBuildkitd}
	git := newClass("git")
	registry := newClass("oci")
	tests := []struct {
		name       string
		proxyURL   string
		connectors func(public string) []Connector
	}{{
		name:     "one-connector",
		proxyURL: testProxyURL,
		connectors: func(public string) []Connector {
			c := newConnector("default", "github", "git", "https://github.com")
			return []Connector{{Object: c, Class: git, ProxyAddress: c.ProxyAddress(public)}}
		},
	}, {
		// Two namespaces; one address with a path prefix and a trailing
		// slash, one with neither; a proxy URL with a port.
		name:     "two-namespaces",
		proxyURL: "http://connectors-proxy.connectors-system.svc:8080",
		connectors: func(public string) []Connector {
			a := newConnector("team-a", "gitlab", "git", "https://gitlab.example.com/group/")
			b := newConnector("team-b", "github", "git", "https://github.com")
			return []Connector{
				{Object: a, Class: git, ProxyAddress: a.ProxyAddress(public)},
				{Object: b, Class: git, ProxyAddress: b.ProxyAddress(public)},
			}
		},
	}, {
		// An in-cluster registry (its cluster-local suffixes leave
		// no_proxy), a registry whose status sets a host-form address with
		// a port, and an address prefix without a trailing slash.
		name:     "in-cluster-and-host-form",
		proxyURL: testProxyURL,
		connectors: func(public string) []Connector {
			a := newConnector("team-a", "nexus", "oci", "http://nexus.tools.svc.cluster.local:8081/repository/docker")
			b := newConnector("team-b", "harbor", "oci", "https://harbor.example.com",
				withExtension("token-realm", "https://auth.example.com/service/token"),
				withProxyStatus("http://c-harbor.team-b.svc:8080"))
			return []Connector{
				{Object: a, Class: registry, ProxyAddress: a.ProxyAddress(public)},
				{Object: b, Class: registry, ProxyAddress: b.ProxyAddress(public)},
			}
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := baseInput(t, tt.connectors(tt.proxyURL)...)
			in.ProxyURL = publicurl.MustParse(tt.proxyURL)
			in.Configurations = generators
			checkGolden(t, tt.name, render(t, in))
		})
	}
}
