package node

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
	"github.com/connectors-node/connectors-node/test/apiserver"
	"github.com/connectors-node/connectors-node/test/testenv"
)

// hostFormObjects are the story's objects: a Git Connector of the
// host-form class with its Secret (each names the repository the class's
// auth probe reads), one whose Secret does not exist, one
// whose password is wrong, and the ServiceAccount allowed to use the
// first.
const hostFormObjects = `apiVersion: v1
kind: Secret
metadata: {name: git-host-credentials, namespace: default}
type: kubernetes.io/basic-auth
stringData: {username: bot, password: %[1]q}
---
apiVersion: v1
kind: Secret
metadata: {name: git-wrong-credentials, namespace: default}
type: kubernetes.io/basic-auth
stringData: {username: bot, password: not-the-password}
---
apiVersion: connectors.alauda.io/v1alpha1
kind: Connector
metadata: {name: git-wrong-password, namespace: default}
spec:
  connectorClassName: git-host
  address: %[2]s
  auth: {name: basicAuth, secretRef: {name: git-wrong-credentials}, params: [{name: repository, value: host-form-repo.git}]}
---
apiVersion: connectors.alauda.io/v1alpha1
kind: Connector
metadata: {name: git-host, namespace: default}
spec:
  connectorClassName: git-host
  address: %[2]s
  auth: {name: basicAuth, secretRef: {name: git-host-credentials}, params: [{name: repository, value: host-form-repo.git}]}
---
apiVersion: connectors.alauda.io/v1alpha1
kind: Connector
metadata: {name: git-no-secret, namespace: default}
spec:
  connectorClassName: git-host
  address: %[2]s
  auth: {name: basicAuth, secretRef: {name: git-missing-credentials}, params: [{name: repository, value: host-form-repo.git}]}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: git-host-clone, namespace: default}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: use-git-host-connector, namespace: default}
rules:
  - {apiGroups: [connectors.alauda.io], resources: [connectors], resourceNames: [git-host], verbs: [get]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: git-host-clone-uses-git-host, namespace: default}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: use-git-host-connector}
subjects: [{kind: ServiceAccount, name: git-host-clone, namespace: default}]
`

