package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
	"github.com/connectors-node/connectors-node/kube/ca"
	"github.com/connectors-node/connectors-node/test/apiserver"
	"github.com/connectors-node/connectors-node/test/fake"
	"github.com/connectors-node/connectors-node/test/servers/kubelet"
	"github.com/connectors-node/connectors-node/test/servers/loopback"
	"github.com/connectors-node/connectors-node/test/servers/manifests"
	"github.com/connectors-node/connectors-node/test/testenv"
)

// syncBuffer is a log sink shared by a running process and the test.
type syncBuffer = fake.LogBuffer

// startRole runs connectors-node in this process with a ServiceAccount's
// own kubeconfig, until the test ends, and returns its log once /readyz
// answers.
func startRole(t *testing.T, env *apiserver.Env, sa string, args ...string) *syncBuffer {
	t.Helper()
	_, logs := runRole(t, env, sa, "/readyz", args...)
	return logs
}

// runRole runs connectors-node with sa's own kubeconfig until the test
// ends, and returns its ops address and log once probe answers 200 there.
func runRole(t *testing.T, env *apiserver.Env, sa, probe string, args ...string) (string, *syncBuffer) {
	t.Helper()
	ops, logs, stop := launchRole(t, env, sa, probe, args...)
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("%s stopped with %v", sa, err)
		}
		if t.Failed() {
			t.Logf("%s log:\n%s", sa, logs.String())
		}
	})
	return ops, logs
}

// launchRole is runRole whose caller stops the process: stop cancels its
// context (as SIGTERM does) and returns run's result. The test's end stops
// it too, if the caller has not.
func launchRole(t *testing.T, env *apiserver.Env, sa, probe string, args ...string) (string, *syncBuffer, func() error) {
	t.Helper()
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	require.NoError(t, env.WriteKubeconfig(kubeconfig, env.Token(t, "connectors-system", sa, nil, time.Hour)))
	ops, err := loopback.FreeAddr()
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	logs := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, append([]string{"--kubeconfig=" + kubeconfig, "--ops-listen=" + ops, "--system-roots="}, args...), logs, logs)
	}()
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() {
			cancel()
			runErr = <-done
		})
		return runErr
	}
	t.Cleanup(func() { _ = stop() })
	require.Eventually(t, func() bool {
		resp, err := http.Get("http://" + ops + probe) //nolint:noctx // a test probe
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, time.Minute, 50*time.Millisecond, "%s never answered %s; log:\n%s", sa, probe, logs)
	return ops, logs, stop
}

