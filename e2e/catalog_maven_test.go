package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/connectors-node/connectors-node/test/servers/authlog"
	"github.com/connectors-node/connectors-node/test/servers/gitserver"
	"github.com/connectors-node/connectors-node/test/servers/mavenrepo"
	"github.com/connectors-node/connectors-node/test/testenv"
)

// mavenProject is a project that depends on an artifact of Debian's Maven
// repository and deploys its own POM.
const mavenProject = `<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>io.example.connectors</groupId>
  <artifactId>hello</artifactId>
  <version>1.0.0</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>commons-io</groupId>
      <artifactId>commons-io</artifactId>
      <version>2.11.0</version>
    </dependency>
  </dependencies>
</project>
`

// Catalog, maven: with the settings.xml of deploy/classes/maven.yaml, mvn
// resolves its plugins and a dependency through the reverse proxy and
// deploys an artifact with PUT, while the repository (nginx with WebDAV
// behind Basic auth) sees only the Connector's credential.
func TestCatalogMavenResolveAndDeploy(t *testing.T) {
	t.Parallel()
	needTool(t, "mvn")
	needTool(t, "nginx")
	s := newStory(t, "e2e-maven")
	s.installCatalogClass("maven.yaml")
	password := randomHex(16)
	repo, err := mavenrepo.Start(t.TempDir(), "deployer", password)
	if err != nil {
		testenv.SkipOrFail(t, "the Maven repository (make deps installs nginx and Debian's Maven plugins): %v", err)
	}
	t.Cleanup(repo.Stop)
	_, v := s.catalogConnector("maven", repo.URL, "deployer", password, "settings")
	proxyAddress := s.h.publicURL + "/namespaces/" + s.ns + "/connectors/maven/"
	if settings := v.file(t, "settings.xml"); !strings.Contains(settings, "<url>"+proxyAddress+"</url>") {
		t.Errorf("settings.xml does not mirror through %s", proxyAddress)
	}

	project := t.TempDir()
	if err := os.WriteFile(filepath.Join(project, "pom.xml"), []byte(mavenProject), 0o600); err != nil {
		t.Fatal(err)
	}
	local := t.TempDir()
	_, err = s.run(project, gitserver.Env(t.TempDir()), "mvn", "-B", "-q", "-c",
		"-s", filepath.Join(v.target, "settings.xml"), "-Dmaven.repo.local="+local,
		"dependency:resolve", "deploy")
	if err != nil {
		t.Fatalf("mvn dependency:resolve deploy failed: %v", err)
	}
	if _, err := os.Stat(filepath.Join(local, "commons-io", "commons-io", "2.11.0", "commons-io-2.11.0.jar")); err != nil {
		t.Errorf("the dependency was not resolved: %v", err)
	}
	deployed := filepath.Join(repo.Deployed, "io", "example", "connectors", "hello", "1.0.0", "hello-1.0.0.pom")
	if b, err := os.ReadFile(deployed); err != nil || string(b) != mavenProject { //nolint:gosec // the test's own repository
		t.Errorf("the repository does not hold the deployed POM: %v", err)
	}

	reqs, err := repo.Requests()
	if err != nil {
		t.Fatal(err)
	}
	var logged []authlog.Request
	puts := 0
	for _, r := range reqs {
		logged = append(logged, r.Request)
		if r.Method == http.MethodPut && r.Status < 300 {
			puts++
		}
	}
	// nginx logs no Authorization header: the pod's token shows as a user
	// other than the Connector's.
	s.checkServerLog("repository", logged, false, "deployer")
	if puts == 0 {
		t.Errorf("no PUT succeeded at the repository")
	}
	if s.auditLine("maven", "reverse") == "" {
		t.Errorf("no audit line for a reverse-proxied request with the credential injected")
	}
}
