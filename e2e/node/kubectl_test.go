package node

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/connectors-node/connectors-node/test/apiserver"
	"github.com/connectors-node/connectors-node/test/testenv"
)

// kubectlTargetObjects are what the story creates with the admin
// kubeconfig: a ServiceAccount of the "target cluster" (this node's API
// server) that may read pods and their logs and exec into them, the k8s
// Connector with its token, and the workload's ServiceAccount allowed to
// use the Connector.
const kubectlTargetObjects = `apiVersion: v1
kind: ServiceAccount
metadata: {name: operator, namespace: default}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: operator, namespace: default}
rules:
  - {apiGroups: [""], resources: [pods, pods/log], verbs: [get, list]}
  - {apiGroups: [""], resources: [pods/exec], verbs: [get, create]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: operator, namespace: default}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: operator}
subjects: [{kind: ServiceAccount, name: operator, namespace: default}]
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: kubectl-user, namespace: default}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: use-cluster-connector, namespace: default}
rules:
  - {apiGroups: [connectors.alauda.io], resources: [connectors], resourceNames: [cluster], verbs: [get]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: kubectl-user-uses-cluster, namespace: default}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: use-cluster-connector}
subjects: [{kind: ServiceAccount, name: kubectl-user, namespace: default}]
`

// The k8s class on the real node: a pod mounts the kubeconfig of a k8s
// Connector whose cluster is this node's API server, and the pinned kubectl
// with that kubeconfig reads the pod's log and execs into it through the
// proxy (TLS interception, the Connector's ServiceAccount token injected).
// exec is an upgrade from the API server to kubelet: once over WebSocket
// (kubectl's default) and once over SPDY/3.1, both of which the proxy's
// upgrade rule passes; the audit lines show the 101 answers.
func TestKubectlLogsAndExecThroughTheProxy(t *testing.T) {
	n := suite(t)
	kubectl, err := apiserver.Kubectl()
	if err != nil {
		testenv.SkipOrFail(t, "%v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	if _, err := n.kubectl(ctx, catalogClass(t, "kubernetes.yaml"), "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	if _, err := n.kubectl(ctx, kubectlTargetObjects, "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	secs := int64(3600)
	tr, err := n.env.Kube.CoreV1().ServiceAccounts("default").CreateToken(ctx, "operator",
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &secs}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	saToken := tr.Status.Token
	secrets := []*corev1.Secret{
		{ObjectMeta: metav1.ObjectMeta{Name: "cluster-token", Namespace: "default"},
			Type: "connectors.cpaas.io/bearer-token", StringData: map[string]string{"token": saToken}},
		{ObjectMeta: metav1.ObjectMeta{Name: "cluster-ca", Namespace: "default"},
			Data: map[string][]byte{"ca.crt": n.env.Config.CAData}},
	}
	for _, sec := range secrets {
		if _, err := n.env.Kube.CoreV1().Secrets("default").Create(ctx, sec, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		_ = n.env.Kube.CoreV1().Secrets("default").Delete(context.Background(), "cluster-token", metav1.DeleteOptions{})
		_ = n.env.Kube.CoreV1().Secrets("default").Delete(context.Background(), "cluster-ca", metav1.DeleteOptions{})
	})
	connector := `apiVersion: connectors.alauda.io/v1alpha1
kind: Connector
metadata: {name: cluster, namespace: default}
spec:
  connectorClassName: k8s
  address: https://kubernetes.default.svc
  auth: {name: bearerTokenAuth, secretRef: {name: cluster-token}}
  caCertSecretRef: {name: cluster-ca}
`
	if _, err := n.kubectl(ctx, connector, "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}

	const podName = "kubectl-target"
	pod := fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: %s, namespace: default}
spec:
  serviceAccountName: kubectl-user
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  containers:
    - name: main
      image: %s
      command: ["sh", "-c", "echo LOG-FROM-THE-POD; exec sleep 3600"]
      volumeMounts:
        - {name: kube, mountPath: /opt/kube, readOnly: true}
  volumes:
    - name: kube
      csi:
        driver: connectors-csi
        readOnly: true
        volumeAttributes: {connectors: cluster, configuration.names: kubeconfig}
`, podName, workloadImage)
	if _, err := n.kubectl(ctx, pod, "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.deletePod(t, podName) })
	p := n.waitPhase(ctx, t, podName, corev1.PodRunning, corev1.PodFailed, corev1.PodSucceeded)
	if p.Status.Phase != corev1.PodRunning {
		t.Fatalf("the pod is %s, want Running", p.Status.Phase)
	}
	// The pinned kubectl runs in the pod with the pod's own kubeconfig
	// (started there with the admin's kubectl exec): its connections come
	// from the pod's address, as the token's binding wants.
	run := func(env []string, args ...string) string {
		t.Helper()
		script := strings.Join(append(env, "HOME=/tmp", "KUBECONFIG=/opt/kube/kubeconfig", "kubectl", shellQuote(args)), " ")
		cmd := exec.CommandContext(ctx, kubectl, "--kubeconfig="+n.kubeconfig, "exec", "-n", "default", podName, "--", "sh", "-c", script) //nolint:gosec // the pinned kubectl of the tests
		cmd.Env = []string{"HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH")}
		out, err := cmd.CombinedOutput()
		if strings.Contains(string(out), saToken) {
			t.Fatalf("the output of kubectl %s holds the Connector's token", strings.Join(args, " "))
		}
		if err != nil {
			t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		t.Logf("$ kubectl %s\n%s", strings.Join(args, " "), out)
		return string(out)
	}
	if out := run(nil, "logs", "-n", "default", podName); !strings.Contains(out, "LOG-FROM-THE-POD") {
		t.Errorf("kubectl logs does not show the pod's output:\n%s", out)
	}
	if out := run(nil, "exec", "-n", "default", podName, "--", "sh", "-c", "echo EXEC-OK $((6*7))"); !strings.Contains(out, "EXEC-OK 42") {
		t.Errorf("kubectl exec over WebSocket did not run the command:\n%s", out)
	}
	if out := run([]string{"KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false"}, "exec", "-n", "default", podName, "--", "sh", "-c", "echo EXEC-OK $((6*7))"); !strings.Contains(out, "EXEC-OK 42") {
		t.Errorf("kubectl exec over SPDY/3.1 did not run the command:\n%s", out)
	}

	// The audit line of an upgrade is written when the tunnel closes, which
	// can be just after kubectl exits: wait for both.
	upgrades := 0
	err = poll(ctx, 30*time.Second, "the exec upgrades' audit lines", func(context.Context) (bool, error) {
		logs, err := n.logs()
		if err != nil {
			return false, err
		}
		upgrades = 0
		for line := range strings.Lines(logs) {
			if strings.Contains(line, `"connector":"default/cluster"`) && strings.Contains(line, "/pods/"+podName+"/exec") &&
				strings.Contains(line, `"status":101`) && strings.Contains(line, `"injected":true`) {
				upgrades++
			}
		}
		return upgrades >= 2, nil
	})
	if err != nil {
		t.Errorf("the node's audit shows %d exec upgrades (101) with the credential injected, want 2 (WebSocket and SPDY): %v", upgrades, err)
	}
	n.noSecret(t, saToken, string(p.UID))
}

// shellQuote quotes each argument for sh and joins them with spaces.
func shellQuote(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}
