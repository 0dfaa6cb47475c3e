package configgen

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"encoding/xml"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
)

// catalogClass reads a ConnectorClass of deploy/classes.
func catalogClass(t testing.TB, file string) *v1alpha1.ConnectorClass {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "deploy", "classes", file))
	if err != nil {
		t.Fatal(err)
	}
	var c v1alpha1.ConnectorClass
	if err := yaml.UnmarshalStrict(raw, &c); err != nil {
		t.Fatalf("deploy/classes/%s: %v", file, err)
	}
	return &c
}

// TestCatalogRenders pins what the package-manager classes of
// deploy/classes render for one Connector and for two Connectors of the
// class in one volume (the last one is the index or registry the clients
// use), and checks the files parse as their tools read them.
func TestCatalogRenders(t *testing.T) {
	repos := map[string]map[string]any{
		"settings": {"mirrorRepository": "maven-public"},
		"npmrc":    {"registry": "npm-group", "repository": "npm-virtual"},
		"yarnrc":   {"registry": "npm-group", "repository": "npm-virtual", "strictSSL": "false"},
		"pipconf":  {"repository": "pypi-all"},
		"pypirc":   {"deployRepository": "pypi-hosted"},
	}
	nexus := map[string]map[string]any{}
	jfrog := map[string]map[string]any{}
	for cfg, ps := range repos {
		nexus[cfg], jfrog[cfg] = map[string]any{}, map[string]any{}
		for k, v := range ps {
			if k != "repository" || cfg == "pipconf" {
				nexus[cfg][k] = v
			}
			if k != "registry" {
				jfrog[cfg][k] = v
			}
		}
	}
	tests := []struct {
		file, names string
		addresses   []string
		params      map[string]map[string]any
		check       func(t *testing.T, files map[string][]byte)
	}{
		{file: "maven.yaml", names: "settings", addresses: []string{"https://repo.maven.apache.org/maven2/"}, check: checkSettingsXML},
		{file: "maven.yaml", names: "settings", addresses: []string{"https://repo.maven.apache.org/maven2", "https://nexus.example.com/repository/maven-releases"}, check: checkSettingsXML},
		{file: "npm.yaml", names: "npmrc,yarnrc", addresses: []string{"https://registry.npmjs.org"}},
		{file: "npm.yaml", names: "npmrc,yarnrc", addresses: []string{"https://registry.npmjs.org", "http://verdaccio.example.com:4873/"}},
		{file: "pypi.yaml", names: "pipconf,pypirc", addresses: []string{"https://pypi.org"}},
		{file: "pypi.yaml", names: "pipconf,pypirc", addresses: []string{"https://pypi.org", "https://nexus.example.com/repository/pypi-all"}},
		{file: "harbor.yaml", names: "config,harbor-cli-config,registry-config,buildkitd", addresses: []string{"https://harbor.example.com"}},
		{file: "harbor.yaml", names: "config,harbor-cli-config,registry-config,buildkitd", addresses: []string{"https://harbor.example.com", "http://harbor-2.example.com:8080/"}},
		{file: "nexus.yaml", names: "settings,npmrc,yarnrc,pipconf,pypirc", addresses: []string{"https://nexus.example.com"}, params: nexus},
		{file: "nexus.yaml", names: "settings,npmrc,yarnrc,pipconf,pypirc", addresses: []string{"https://nexus.example.com", "http://nexus-2.example.com:8081/"}, params: nexus},
		{file: "jfrog.yaml", names: "settings,npmrc,yarnrc,pipconf,pypirc", addresses: []string{"https://jfrog.example.com"}, params: jfrog},
		{file: "jfrog.yaml", names: "settings,npmrc,yarnrc,pipconf,pypirc", addresses: []string{"https://jfrog.example.com", "http://jfrog-2.example.com:8082/"}, params: jfrog},
		{file: "sonarqube.yaml", names: "sonar-scanner", addresses: []string{"https://sonarqube.example.com"}},
		{file: "sonarqube.yaml", names: "sonar-scanner", addresses: []string{"https://sonarqube.example.com", "http://sonar-2.example.com:9000/"}},
	}
	for _, tt := range tests {
		name := strings.TrimSuffix(tt.file, ".yaml") + "-" + map[bool]string{true: "one", false: "two"}[len(tt.addresses) == 1]
		t.Run(name, func(t *testing.T) {
			class := catalogClass(t, tt.file)
			var mounted []Connector
			for i, a := range tt.addresses {
				c := newConnector("team-"+string(rune('a'+i)), class.Name, class.Name, a)
				mounted = append(mounted, Connector{Object: c, Class: class, ProxyAddress: c.ProxyAddressFor(class, testProxyURL, "cluster.local")})
			}
			in := baseInput(t, mounted...)
			var err error
			if in.Configurations, in.Exclude, err = ParseNames(tt.names); err != nil {
				t.Fatal(err)
			}
			in.Params = tt.params
			files := render(t, in)
			ours := map[string][]byte{}
			for _, cfg := range class.Spec.Configurations {
				for f := range cfg.Data {
					got, ok := files[f]
					if !ok {
						t.Fatalf("no file %s", f)
					}
					if strings.Contains(string(got), "<no value>") {
						t.Errorf("%s reads a missing key:\n%s", f, got)
					}
					ours[f] = got
				}
			}
			if tt.check != nil {
				tt.check(t, ours)
			}
			checkGolden(t, filepath.Join("catalog", name), ours)
		})
	}
}

