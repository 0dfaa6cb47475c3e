package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/connectors-node/connectors-node/test/apiserver"
	"github.com/connectors-node/connectors-node/test/servers/gitserver"
	"github.com/connectors-node/connectors-node/test/testenv"
)

// pinnedKubectl is the kubectl make testbin builds at the pinned version.
func pinnedKubectl(t *testing.T) string {
	t.Helper()
	p, err := apiserver.Kubectl()
	if err != nil {
		testenv.SkipOrFail(t, "%v", err)
	}
	return p
}

// targetServiceAccount creates a ServiceAccount in a namespace of its own
// on the suite's API server (the "target cluster") that may read and write
// ConfigMaps there and read pods, and mints its token: the credential of a
// k8s Connector.
func (s *story) targetServiceAccount(sa string) (ns, token string) {
	s.t.Helper()
	ns = s.h.env.Namespace(s.t, "e2e-target")
	s.serviceAccount(ns, sa)
	ctx := context.Background()
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: sa},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get", "list", "watch", "create", "update", "patch"}},
			{APIGroups: []string{""}, Resources: []string{"pods", "pods/log"}, Verbs: []string{"get", "list"}},
		},
	}
	if _, err := s.h.env.Kube.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		s.t.Fatal(err)
	}
	rb := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: sa},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: sa},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: sa}},
	}
	if _, err := s.h.env.Kube.RbacV1().RoleBindings(ns).Create(ctx, rb, metav1.CreateOptions{}); err != nil {
		s.t.Fatal(err)
	}
	token, err := s.h.mint(ns, sa, nil, time.Hour)
	if err != nil {
		s.t.Fatal(err)
	}
	return ns, token
}

const configMap = `apiVersion: v1
kind: ConfigMap
metadata:
  name: app
data:
  greeting: applied through the connectors proxy
`

// The k8s class of deploy/classes: kubectl (the pinned v1.37.2) with the
// mounted kubeconfig talks to the target cluster through the forward
// proxy, intercepted under the proxy CA, which adds the Connector's
// ServiceAccount token. The API server
// shows whom it saw (`kubectl auth whoami`), and get and apply work within
// that ServiceAccount's RBAC.
func TestCatalogKubernetesKubectlGetApply(t *testing.T) {
	t.Parallel()
	kubectl := pinnedKubectl(t)
	s := newStory(t, "e2e-k8s")
	targetNS, saToken := s.targetServiceAccount("deployer")
	s.bearerSecret("cluster-token", saToken)
	s.caSecret("cluster-ca", s.h.env.Config.CAData)
	s.connector(connectorSpec{name: "cluster", class: "k8s", address: s.h.env.Config.Host,
		authName: "bearerTokenAuth", secret: "cluster-token", caSecret: "cluster-ca"})
	s.serviceAccount(s.ns, "deploy")
	s.allow(s.ns, "deploy", "cluster")
	tok := s.token(s.ns, "deploy")
	v := s.publish("deploy", map[string]string{"connectors": "cluster", "configuration.names": "kubeconfig"}, tok)

	kubeconfig := v.file(t, "kubeconfig")
	if !strings.Contains(kubeconfig, `server: "`+s.h.env.Config.Host+`"`) {
		t.Errorf("the kubeconfig's server is not the cluster's address %s", s.h.env.Config.Host)
	}
	proxyURL := strings.Replace(s.h.publicURL, "://", "://"+s.ns+"%2Fcluster:"+tok.Token+"@", 1)
	if !strings.Contains(kubeconfig, `proxy-url: "`+proxyURL+`"`) {
		t.Errorf("the kubeconfig's proxy-url is not the forward proxy with the Connector's key and the pod's token")
	}

	env := append(gitserver.Env(t.TempDir()), "KUBECONFIG="+v.target+"/kubeconfig")
	kc := func(stdin string, args ...string) string {
		t.Helper()
		if stdin != "" {
			out, err := s.shell(t.TempDir(), append(env, "KUBECTL="+kubectl, "MANIFEST="+stdin),
				`printf '%s' "$MANIFEST" | "$KUBECTL" `+strings.Join(args, " "))
			if err != nil {
				t.Fatalf("kubectl %s: %v", strings.Join(args, " "), err)
			}
			return out
		}
		out, err := s.run(t.TempDir(), env, kubectl, args...)
		if err != nil {
			t.Fatalf("kubectl %s: %v", strings.Join(args, " "), err)
		}
		return out
	}

	if got := kc("", "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"); got != "system:serviceaccount:"+targetNS+":deployer" {
		t.Errorf("the API server saw %q, want the Connector's ServiceAccount: the proxy did not inject its token", got)
	}
	kc(configMap, "apply", "-n", targetNS, "-f", "-")
	if got := kc("", "get", "configmap", "app", "-n", targetNS, "-o", "jsonpath={.data.greeting}"); got != "applied through the connectors proxy" {
		t.Errorf("kubectl get after apply: %q", got)
	}
	if out := kc("", "get", "configmaps", "-n", targetNS); !strings.Contains(out, "app") {
		t.Errorf("kubectl get configmaps does not list app:\n%s", out)
	}
	// The ServiceAccount's RBAC, not the pod's, decides: it may not list
	// Secrets.
	if out, err := s.run(t.TempDir(), env, kubectl, "get", "secrets", "-n", targetNS); err == nil || !strings.Contains(out, "Forbidden") {
		t.Errorf("kubectl get secrets: want Forbidden for the Connector's ServiceAccount, got %v:\n%s", err, out)
	}
	if s.auditLine("cluster", "mitm") == "" {
		t.Errorf("no audit line for an intercepted request with the credential injected")
	}
}
