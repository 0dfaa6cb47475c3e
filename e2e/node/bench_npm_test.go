//go:build nodebench

package node

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/sha1" //nolint:gosec // npm's shasum field
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/connectors-node/connectors-node/test/servers/npmregistry"
	"github.com/connectors-node/connectors-node/test/servers/testpki"
	"github.com/connectors-node/connectors-node/test/testenv"
)

const (
	// benchNpmPackages is how many packages the npm benchmark installs,
	// each of benchNpmPackageKiB of incompressible data.
	benchNpmPackages   = 200
	benchNpmPackageKiB = 16
	// benchNpmImage holds the host's node and npm, and the shell tools the
	// benchmark's pod runs.
	benchNpmImage = "connectors-e2e-bench-npm:dev"
)

// What users wait for, npm: `npm install` of benchNpmPackages packages from
// a pod, through the intercepting forward proxy with the mounted .npmrc and
// the proxy CA against direct to the registry with the same credential and
// the registry's CA, verdaccio behind TLS, a fresh cache each time, in
// interleaved rounds. Target: ≥ 0.8× direct.
func TestBenchNpmInstall(t *testing.T) {
	n, rounds := bench(t)
	npm, err := exec.LookPath("npm")
	if err != nil || npm == "" {
		testenv.SkipOrFail(t, "npm not found (make deps installs it): %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(rounds)*10*time.Minute+10*time.Minute)
	defer cancel()
	regCA, err := testpki.NewCA("npm bench registry CA")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := regCA.TLSCertificate(testServersName)
	if err != nil {
		t.Fatal(err)
	}
	password := randomHex(t)
	reg, err := npmregistry.StartTLS(t.TempDir(), "publisher", password, cert)
	if err != nil {
		testenv.SkipOrFail(t, "the npm registry (make deps installs verdaccio %s): %v", npmregistry.Version, err)
	}
	t.Cleanup(reg.Stop)
	published := time.Now()
	publishBenchPackages(ctx, t, reg.Addr, regCA, "publisher", password)
	t.Logf("%d packages of %d KiB published in %s", benchNpmPackages, benchNpmPackageKiB, time.Since(published).Round(100*time.Millisecond))
	reg.Log.Reset()

	address := reachable("https://" + reg.Addr)
	if _, err := n.kubectl(ctx, catalogClass(t, "npm.yaml"), "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	if _, err := n.kubectl(ctx, benchNpmObjects(address, password, regCA.PEM), "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, _ = n.kubectl(ctx, "", "delete", "-n", "default", "connector/npm-bench", "secret/npm-bench", "secret/npm-bench-ca",
			"serviceaccount/npm-bench", "role/npm-bench", "rolebinding/npm-bench", "--ignore-not-found")
	})
	if err := n.buildTektonBuilderImage(ctx, benchNpmImage, false, nil,
		"/bin/sh", "/usr/bin/node", "/usr/bin/npm", "/usr/lib/node_modules/npm", "/usr/bin/env", "/usr/bin/cp", "/usr/bin/mkdir",
		"/usr/bin/rm", "/usr/bin/cat", "/usr/bin/sleep", "/etc/nsswitch.conf"); err != nil {
		t.Fatal(err)
	}
	w := n.nodes[0]
	if _, err := n.kubectl(ctx, benchNpmPod(w.name), "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.deletePod(t, "bench-npm") })
	pod := n.waitPhase(ctx, t, "bench-npm", corev1.PodRunning)
	plugin, err := n.pluginPod(ctx, w.name)
	if err != nil {
		t.Fatal(err)
	}

	// The project and the direct configuration: the registry's CA and its
	// credential, as a pod without the proxy would hold them.
	host := strings.TrimPrefix(address, "https://")
	direct := fmt.Sprintf("registry=%s/\n//%s/:_auth=%s\ncafile=/tmp/registry-ca.pem\naudit=false\nfund=false\nupdate-notifier=false\n",
		address, host, base64.StdEncoding.EncodeToString([]byte("publisher:"+password)))
	podExec := func(stdin, script string) (string, error) {
		cmd := exec.CommandContext(ctx, "kubectl", "--kubeconfig="+n.kubeconfig, "exec", "-i", "-n", "default", pod.Name, "--", "sh", "-ec", script) //nolint:gosec // the suite's kubectl
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		return strings.ReplaceAll(string(out), password, "<password>"), err
	}
	for file, content := range map[string]string{"/tmp/direct.npmrc": direct, "/tmp/registry-ca.pem": string(regCA.PEM), "/tmp/package.json": benchNpmProject()} {
		if out, err := podExec(content, "cat > "+file); err != nil {
			t.Fatalf("writing %s in the pod: %v\n%s", file, err, out)
		}
	}
	install := func(proxy bool) (d, proxyCPU time.Duration) {
		t.Helper()
		env, config := "", "/tmp/direct.npmrc"
		if proxy {
			env, config = "NODE_EXTRA_CA_CERTS=/connectors/ca.crt ", "/connectors/.npmrc"
		}
		script := "rm -rf /tmp/w /tmp/cache; mkdir /tmp/w; cp /tmp/package.json /tmp/w/; cd /tmp/w; " +
			env + "npm install --userconfig " + config + " --cache /tmp/cache --prefer-online --no-audit --no-fund --loglevel=error; rm -rf /tmp/w /tmp/cache"
		before := podCPU(t, w, string(plugin.UID))
		start := time.Now()
		out, err := podExec("", script)
		d = time.Since(start)
		if err != nil {
			t.Fatalf("npm install in the pod (proxy %v): %v\n%s", proxy, err, out)
		}
		return d, podCPU(t, w, string(plugin.UID)) - before
	}
	var directs, viaProxy, proxyCPU []time.Duration
	install(true) // a first install warms verdaccio, the page cache and the proxy's caches
	for r := range rounds {
		order := []bool{false, true}
		if r%2 == 1 {
			order = []bool{true, false}
		}
		for _, proxy := range order {
			d, cpu := install(proxy)
			if proxy {
				viaProxy, proxyCPU = append(viaProxy, d), append(proxyCPU, cpu)
				t.Logf("round %d, through the intercepting forward proxy: %s; proxy CPU %s", r+1, d.Round(10*time.Millisecond), cpu.Round(10*time.Millisecond))
			} else {
				directs = append(directs, d)
				t.Logf("round %d, direct: %s", r+1, d.Round(10*time.Millisecond))
			}
		}
	}
	var tarballs int
	for _, req := range reg.Log.Requests() {
		if req.User != "publisher" {
			t.Errorf("verdaccio saw %s %s as %q, want publisher", req.Method, req.Path, req.User)
		}
		if strings.HasSuffix(req.Path, ".tgz") {
			tarballs++
		}
	}
	if want := (2*rounds + 1) * benchNpmPackages; tarballs < want {
		t.Errorf("verdaccio served %d tarballs, want at least %d: the installs did not fetch every package", tarballs, want)
	}
	md, mp := median(directs), median(viaProxy)
	ratio := md.Seconds() / mp.Seconds()
	t.Logf("BENCH npm install: %d packages of %d KiB from a pod, verdaccio over TLS, median of %d rounds: direct %s, through the intercepting forward proxy %s, %.2f× direct; "+
		"target ≥ 0.8×: %s (%s); proxy CPU per install %s",
		benchNpmPackages, benchNpmPackageKiB, rounds, md.Round(10*time.Millisecond), mp.Round(10*time.Millisecond), ratio, metOrNot(ratio >= 0.8), machineState(),
		median(proxyCPU).Round(10*time.Millisecond))
}

// benchNpmName is the name of the benchmark's i-th package.
func benchNpmName(i int) string { return fmt.Sprintf("bench-pkg-%03d", i) }

// benchNpmProject is a package.json depending on every benchmark package.
func benchNpmProject() string {
	deps := make(map[string]string, benchNpmPackages)
	for i := range benchNpmPackages {
		deps[benchNpmName(i)] = "1.0.0"
	}
	b, _ := json.Marshal(map[string]any{"name": "bench-project", "version": "1.0.0", "private": true, "dependencies": deps})
	return string(b)
}

// publishBenchPackages publishes the benchmark's packages to the registry
// at addr as npm publish does: one PUT of the packument with the tarball
// attached.
func publishBenchPackages(ctx context.Context, t *testing.T, addr string, ca *testpki.CA, user, password string) {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: testServersName, MinVersion: tls.VersionTLS12}}}
	defer client.CloseIdleConnections()
	for i := range benchNpmPackages {
		name := benchNpmName(i)
		tgz, err := benchNpmTarball(name)
		if err != nil {
			t.Fatal(err)
		}
		sha := sha1.Sum(tgz) //nolint:gosec // npm's shasum field
		integrity := sha512.Sum512(tgz)
		file := name + "-1.0.0.tgz"
		body, err := json.Marshal(map[string]any{
			"_id": name, "name": name, "dist-tags": map[string]string{"latest": "1.0.0"},
			"versions": map[string]any{"1.0.0": map[string]any{
				"name": name, "version": "1.0.0", "main": "index.js", "_id": name + "@1.0.0",
				"dist": map[string]string{
					"tarball":   "https://" + testServersName + "/" + name + "/-/" + file,
					"shasum":    hex.EncodeToString(sha[:]),
					"integrity": "sha512-" + base64.StdEncoding.EncodeToString(integrity[:]),
				},
			}},
			"_attachments": map[string]any{file: map[string]any{
				"content_type": "application/octet-stream", "data": base64.StdEncoding.EncodeToString(tgz), "length": len(tgz),
			}},
		})
		if err != nil {
			t.Fatal(err)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, "https://"+addr+"/"+name, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.SetBasicAuth(user, password)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("publishing %s: %v", name, err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
			t.Fatalf("publishing %s: status %d", name, resp.StatusCode)
		}
	}
}

