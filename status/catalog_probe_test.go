package status_test

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
	"github.com/connectors-node/connectors-node/status"
	"github.com/connectors-node/connectors-node/test/apiserver"
	"github.com/connectors-node/connectors-node/test/servers/authlog"
	"github.com/connectors-node/connectors-node/test/servers/harbor"
	"github.com/connectors-node/connectors-node/test/servers/repomanager"
	"github.com/connectors-node/connectors-node/test/servers/sonarqube"
)

// catalogClass reads a ConnectorClass of deploy/classes.
func catalogClass(t *testing.T, file string) *v1alpha1.ConnectorClass {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(apiserver.RepoRoot(), "deploy", "classes", file))
	require.NoError(t, err)
	var c v1alpha1.ConnectorClass
	require.NoError(t, yaml.UnmarshalStrict(raw, &c), "deploy/classes/%s", file)
	return &c
}

// TestCatalogProbesOnUpstreamConnectors applies the harbor, nexus, jfrog
// and sonarqube classes of deploy/classes and, for each, two Connectors as
// upstream's documentation writes them against a stand-in of the tool: one
// with the right credential is Ready with LivenessReady and AuthReady
// True, one with a wrong credential is Ready=False with AuthReady=False
// CredentialsRejected (upstream's reason), and no condition or Event
// names the credential.
func TestCatalogProbesOnUpstreamConnectors(t *testing.T) {
	env := apiserver.Shared(t)
	ns := env.Namespace(t, "catalog-probes")
	startNode(t, env, nodeOptions{identity: "node-a", leaseNS: ns})

	const wrong = "wr0ng-PASSWORD-of-the-test"
	nexus, err := repomanager.Start(repomanager.Nexus, upstreamUser, upstreamPass)
	require.NoError(t, err)
	t.Cleanup(nexus.Close)
	jfrog, err := repomanager.Start(repomanager.Artifactory, upstreamUser, upstreamPass)
	require.NoError(t, err)
	t.Cleanup(jfrog.Close)
	hs := harbor.New(upstreamUser, upstreamPass, nil)
	hb := httptest.NewServer(hs)
	t.Cleanup(hb.Close)
	sq := sonarqube.Start(upstreamPass)
	t.Cleanup(sq.Close)

	tests := []struct {
		file, address, auth string
		secretType          corev1.SecretType
		// reached is the probe path each tool must have seen.
		reached []string
	}{
		{file: "harbor.yaml", address: hb.URL, auth: "basicAuth", secretType: corev1.SecretTypeBasicAuth,
			reached: []string{"/api/v2.0/ping", "/api/v2.0/users/current"}},
		{file: "nexus.yaml", address: "http://" + nexus.Addr, auth: "basicAuth", secretType: corev1.SecretTypeBasicAuth,
			reached: []string{"/service/rest/v1/status", "/service/rest/v1/repositories"}},
		{file: "jfrog.yaml", address: "http://" + jfrog.Addr, auth: "basicAuth", secretType: corev1.SecretTypeBasicAuth,
			reached: []string{"/artifactory/api/system/ping"}},
		{file: "sonarqube.yaml", address: sq.URL, auth: "tokenAuth", secretType: "connectors.cpaas.io/bearer-token",
			reached: []string{"/api/system/status", "/api/authentication/validate"}},
	}
	ctx := context.Background()
	for _, tt := range tests {
		class := catalogClass(t, tt.file)
		if err := env.Client.Create(ctx, class); err != nil && !apierrors.IsAlreadyExists(err) {
			require.NoError(t, err)
		}
		t.Cleanup(func() { _ = env.Client.Delete(context.Background(), class) })
		for _, c := range []struct{ name, password string }{{"good", upstreamPass}, {"bad", wrong}} {
			secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: class.Name + "-" + c.name}, Type: tt.secretType}
			if tt.secretType == corev1.SecretTypeBasicAuth {
				secret.StringData = map[string]string{"username": upstreamUser, "password": c.password}
			} else {
				secret.StringData = map[string]string{"token": c.password}
			}
			create(t, env, secret, &v1alpha1.Connector{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: class.Name + "-" + c.name},
				Spec: v1alpha1.ConnectorSpec{
					ConnectorClassName: class.Name,
					Address:            tt.address,
					Auth:               v1alpha1.ConnectorAuth{Name: tt.auth, SecretRef: &corev1.ObjectReference{Name: secret.Name}},
				},
			})
		}
	}
	for _, tt := range tests {
		name := strings.TrimSuffix(tt.file, ".yaml")
		t.Run(name, func(t *testing.T) {
			good := waitReady(t, env, ns, name+"-good", status.True, "")
			for _, typ := range []string{status.TypeLivenessReady, status.TypeAuthReady} {
				c := condition(good, typ)
				require.NotNil(t, c, "%s-good has no %s", name, typ)
				require.Equal(t, status.True, c.Status, "%s-good %s: %s %s", name, typ, c.Reason, c.Message)
				require.Empty(t, c.Reason, "%s-good %s ran no probe", name, typ)
			}
			bad := waitReady(t, env, ns, name+"-bad", status.False, status.ReasonCredentialsRejected)
			auth := condition(bad, status.TypeAuthReady)
			require.NotNil(t, auth)
			require.Equal(t, status.False, auth.Status)
			require.Equal(t, status.ReasonCredentialsRejected, auth.Reason)
			require.Equal(t, status.True, condition(bad, status.TypeLivenessReady).Status, "a wrong credential is not an unreachable tool")
			for _, c := range append(good.Status.Conditions, bad.Status.Conditions...) {
				require.NotContains(t, c.Message, upstreamPass)
				require.NotContains(t, c.Message, wrong)
			}
			var events corev1.EventList
			require.NoError(t, env.Client.List(ctx, &events))
			for _, e := range events.Items {
				require.NotContains(t, e.Message, upstreamPass)
				require.NotContains(t, e.Message, wrong)
			}
		})
	}
	seen := map[string][]authlog.Request{
		"harbor": hs.Log.Requests(), "nexus": nexus.Log.Requests(), "jfrog": jfrog.Log.Requests(), "sonarqube": sq.Log.Requests(),
	}
	for _, tt := range tests {
		name := strings.TrimSuffix(tt.file, ".yaml")
		for _, p := range tt.reached {
			require.True(t, slices.ContainsFunc(seen[name], func(r authlog.Request) bool { return r.Path == p }),
				"the %s stand-in never saw the probe of %s", name, p)
		}
	}
}
