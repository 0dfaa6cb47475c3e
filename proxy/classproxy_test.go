package proxy

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
)

// A Connector whose class has a proxy of its own is refused by the built-in
// proxy, in reverse and forward mode, with a message naming that proxy and
// no credential sent; a class naming upstream's built-in proxy Service is
// served here.
func TestClassWithItsOwnProxyIsRefused(t *testing.T) {
	objects := newFakeObjects()
	log := &recorderLog{}
	plain := httptest.NewServer(log.handler("P"))
	t.Cleanup(plain.Close)
	addr := "http://own.example.test:" + port(t, plain)
	objects.secret("team-a", "cred", "kubernetes.io/basic-auth", map[string]string{"username": upstreamUser, "password": upstreamPass})
	own := objects.connector("team-a", "own", addr, "cred")
	own.Spec.ConnectorClassName = "plugin"
	builtin := objects.connector("team-a", "builtin", addr, "cred")
	builtin.Spec.ConnectorClassName = "upstream-builtin"
	objects.class(&v1alpha1.ConnectorClass{ObjectMeta: metav1.ObjectMeta{Name: "plugin"},
		Spec: v1alpha1.ConnectorClassSpec{Proxy: &v1alpha1.ProxySpec{Destination: v1alpha1.Destination{
			Ref: &v1alpha1.KReference{Kind: "Service", Name: "oci-plugin", Namespace: "plugins"}}}}})
	objects.class(&v1alpha1.ConnectorClass{ObjectMeta: metav1.ObjectMeta{Name: "upstream-builtin"},
		Spec: v1alpha1.ConnectorClassSpec{Proxy: &v1alpha1.ProxySpec{Destination: v1alpha1.Destination{
			Ref: &v1alpha1.KReference{Kind: "Service", Name: v1alpha1.UpstreamBuiltinProxyService, Namespace: "connectors-system"}}}}})
	e := startEnv(t, objects, nil)

	req := newRequest(t, http.MethodGet, e.url+"/namespaces/team-a/connectors/own/x", nil)
	req.Header.Set("Authorization", "Bearer "+tokA)
	code, _, body := do(t, e.reverseClient(), req, nil)
	if code != http.StatusForbidden || !strings.Contains(body, "http://oci-plugin.plugins.svc") || !strings.Contains(body, `"plugin"`) {
		t.Errorf("reverse: %d %q, want 403 naming the class's proxy", code, body)
	}
	code, _, body = do(t, e.forwardClient("team-a/own", tokA), newRequest(t, http.MethodGet, addr+"/x", nil), nil)
	if code != http.StatusForbidden || !strings.Contains(body, "http://oci-plugin.plugins.svc") {
		t.Errorf("forward: %d %q, want 403 naming the class's proxy", code, body)
	}
	if injectedIn(log.take(), basicValue(upstreamUser, upstreamPass)) {
		t.Fatal("a credential was sent for a Connector of another proxy")
	}

	req = newRequest(t, http.MethodGet, e.url+"/namespaces/team-a/connectors/builtin/x", nil)
	req.Header.Set("Authorization", "Bearer "+tokA)
	if code, _, body := do(t, e.reverseClient(), req, nil); code != http.StatusOK {
		t.Errorf("class naming upstream's built-in proxy: %d %q, want 200", code, body)
	}
}