// Status on the real node: the DaemonSet pod that holds the status Lease
// makes a Git Connector of the catalog's class without the path annotation
// (so in host form, upstream's default) Ready, with the address
// http://c-git-host.default.svc.cluster.local:8080 and the ExternalName
// Service c-git-host leading to the proxy's host. The class's liveness and
// auth probes reach the test's Git server on loopback (the overlay's
// --allow-loopback-upstreams holds for them as for proxied requests). The
// pinned kubectl's `get connectors` prints the address and Ready True, a
// Connector whose Secret is missing as Ready False, SecretNotFound, and
// one whose password is wrong as CredentialsRejected. The git-clone Job of
// examples/, with dnsPolicy ClusterFirstWithHostNet, then clones through
// the host-form address: the pod resolves it with the cluster DNS in its
// resolv.conf, the proxy routes it by its Host header and injects the
// credential, which is in no mounted file and no log line.
func TestConnectorStatusAndHostFormAddress(t *testing.T) {
	n := suite(t)
	kubectl, err := apiserver.Kubectl()
	if err != nil {
		testenv.SkipOrFail(t, "%v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	srv, repo, password := gitServer(t, "host-form-repo")
	class := replaced(t, catalogClass(t, "git.yaml"),
		"metadata:\n  name: git\n  annotations:\n    connectors.cpaas.io/proxy-resolver: path\n", "metadata:\n  name: git-host\n")
	for _, m := range []string{class, fmt.Sprintf(hostFormObjects, password, srv.URL)} {
		if _, err := n.kubectl(ctx, m, "apply", "-f", "-"); err != nil {
			t.Fatal(err)
		}
	}
	public, err := n.publicURL(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pu, err := url.Parse(public)
	if err != nil {
		t.Fatal(err)
	}
	host := "c-git-host.default.svc." + clusterDomain
	hostPort := host
	if pu.Port() != "" {
		hostPort += ":" + pu.Port()
	}
	address := pu.Scheme + "://" + hostPort
	conn := n.waitConnectorStatus(ctx, t, "default", "git-host", "True", address)
	n.waitConnectorStatus(ctx, t, "default", "git-no-secret", "False", "")
	n.waitConnectorStatus(ctx, t, "default", "git-wrong-password", "False", "")
	probed := len(srv.Users())
	if probed == 0 {
		t.Errorf("the Git server saw no probe with the credential")
	}

	svc, err := n.env.Kube.CoreV1().Services("default").Get(ctx, "c-git-host", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// The public URL's host, a Service's name ending in .svc, completed
	// with the cluster domain.
	proxyHost := pu.Hostname() + "." + clusterDomain
	if ref := metav1.GetControllerOf(svc); svc.Spec.Type != corev1.ServiceTypeExternalName || svc.Spec.ExternalName != proxyHost || ref == nil || ref.UID != conn.UID {
		t.Errorf("Service c-git-host is %s to %q controlled by %+v, want an ExternalName to %q owned by the Connector", svc.Spec.Type, svc.Spec.ExternalName, ref, proxyHost)
	}

	// kubectl get connectors, as a user runs it: -o wide adds the address.
	var out string
	if err := poll(ctx, time.Minute, "kubectl get connectors to show both Connectors' status", func(ctx context.Context) (bool, error) {
		cmd := exec.CommandContext(ctx, kubectl, "--kubeconfig="+n.kubeconfig, "get", "connectors", "-n", "default", "-o", "wide") //nolint:gosec // the pinned kubectl of the tests
		cmd.Env = []string{"HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH")}
		b, err := cmd.CombinedOutput()
		out = string(b)
		if err != nil {
			return false, fmt.Errorf("%w\n%s", err, b)
		}
		return rowHas(out, "git-host", "git-host", srv.URL, "True", address) &&
			rowHas(out, "git-no-secret", "git-host", srv.URL, "False", "SecretNotFound") &&
			rowHas(out, "git-wrong-password", "git-host", srv.URL, "False", "CredentialsRejected"), nil
	}); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	t.Logf("$ kubectl get connectors -n default -o wide\n%s", out)

	pod := n.runJob(ctx, t, "git-clone-host", onNode(t, "git-clone-job.yaml",
		"https://github.com/example/private-repo", repo,
		"metadata:\n  name: git-clone\n", "metadata:\n  name: git-clone-host\n",
		"serviceAccountName: git-clone", "serviceAccountName: git-host-clone",
		"connectors: git\n", "connectors: git-host\n",
		"- git clone", "- cat /etc/resolv.conf && git clone",
	))
	log := n.podLog(t, string(pod.UID))
	if !strings.Contains(log, "initial commit") {
		t.Errorf("the Job's log does not show the cloned commit:\n%s", log)
	}
	if !strings.Contains(log, "nameserver "+clusterDNSIP) {
		t.Errorf("the Job's resolv.conf does not name the cluster DNS %s:\n%s", clusterDNSIP, log)
	}
	if logs, err := n.logs(); err != nil || !strings.Contains(logs, `"A IN `+host+`.`) {
		t.Errorf("CoreDNS logged no query for %s (%v)", host, err)
	}
	if users := srv.Users(); len(users) <= probed || users[len(users)-1] != "bot" {
		t.Errorf("the Git server saw users %q after the probes' %d, want bot: the proxy did not inject the credential", users, probed)
	}
	gitconfigs := 0
	for p, c := range n.volumes.seen(string(pod.UID)) {
		if filepath.Base(p) == ".gitconfig" {
			gitconfigs++
			if !strings.Contains(c, `[url "`+address+`/"]`) {
				t.Errorf("%s does not send git to the host-form address %s:\n%s", p, address, c)
			}
		}
	}
	if gitconfigs == 0 {
		t.Errorf("the node saw no .gitconfig of the Job's volume")
	}
	plugin, err := n.pluginPod(ctx, pod.Spec.NodeName)
	if err != nil {
		t.Fatal(err)
	}
	hostLine := `"host":"` + hostPort + `"`
	if !n.waitAudited(ctx, t, string(plugin.UID), "default/git-host", "reverse") || !strings.Contains(n.podLog(t, string(plugin.UID)), hostLine) {
		t.Errorf("the DaemonSet pod logged no injected request for default/git-host with %s", hostLine)
	}
	n.noSecret(t, password, string(pod.UID))
}

// rowHas reports whether the kubectl table out has a row for name holding
// every one of the columns, as whole fields.
func rowHas(out, name string, columns ...string) bool {
	for line := range strings.Lines(out) {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != name {
			continue
		}
		for _, c := range columns {
			found := false
			for _, v := range f[1:] {
				found = found || v == c
			}
			if !found {
				return false
			}
		}
		return true
	}
	return false
}

// replaced is s with the old, new pairs replaced; each old must be in s.
func replaced(t *testing.T, s string, pairs ...string) string {
	t.Helper()
	for i := 0; i+1 < len(pairs); i += 2 {
		if !strings.Contains(s, pairs[i]) {
			t.Fatalf("no %q to replace", pairs[i])
		}
		s = strings.ReplaceAll(s, pairs[i], pairs[i+1])
	}
	return s
}

// publicURL returns the --public-url of the first node's DaemonSet pod:
// the proxy the status writer's addresses lead to in either topology.
func (n *cluster) publicURL(ctx context.Context) (string, error) {
	p, err := n.pluginPod(ctx, nodeName)
	if err != nil {
		return "", err
	}
	for _, a := range p.Spec.Containers[0].Args {
		if v, ok := strings.CutPrefix(a, "--public-url="); ok {
			return v, nil
		}
	}
	return "", fmt.Errorf("the DaemonSet pod %s has no --public-url in %v", p.Name, p.Spec.Containers[0].Args)
}

// waitConnectorStatus waits until the status writer has reconciled the
// Connector's generation with Ready ready and, when address is set,
// status.proxy.httpAddress.url address, and returns the Connector.
func (n *cluster) waitConnectorStatus(ctx context.Context, t *testing.T, namespace, name, ready, address string) *v1alpha1.Connector {
	t.Helper()
	c := &v1alpha1.Connector{}
	if err := poll(ctx, 2*time.Minute, "the status of connector "+namespace+"/"+name, func(ctx context.Context) (bool, error) {
		if err := n.env.Client.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, c); err != nil {
			return false, err
		}
		url := ""
		if c.Status.Proxy != nil && c.Status.Proxy.HTTPAddress != nil {
			url = c.Status.Proxy.HTTPAddress.URL
		}
		for _, cd := range c.Status.Conditions {
			if cd.Type == "Ready" {
				return c.Status.ObservedGeneration == c.Generation && cd.Status == ready && (address == "" || url == address), nil
			}
		}
		return false, nil
	}); err != nil {
		t.Fatalf("%v; status %+v", err, c.Status)
	}
	return c
}