// TestSplitTopologyAcrossACARotation runs the split topology as deployed:
// a proxy-only process with the proxy role's RBAC and a CSI-only process
// with the CSI role's RBAC (no Secret access), each with its own
// ServiceAccount token. A pod's volume points at the central proxy, and
// curl, trusting only the mounted ca-bundle.crt, goes through TLS
// interception before, during and after a CA rotation.
func TestSplitTopologyAcrossACARotation(t *testing.T) {
	testenv.NeedRoot(t, "volumes (tmpfs mounts)")
	curl, err := exec.LookPath("curl")
	if err != nil {
		testenv.SkipOrFail(t, "curl is not installed: run `make deps`")
	}
	env := apiserver.Start(t, apiserver.Options{})
	ctx := context.Background()
	root := apiserver.RepoRoot()
	// The split topology's namespace and RBAC exactly as its overlay
	// installs them.
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		testenv.SkipOrFail(t, "kubectl is not installed: run make deps")
	}
	rendered, err := exec.CommandContext(ctx, kubectl, "kustomize", filepath.Join(root, "deploy", "overlays", "split")).Output() //nolint:gosec // the test's own paths
	require.NoError(t, err)
	all, err := manifests.Decode("deploy/overlays/split", rendered)
	require.NoError(t, err)
	var objs []*unstructured.Unstructured
	for _, o := range all {
		switch o.GetKind() {
		case "Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
			"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding":
			objs = append(objs, o)
		}
	}
	class, err := manifests.Load(filepath.Join(root, "examples", "connectorclass-api.yaml"))
	require.NoError(t, err)
	require.NoError(t, manifests.Create(ctx, env.Client, append(objs, class...)))
	require.NoError(t, manifests.WaitForServicePolicy(ctx, env.Client))
	const sysNS = "connectors-system"

	// An HTTPS API that wants a bearer token, its Connector and a pod's
	// ServiceAccount allowed to use it.
	const apiToken = "api-secret-0123456789"
	ns, api := bearerAPIConnector(ctx, t, env, apiToken)
	env.ServiceAccount(t, ns, "app")
	env.AllowConnectors(t, ns, ns, "app")

	// The central proxy, then a CSI-only node pointing at it.
	proxyAddr, err := loopback.FreeAddr()
	require.NoError(t, err)
	publicURL := "http://localhost:" + strings.Split(proxyAddr, ":")[1]
	gatewayAddr, err := loopback.FreeAddr()
	require.NoError(t, err)
	proxyLog := startRole(t, env, "connectors-proxy", "--serve=proxy", "--proxy-listen="+proxyAddr, "--connectors-api-listen="+gatewayAddr,
		"--public-url="+publicURL, "--allow-loopback-upstreams",
		// A central proxy serves pods of other nodes (this one is on
		// node-b), so it checks no node or source binding.
		"--check-pod-node=false", "--check-pod-source-address=false")
	socket := filepath.Join(t.TempDir(), "csi.sock")
	kubeletRoot := t.TempDir()
	csiLog := startRole(t, env, "connectors-csi", "--serve=csi", "--node-id=node-b", "--csi-endpoint=unix://"+socket,
		"--public-url="+publicURL, "--kubelet-root="+kubeletRoot)
	for _, l := range []*syncBuffer{proxyLog, csiLog} {
		t.Cleanup(func() { require.NotContains(t, l.String(), apiToken, "a credential reached a log") })
	}
	t.Cleanup(func() {
		require.NotContains(t, proxyLog.String(), "connectors-node-services", "the Service admission policy refused the status writer")
	})

	kl, err := kubelet.Dial(socket)
	require.NoError(t, err)
	t.Cleanup(func() { _ = kl.Close() })
	// The pod runs on node-b; its token is bound to it, as kubelet mints it.
	require.NoError(t, kubelet.RegisterNode(ctx, env.Kube, "node-b"))
	pod, err := kubelet.RunPod(ctx, env.Kube, kubelet.Pod{Namespace: ns, Name: "app-1", ServiceAccount: "app"}, "node-b", "127.0.0.1")
	require.NoError(t, err)
	target := filepath.Join(kubeletRoot, "pods", pod.UID, "volumes", "kubernetes.io~csi", "connectors", "mount")
	require.NoError(t, os.MkdirAll(target, 0o750))
	publish := func() {
		t.Helper()
		tok, err := kubelet.MintToken(ctx, env.Kube, pod, "connectors-proxy", time.Hour)
		require.NoError(t, err)
		require.NoError(t, kl.Publish(ctx, "vol-1", target, pod, map[string]string{"connectors": "api"}, map[string]kubelet.Token{"connectors-proxy": tok}))
	}
	publish()
	t.Cleanup(func() { _ = kl.Unpublish(context.Background(), "vol-1", target) })
	proxyURL, err := os.ReadFile(filepath.Join(target, "http.proxy"))
	require.NoError(t, err)
	require.Contains(t, string(proxyURL), "@localhost:", "the volume points at the central proxy")

	// curl as the pod runs it: the mounted proxy URL and CA bundle only.
	fetch := func(bundle string) error {
		t.Helper()
		cmd := exec.CommandContext(ctx, curl, "-fsS", "--noproxy", "", "-x", strings.TrimSpace(string(proxyURL)), "--cacert", bundle, api.URL+"/status") //nolint:gosec // curl with the test's own arguments
		cmd.Env = []string{"HOME=" + t.TempDir()}
		out, err := cmd.CombinedOutput()
		require.NotContains(t, string(out), apiToken)
		if err != nil {
			return fmt.Errorf("curl: %w: %s", err, out)
		}
		if string(out) != "ok" {
			return fmt.Errorf("curl got %q", out)
		}
		return nil
	}
	mounted := filepath.Join(target, "ca-bundle.crt")
	require.NoError(t, fetch(mounted), "before the rotation")

	// The central proxy's Connectors API gateway, with the proxy role's
	// RBAC as deployed: the app's own ServiceAccount token for the API
	// server's audience, and the Connector's path the status writer wrote.
	var conn v1alpha1.Connector
	require.Eventually(t, func() bool {
		return env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "api"}, &conn) == nil && conn.Status.API != nil
	}, 30*time.Second, 100*time.Millisecond, "status.api.path was never written")
	require.Equal(t, v1alpha1.APIPath(ns, "api"), conn.Status.API.Path)
	appToken := env.Token(t, ns, "app", nil, time.Hour)
	out, err := exec.CommandContext(ctx, curl, "-fsS", "-H", "Authorization: Bearer "+appToken, //nolint:gosec // curl with the test's own arguments
		"http://"+gatewayAddr+conn.Status.API.Path+"/status").CombinedOutput()
	require.NoError(t, err, "curl through the Connectors API gateway: %s", out)
	require.Equal(t, "ok", string(out))
	t.Cleanup(func() { require.NotContains(t, proxyLog.String(), appToken, "a caller's token reached a log") })

	// The CA as the proxy created it, and a new one.
	secrets := env.Kube.CoreV1().Secrets(sysNS)
	s, err := secrets.Get(ctx, "connectors-proxy-ca", metav1.GetOptions{})
	require.NoError(t, err)
	oldCert, oldKey := s.Data["tls.crt"], s.Data["tls.key"]
	newCA, err := ca.NewCA("connectors-proxy-ca-2", time.Now())
	require.NoError(t, err)
	der, err := x509.MarshalECPrivateKey(newCA.Key)
	require.NoError(t, err)
	newKey := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
	onlyOld, onlyNew := filepath.Join(t.TempDir(), "old.crt"), filepath.Join(t.TempDir(), "new.crt")
	require.NoError(t, os.WriteFile(onlyOld, oldCert, 0o600))
	require.NoError(t, os.WriteFile(onlyNew, newCA.CertPEM, 0o600))
	setSecret := func(data map[string][]byte) {
		t.Helper()
		s, err := secrets.Get(ctx, "connectors-proxy-ca", metav1.GetOptions{})
		require.NoError(t, err)
		s.Data = data
		_, err = secrets.Update(ctx, s, metav1.UpdateOptions{})
		require.NoError(t, err)
	}
	mountedHolds := func(certs ...[]byte) func() bool {
		return func() bool {
			publish() // kubelet republishes (requiresRepublish)
			b, err := os.ReadFile(mounted)
			if err != nil {
				return false
			}
			for _, c := range certs {
				if !bytes.Contains(b, bytes.TrimSpace(c)) {
					return false
				}
			}
			return true
		}
	}

	// 1. Publish the new certificate beside the old one. The old key still
	// signs; a republish brings both certificates into the volume.
	setSecret(map[string][]byte{"tls.crt": oldCert, "tls.key": oldKey, "ca.crt": newCA.CertPEM})
	require.Eventually(t, mountedHolds(oldCert, newCA.CertPEM), 30*time.Second, 200*time.Millisecond, "the volume never got the new certificate")
	require.NoError(t, fetch(mounted), "after publishing the new certificate")
	require.NoError(t, fetch(onlyOld), "the old key still signs")

	// 2. Switch: the new key signs, the old certificate stays trusted. The
	// running pod's bundle keeps working without a republish.
	setSecret(map[string][]byte{"tls.crt": newCA.CertPEM, "tls.key": newKey, "ca.crt": oldCert})
	require.Eventually(t, func() bool { return fetch(onlyNew) == nil }, 30*time.Second, 200*time.Millisecond, "the proxy never signed with the new key")
	require.NoError(t, fetch(mounted), "the mounted bundle trusts the new key")
	require.Error(t, fetch(onlyOld), "leaves are signed by the new key only")

	// 3. Drop the old certificate: the next republish trusts the new CA alone.
	setSecret(map[string][]byte{"tls.crt": newCA.CertPEM, "tls.key": newKey})
	require.Eventually(t, func() bool {
		publish()
		b, err := os.ReadFile(mounted)
		return err == nil && !bytes.Contains(b, bytes.TrimSpace(oldCert))
	}, 30*time.Second, 200*time.Millisecond, "the old certificate stayed in the volume")
	require.NoError(t, fetch(mounted), "after the rotation")

	// Nothing the CSI-only node wrote holds a key.
	entries, err := os.ReadDir(target)
	require.NoError(t, err)
	for _, e := range entries {
		if b, err := os.ReadFile(filepath.Join(target, e.Name())); err == nil {
			require.NotContains(t, string(b), "PRIVATE KEY", e.Name())
		}
	}
}