// benchNpmTarball is the package's tarball: package.json, index.js and
// benchNpmPackageKiB of random data.
func benchNpmTarball(name string) ([]byte, error) {
	data := make([]byte, benchNpmPackageKiB<<10/2)
	if _, err := rand.Read(data); err != nil {
		return nil, err
	}
	files := []struct{ name, body string }{
		{"package/package.json", fmt.Sprintf(`{"name":%q,"version":"1.0.0","main":"index.js","license":"MIT"}`, name)},
		{"package/index.js", "module.exports = require('./data.json').length;\n"},
		{"package/data.json", fmt.Sprintf("%q\n", hex.EncodeToString(data))},
	}
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, f := range files {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.body)), ModTime: time.Unix(0, 0)}); err != nil {
			return nil, err
		}
		if _, err := tw.Write([]byte(f.body)); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := gz.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// benchNpmObjects are the benchmark's npm Connector at address with the
// registry's CA, its Secret, and a ServiceAccount that may use it.
func benchNpmObjects(address, password string, caPEM []byte) string {
	indented := "    " + strings.ReplaceAll(strings.TrimSpace(string(caPEM)), "\n", "\n    ")
	return fmt.Sprintf(`apiVersion: v1
kind: Secret
metadata: {name: npm-bench, namespace: default}
type: kubernetes.io/basic-auth
stringData: {username: publisher, password: %q}
---
apiVersion: v1
kind: Secret
metadata: {name: npm-bench-ca, namespace: default}
stringData:
  ca.crt: |
%s
---
apiVersion: connectors.alauda.io/v1alpha1
kind: Connector
metadata: {name: npm-bench, namespace: default}
spec:
  connectorClassName: npm
  address: %s
  caCertSecretRef: {name: npm-bench-ca}
  auth:
    name: basicAuth
    secretRef: {name: npm-bench}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: npm-bench, namespace: default}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: npm-bench, namespace: default}
rules:
  - {apiGroups: [connectors.alauda.io], resources: [connectors], resourceNames: [npm-bench], verbs: [get]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: npm-bench, namespace: default}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: npm-bench}
subjects:
  - {kind: ServiceAccount, name: npm-bench, namespace: default}
`, password, indented, address)
}

// benchNpmPod is the benchmark's pod on node, with the npm Connector's
// .npmrc and the proxy CA mounted at /connectors.
func benchNpmPod(node string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: bench-npm, namespace: default}
spec:
  serviceAccountName: npm-bench
  restartPolicy: Never
  nodeSelector: {kubernetes.io/hostname: %s}
  terminationGracePeriodSeconds: 1
  containers:
    - name: main
      image: %s
      command: ["sh", "-c", "exec sleep 3600"]
      volumeMounts:
        - {name: connectors, mountPath: /connectors, readOnly: true}
  volumes:
    - name: connectors
      csi:
        driver: connectors-csi
        readOnly: true
        volumeAttributes: {connector.name: npm-bench, configuration.names: npmrc}
`, node, benchNpmImage)
}
