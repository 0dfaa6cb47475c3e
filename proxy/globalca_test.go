package proxy

import (
	"context"
	"crypto/x509"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
	"github.com/connectors-node/connectors-node/kube/ca"
	"github.com/connectors-node/connectors-node/test/apiserver"
)

// TestGlobalCASecretsWhileServing: a TLS upstream signed by a CA that only
// a global CA Secret holds fails before the Secret exists, works once it is
// created, and fails again once it is deleted, with the proxy serving all
// along. A Secret with the CA but without the label, and a labelled one in
// another namespace, change nothing.
func TestGlobalCASecretsWhileServing(t *testing.T) {
	api := apiserver.Start(t, apiserver.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	serviceNS := api.Namespace(t, "connectors-system")
	otherNS := api.Namespace(t, "elsewhere")
	ns := api.Namespace(t, "proxy")
	api.ServiceAccount(t, ns, "allowed")
	api.AllowConnectors(t, ns, ns, "allowed")

	upstreamCA := newTestCA(t)
	cert := upstreamCA.serverCert(t, "api.example.test")
	upstream := startTLS(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) }), &cert)
	conn := &v1alpha1.Connector{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "api"}}
	conn.Spec.Address = "https://api.example.test:" + port(t, upstream)
	if err := api.Client.Create(ctx, conn); err != nil {
		t.Fatal(err)
	}

	globals, err := ca.NewGlobalCAs(api.Kube, serviceNS, x509.NewCertPool(), logr.Discard())
	if err != nil {
		t.Fatal(err)
	}
	globals.Start(ctx)
	if !globals.WaitForSync(ctx) {
		t.Fatal("global CA secrets did not sync")
	}
	addr := serveWithAPI(ctx, t, api, func(o *Options) { o.Roots = globals })

	token := api.Token(t, ns, "allowed", []string{proxyAudience}, time.Hour)
	client := &http.Client{Transport: &http.Transport{Proxy: nil}}
	get := func() int {
		req := newRequest(t, http.MethodGet, "http://"+addr+"/namespaces/"+ns+"/connectors/api/x", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		code, _, _ := do(t, client, req, &bodies{})
		return code
	}
	eventually := func(want int, what string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for get() != want {
			if time.Now().After(deadline) {
				t.Fatalf("%s: status is not %d after 30s", what, want)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	secret := func(namespace, name string, labelled bool) *corev1.Secret {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
			Data: map[string][]byte{"internal.pem": upstreamCA.pki.PEM, "token": []byte("ignored")}}
		if labelled {
			s.Labels = map[string]string{ca.GlobalCALabel: "true"}
		}
		if _, err := api.Kube.CoreV1().Secrets(namespace).Create(ctx, s, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		return s
	}

	if code := get(); code != http.StatusBadGateway {
		t.Fatalf("before any global CA: status %d, want 502", code)
	}
	secret(serviceNS, "unlabelled", false)
	secret(otherNS, "other-namespace", true)
	// A marker Secret created after them: once the informer has it, it
	// has seen the two above too.
	marker := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: serviceNS, Name: "marker",
		Labels: map[string]string{ca.GlobalCALabel: "true"}}, Data: map[string][]byte{"x": []byte("no certificate")}}
	if _, err := api.Kube.CoreV1().Secrets(serviceNS).Create(ctx, marker, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for !slices.Contains(globals.Secrets(), "marker") {
		time.Sleep(50 * time.Millisecond)
	}
	if got := globals.Secrets(); !slices.Equal(got, []string{"marker"}) {
		t.Fatalf("global CA secrets = %q, want only the labelled one of the service namespace", got)
	}
	if code := get(); code != http.StatusBadGateway {
		t.Fatalf("an unlabelled Secret or one in another namespace was trusted: status %d", code)
	}

	secret(serviceNS, "internal-ca", true)
	eventually(http.StatusOK, "after the global CA Secret was created")

	if err := api.Kube.CoreV1().Secrets(serviceNS).Delete(ctx, "internal-ca", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(http.StatusBadGateway, "after the global CA Secret was deleted")
}