// bearerAPIConnector serves an HTTPS API that wants apiToken as a bearer
// token and makes the Connector "api" of the class bearer-api for it, with
// its token and CA Secrets, in a new namespace, which it returns.
func bearerAPIConnector(ctx context.Context, t *testing.T, env *apiserver.Env, apiToken string) (string, *httptest.Server) {
	t.Helper()
	api := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+apiToken {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		_, _ = fmt.Fprint(w, "ok")
	}))
	t.Cleanup(api.Close)
	ns := env.Namespace(t, "team")
	_, err := env.Kube.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "api-token"},
		Type:       "connectors.cpaas.io/bearer-token",
		StringData: map[string]string{"token": apiToken},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = env.Kube.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "api-ca"},
		StringData: map[string]string{"ca.crt": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: api.Certificate().Raw}))},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	require.NoError(t, env.Client.Create(ctx, &v1alpha1.Connector{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "api"},
		Spec: v1alpha1.ConnectorSpec{
			ConnectorClassName: "bearer-api",
			Address:            api.URL,
			Auth:               v1alpha1.ConnectorAuth{Name: "bearerToken", SecretRef: &corev1.ObjectReference{Name: "api-token"}},
			CACertSecretRef:    &corev1.LocalObjectReference{Name: "api-ca"},
		},
	}))
	return ns, api
}
