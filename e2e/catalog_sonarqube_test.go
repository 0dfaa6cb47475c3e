package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/connectors-node/connectors-node/test/servers/sonarqube"
)

// sonarClient is what sonar-scanner does with sonar-project.properties
// before it analyses anything: it reads the file with Properties.load and
// calls SonarQube's web API with the JDK's HTTP client through the proxy
// the sonar.scanner.proxy* properties name, answering the proxy's Basic
// challenge with sonar.scanner.proxyUser and proxyPassword.
const sonarClient = `
import java.io.*;
import java.net.*;
import java.net.http.*;
import java.util.*;

public class SonarClient {
  public static void main(String[] args) throws Exception {
    Properties p = new Properties();
    try (InputStream in = new FileInputStream(args[0])) { p.load(in); }
    String host = p.getProperty("sonar.host.url");
    String user = p.getProperty("sonar.scanner.proxyUser");
    char[] password = p.getProperty("sonar.scanner.proxyPassword").toCharArray();
    HttpClient client = HttpClient.newBuilder()
        .proxy(ProxySelector.of(new InetSocketAddress(p.getProperty("sonar.scanner.proxyHost"),
            Integer.parseInt(p.getProperty("sonar.scanner.proxyPort")))))
        .authenticator(new Authenticator() {
          @Override protected PasswordAuthentication getPasswordAuthentication() {
            return getRequestorType() == RequestorType.PROXY ? new PasswordAuthentication(user, password) : null;
          }
        })
        .build();
    for (String path : new String[] {"/api/system/status", "/api/authentication/validate", "/api/server/version"}) {
      HttpResponse<String> r = client.send(HttpRequest.newBuilder(URI.create(host + path)).build(), HttpResponse.BodyHandlers.ofString());
      System.out.println(path + " " + r.statusCode() + " " + r.body().trim());
    }
  }
}
`

// Catalog, sonarqube: with the sonar-project.properties of
// deploy/classes/sonarqube.yaml, a JDK HTTP client does what the scanner
// does — reads the file and calls the web API through the forward proxy —
// and the SonarQube stand-in sees the Connector's token as a Bearer token,
// never the pod's.
func TestCatalogSonarQubeScannerAPI(t *testing.T) {
	t.Parallel()
	needTool(t, "java")
	s := newStory(t, "e2e-sonarqube")
	s.installCatalogClass("sonarqube.yaml")
	token := "squ_" + randomHex(20)
	sq := sonarqube.Start(token)
	t.Cleanup(sq.Close)
	// Clients never proxy loopback addresses: SonarQube needs a name.
	host := "sonarqube-" + randomHex(4) + ".e2e.test"
	mapHost(t, host)
	_, port, _ := strings.Cut(strings.TrimPrefix(sq.URL, "http://"), ":")
	address := "http://" + host + ":" + port
	s.bearerSecret("sonarqube-token", token)
	s.connector(connectorSpec{name: "sonarqube", class: "sonarqube", address: address, authName: "tokenAuth", secret: "sonarqube-token"})
	s.serviceAccount(s.ns, "scanner")
	s.allow(s.ns, "scanner", "sonarqube")
	tok := s.token(s.ns, "scanner")
	v := s.publish("scanner", map[string]string{"connectors": "sonarqube", "configuration.names": "sonar-scanner"}, tok)
	props := v.file(t, "sonar-project.properties")
	for _, want := range []string{"sonar.host.url=" + address + "\n", "sonar.scanner.proxyUser=" + s.ns + "%2Fsonarqube\n"} {
		if !strings.Contains(props, want) {
			t.Errorf("sonar-project.properties lacks %q", want)
		}
	}

	dir := t.TempDir()
	src := filepath.Join(dir, "SonarClient.java")
	if err := os.WriteFile(src, []byte(sonarClient), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := s.run(dir, []string{"HOME=" + dir, "PATH=" + os.Getenv("PATH"), "LANG=C.UTF-8"},
		"java", src, filepath.Join(v.target, "sonar-project.properties"))
	if err != nil {
		t.Fatalf("the JDK client failed: %v", err)
	}
	for _, want := range []string{
		`/api/system/status 200 {"id":"connectors-test","status":"UP","version":"` + sonarqube.Version + `"}`,
		`/api/authentication/validate 200 {"valid":true}`,
		`/api/server/version 200 ` + sonarqube.Version,
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("the client's output lacks %q", want)
		}
	}
	reqs := sq.Log.Requests()
	if len(reqs) < 3 {
		t.Errorf("SonarQube saw %d requests, want the client's 3", len(reqs))
	}
	if !sq.Log.SawHeader("Bearer " + token) {
		t.Errorf("SonarQube never saw the Connector's token")
	}
	if sq.Log.SawHeader(tok.Token) {
		t.Errorf("the pod's token reached SonarQube")
	}
	if s.auditLine("sonarqube", "forward") == "" {
		t.Errorf("no audit line for a forward-proxied request with the credential injected")
	}
}