// checkSettingsXML parses settings.xml as Maven does and checks that the
// mirror, the deployment repository and a server entry share one id.
func checkSettingsXML(t *testing.T, files map[string][]byte) {
	t.Helper()
	var s struct {
		Servers []struct {
			ID       string `xml:"id"`
			Password string `xml:"password"`
		} `xml:"servers>server"`
		Mirrors []struct {
			ID       string `xml:"id"`
			MirrorOf string `xml:"mirrorOf"`
			URL      string `xml:"url"`
		} `xml:"mirrors>mirror"`
		Deploy string `xml:"profiles>profile>properties>altDeploymentRepository"`
	}
	if err := xml.Unmarshal(files["settings.xml"], &s); err != nil {
		t.Fatalf("settings.xml does not parse: %v", err)
	}
	if len(s.Mirrors) != 1 || s.Mirrors[0].MirrorOf != "*" || !strings.HasPrefix(s.Mirrors[0].URL, testProxyURL+"/namespaces/") {
		t.Fatalf("mirrors = %+v, want one mirror of * at the proxy", s.Mirrors)
	}
	if want := s.Mirrors[0].ID + "::" + s.Mirrors[0].URL; s.Deploy != want {
		t.Errorf("altDeploymentRepository = %q, want %q", s.Deploy, want)
	}
	found := false
	for _, srv := range s.Servers {
		found = found || (srv.ID == s.Mirrors[0].ID && srv.Password == testToken)
	}
	if !found {
		t.Errorf("no server entry %s with the pod's token", s.Mirrors[0].ID)
	}
}

