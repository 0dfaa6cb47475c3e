package node

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
	"github.com/connectors-node/connectors-node/test/servers/mavenrepo"
	"github.com/connectors-node/connectors-node/test/testenv"
)

// tektonMavenImage holds the host's JRE and Debian's Maven (with the jars
// of /usr/share/java it links to), and sh and the programs the mvn script
// runs, for the maven Task's step.
const tektonMavenImage = "connectors-e2e-tekton-maven:dev"

// The maven Task of examples/tekton/ run by the real Tekton controller as
// upstream's multi-connector TaskRun: its settings and cert workspaces
// both name a mirror Maven Connector (useAsMirror "true") and a deploy
// Maven Connector, each for its own repository (nginx behind Basic auth,
// serving Debian's Maven plugins). mvn resolves its plugins and the
// project's dependency from the mirror through its reverse-proxy address,
// and deploys the project to the deploy repository's own URL through the
// forward proxy. Each repository saw only its own Connector's user, the
// mirror nothing deployed, the deploy repository nothing read but its
// metadata, neither the pod's token, and neither password is in a mounted
// file, log line, result, or the TaskRun's or the pod's object.
func TestTektonMavenResolvesFromTheMirrorConnectorAndDeploysToTheOther(t *testing.T) {
	n := suite(t)
	jvm := "/usr/lib/jvm/java-17-openjdk-" + runtime.GOARCH
	for _, p := range []string{"/usr/share/maven/bin/mvn", jvm + "/bin/java", jvm + "/bin/keytool"} {
		if _, err := os.Stat(p); err != nil {
			testenv.SkipOrFail(t, "%s not found (make deps installs Maven and the JDK): %v", p, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	n.tekton(ctx, t)
	start := func(user string) (*mavenrepo.Server, string) {
		password := randomHex(t)
		repo, err := mavenrepo.Start(t.TempDir(), user, password)
		if err != nil {
			testenv.SkipOrFail(t, "the Maven repository (make deps installs nginx and Debian's Maven plugins): %v", err)
		}
		t.Cleanup(repo.Stop)
		return repo, password
	}
	mirror, mirrorPassword := start("mirror-reader")
	deploy, deployPassword := start("deployer")
	deployURL := reachable(deploy.URL)

	if _, err := n.kubectl(ctx, catalogClass(t, "maven.yaml"), "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	if _, err := n.kubectl(ctx, example(t, "tekton/maven-connectors.yaml",
		"replace-with-the-mirror-password", mirrorPassword,
		"replace-with-the-deploy-password", deployPassword,
		"https://nexus.example.com/repository/maven-public", reachable(mirror.URL),
		"https://nexus.example.com/repository/maven-releases", deployURL,
	), "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, _ = n.kubectl(ctx, "", "delete", "-n", "default", "connector/maven-mirror-connector", "connector/maven-deploy-connector",
			"secret/maven-mirror-secret", "secret/maven-deploy-secret", "--ignore-not-found")
	})
	// settings.xml names each Connector's proxy address, from its status.
	public, err := n.publicURL(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"maven-mirror-connector", "maven-deploy-connector"} {
		n.waitConnectorStatus(ctx, t, "default", c, "True", public+v1alpha1.PathPrefix("default", c))
	}
	if err := n.buildTektonBuilderImage(ctx, tektonMavenImage, false, []string{"JAVA_HOME=" + jvm},
		"/bin/sh", "/usr/bin/uname", "/usr/bin/ls", "/usr/bin/expr", "/usr/bin/dirname", "/usr/bin/tr", "/usr/bin/cp", "/etc/nsswitch.conf",
		"/usr/bin/mvn", "/usr/share/maven", "/usr/bin/java", "/usr/bin/keytool",
		jvm+"/bin/java", jvm+"/bin/keytool", jvm+"/lib", jvm+"/conf", "/etc/java-17-openjdk"); err != nil {
		t.Fatal(err)
	}

	name := "tekton-maven"
	tr, pod := n.runTaskRun(ctx, t, name,
		example(t, "tekton/maven-task.yaml", "default: maven:3.9-eclipse-temurin-17", "default: "+tektonMavenImage),
		example(t, "tekton/maven-taskrun.yaml",
			"name: maven-connector-demo\n", "name: "+name+"\n",
			"https://nexus.example.com/repository/maven-releases", deployURL))
	log := n.podLog(t, pod.uid)
	if status, reason, msg := tr.succeeded(); status != "True" {
		t.Fatalf("the TaskRun ended %s (%s): %s\n%s", status, reason, msg, log)
	}
	if !strings.Contains(log, "BUILD SUCCESS") {
		t.Errorf("the step's log does not show mvn's BUILD SUCCESS:\n%s", log)
	}
	pom := filepath.Join(deploy.Deployed, "io", "example", "connectors", "hello-tekton", "1.0.0", "hello-tekton-1.0.0.pom")
	if b, err := os.ReadFile(pom); err != nil || !strings.Contains(string(b), "<artifactId>hello-tekton</artifactId>") { //nolint:gosec // the test's own repository
		t.Errorf("the deploy repository does not hold the deployed POM: %v", err)
	}
	if _, err := os.Stat(filepath.Join(mirror.Deployed, "io")); err == nil {
		t.Error("something was deployed to the mirror")
	}

	mirrorReqs, err := mirror.Requests()
	if err != nil {
		t.Fatal(err)
	}
	deployReqs, err := deploy.Requests()
	if err != nil {
		t.Fatal(err)
	}
	var plugins, dependency, puts int
	var mirrorAuths, deployAuths []string
	for _, r := range mirrorReqs {
		mirrorAuths = append(mirrorAuths, r.Authorization)
		if r.User != "mirror-reader" {
			t.Errorf("the mirror saw %s %s (%d) as %q, want mirror-reader: the proxy did not inject its Connector's credential", r.Method, r.Path, r.Status, r.User)
		}
		if r.Method == http.MethodPut {
			t.Errorf("the mirror got PUT %s", r.Path)
		}
		if strings.Contains(r.Path, "/org/apache/maven/plugins/") && r.Status == http.StatusOK {
			plugins++
		}
		if strings.HasSuffix(r.Path, "/commons-io-2.11.0.jar") && r.Status == http.StatusOK {
			dependency++
		}
	}
	for _, r := range deployReqs {
		deployAuths = append(deployAuths, r.Authorization)
		if r.User != "deployer" {
			t.Errorf("the deploy repository saw %s %s (%d) as %q, want deployer: the proxy did not inject its Connector's credential", r.Method, r.Path, r.Status, r.User)
		}
		// The repository root is where the Connector's status probes look.
		if r.Method == http.MethodGet && r.Path != mavenrepo.Prefix+"/" && !strings.Contains(r.Path, "maven-metadata.xml") {
			t.Errorf("mvn read %s from the deploy repository, not the mirror", r.Path)
		}
		if r.Method == http.MethodPut && r.Status < 300 {
			puts++
		}
	}
	if plugins == 0 || dependency == 0 || puts == 0 {
		t.Errorf("the mirror served %d plugin files and %d commons-io jars, the deploy repository took %d PUTs; want all", plugins, dependency, puts)
	}

	plugin := n.pluginPodOf(ctx, t, pod.name)
	if !n.waitAudited(ctx, t, string(plugin.UID), "default/maven-mirror-connector", "reverse") {
		t.Error("the DaemonSet pod logged no reverse request for default/maven-mirror-connector with the credential injected")
	}
	if !n.waitAudited(ctx, t, string(plugin.UID), "default/maven-deploy-connector", "forward") {
		t.Error("the DaemonSet pod logged no forward request for default/maven-deploy-connector with the credential injected")
	}
	n.checkTektonNoSecret(ctx, t, name, pod, mirrorPassword, mirrorAuths)
	n.checkTektonNoSecret(ctx, t, name, pod, deployPassword, deployAuths)
}