// TestHarborCLIPlaceholderDecrypts checks that the placeholder password of
// harbor-cli-config opens with the published HARBOR_ENCRYPTION_KEY as
// harbor-cli stores passwords: base64 of the AES-256-GCM nonce and sealed
// text, with the base64 of a 32-byte key.
func TestHarborCLIPlaceholderDecrypts(t *testing.T) {
	class := catalogClass(t, "harbor.yaml")
	var data map[string]string
	for _, cfg := range class.Spec.Configurations {
		if cfg.Name == "harbor-cli-config" {
			data = cfg.Data
		}
	}
	key, err := base64.StdEncoding.DecodeString(data["HARBOR_ENCRYPTION_KEY"])
	if err != nil || len(key) != 32 {
		t.Fatalf("HARBOR_ENCRYPTION_KEY is not base64 of 32 bytes: %d bytes, %v", len(key), err)
	}
	m := regexp.MustCompile(`password: "([^"]+)"`).FindStringSubmatch(data["config.yaml"])
	if m == nil {
		t.Fatal("config.yaml has no password")
	}
	sealed, err := base64.StdEncoding.DecodeString(m[1])
	if err != nil {
		t.Fatal(err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := gcm.Open(nil, sealed[:gcm.NonceSize()], sealed[gcm.NonceSize():], nil)
	if err != nil || len(plain) == 0 {
		t.Fatalf("the placeholder does not open with the key: %v", err)
	}
}

// TestCatalogMavenMirrorAndDeployConnectors pins settings.xml for
// upstream's multi-connector Task, a mirror Connector (useAsMirror "true")
// and a deploy Connector in one volume, in both orders: Maven reads every
// repository through the mirror's proxy address and deploys to the deploy
// Connector's, each with its own server entry holding the pod's token, and
// the forward proxy names both Connectors.
func TestCatalogMavenMirrorAndDeployConnectors(t *testing.T) {
	class := catalogClass(t, "maven.yaml")
	connector := func(name, address, useAsMirror string) Connector {
		c := newConnector("ci", name, class.Name, address, func(c *v1alpha1.Connector) {
			c.Spec.Params = []v1alpha1.Param{{Name: "useAsMirror", Value: jsonRaw(`"` + useAsMirror + `"`)}}
		})
		return Connector{Object: c, Class: class, ProxyAddress: c.ProxyAddressFor(class, testProxyURL, "cluster.local")}
	}
	mirror := connector("maven-mirror", "https://nexus.example.com/repository/maven-public", "true")
	deploy := connector("maven-deploy", "https://nexus.example.com/repository/maven-releases", "false")
	for _, order := range [][]Connector{{mirror, deploy}, {deploy, mirror}} {
		in := baseInput(t, order...)
		in.Configurations = []string{"settings"}
		var s struct {
			Proxy   string `xml:"proxies>proxy>username"`
			Servers []struct {
				ID       string `xml:"id"`
				Username string `xml:"username"`
				Password string `xml:"password"`
			} `xml:"servers>server"`
			Mirrors []struct {
				ID       string `xml:"id"`
				MirrorOf string `xml:"mirrorOf"`
				URL      string `xml:"url"`
			} `xml:"mirrors>mirror"`
			Deploy string `xml:"profiles>profile>properties>altDeploymentRepository"`
		}
		if err := xml.Unmarshal(render(t, in)["settings.xml"], &s); err != nil {
			t.Fatalf("settings.xml does not parse: %v", err)
		}
		name := order[0].Object.Name + "," + order[1].Object.Name
		mirrorURL := testProxyURL + "/namespaces/ci/connectors/maven-mirror/"
		if len(s.Mirrors) != 1 || s.Mirrors[0].ID != "connectors-ci-maven-mirror" || s.Mirrors[0].MirrorOf != "*" || s.Mirrors[0].URL != mirrorURL {
			t.Errorf("%s: mirrors = %+v, want connectors-ci-maven-mirror of * at %s", name, s.Mirrors, mirrorURL)
		}
		if want := "connectors-ci-maven-deploy::" + testProxyURL + "/namespaces/ci/connectors/maven-deploy/"; s.Deploy != want {
			t.Errorf("%s: altDeploymentRepository = %q, want %q", name, s.Deploy, want)
		}
		servers := map[string]string{}
		for _, srv := range s.Servers {
			if srv.Password != testToken {
				t.Errorf("%s: server %s's password is not the pod's token", name, srv.ID)
			}
			servers[srv.ID] = srv.Username
		}
		if servers["connectors-ci-maven-mirror"] != "ci/maven-mirror" || servers["connectors-ci-maven-deploy"] != "ci/maven-deploy" || len(servers) != 2 {
			t.Errorf("%s: servers = %v, want one per Connector, named by it", name, servers)
		}
		if want := order[0].Object.Namespace + "/" + order[0].Object.Name + "," + order[1].Object.Namespace + "/" + order[1].Object.Name; s.Proxy != want {
			t.Errorf("%s: the forward proxy's user is %q, want %q", name, s.Proxy, want)
		}
	}
}
