package status_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
	"github.com/connectors-node/connectors-node/status"
	"github.com/connectors-node/connectors-node/test/apiserver"
)

// generatedCRD reads one of the project's generated CRDs.
func generatedCRD(t *testing.T, file string) *apiextensionsv1.CustomResourceDefinition {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(apiserver.RepoRoot(), "deploy", "base", "crds", file))
	require.NoError(t, err)
	crd := &apiextensionsv1.CustomResourceDefinition{}
	require.NoError(t, yaml.Unmarshal(b, crd))
	return crd
}

// preRuleCRDs writes the generated CRDs into a directory with the address
// rules of spec.address taken out: the CRDs of a release before them.
func preRuleCRDs(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{"connectors.alauda.io_connectors.yaml", "connectors.alauda.io_connectorclasses.yaml"} {
		crd := generatedCRD(t, f)
		if crd.Spec.Names.Kind == "Connector" {
			spec := crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"]
			address := spec.Properties["address"]
			require.NotEmpty(t, address.Pattern, "the generated CRD has no address pattern")
			address.Pattern, address.MaxLength, address.XValidations = "", nil, nil
			spec.Properties["address"] = address
			crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"] = spec
		}
		b, err := yaml.Marshal(crd)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, f), b, 0o600))
	}
	return dir
}

// TestUpgradeReportsConnectorsStoredBeforeTheAddressRule installs the CRDs
// without the address rules, stores Connectors whose addresses break them,
// then applies the generated CRDs, as an upgrade does. On the real API
// server the stored Connectors stay readable and listable, their status
// can be written, and the status writer reports each with Ready False,
// reason InvalidAddress and the field; a spec update that keeps the bad
// address is let through (validation ratcheting), one that sets another
// bad address is refused, and fixing the address clears the report.
func TestUpgradeReportsConnectorsStoredBeforeTheAddressRule(t *testing.T) {
	env := apiserver.Start(t, apiserver.Options{CRDDirs: []string{preRuleCRDs(t)}})
	ctx := context.Background()
	ns := env.Namespace(t, "upgrade")
	up := startUpstream(t)

	cls := gitClass("git-"+ns, nil)
	const hostile = "https://git.example.test/x\n[core]\n\tsshCommand = touch /tmp/pwned"
	badExt := gitConnector(t, ns, "bad-extension", cls.Name, up.URL, "")
	badExt.Spec.AddressExtensions = []v1alpha1.Param{{Name: "api", Value: js(t, "https://api.example.test/<x>")}}
	create(t, env, cls, gitConnector(t, ns, "bad", cls.Name, hostile, ""), badExt)

	// Apply the new CRD, as kubectl apply or helm upgrade would.
	ext, err := apiextensionsclient.NewForConfig(env.Config)
	require.NoError(t, err)
	crds := ext.ApiextensionsV1().CustomResourceDefinitions()
	stored, err := crds.Get(ctx, "connectors.connectors.alauda.io", metav1.GetOptions{})
	require.NoError(t, err)
	stored.Spec = generatedCRD(t, "connectors.alauda.io_connectors.yaml").Spec
	_, err = crds.Update(ctx, stored, metav1.UpdateOptions{})
	require.NoError(t, err)
	eventually(t, "the new CRD refuses a bad address", func() (bool, string) {
		probe := gitConnector(t, ns, "probe", cls.Name, hostile, "")
		err := env.Client.Create(ctx, probe)
		if err == nil {
			_ = env.Client.Delete(ctx, probe)
			return false, "created"
		}
		return apierrors.IsInvalid(err), err.Error()
	})

	// Still readable and listable as they were.
	bad := getConnector(t, env, ns, "bad")
	require.Equal(t, hostile, bad.Spec.Address)
	var list v1alpha1.ConnectorList
	require.NoError(t, env.Client.List(ctx, &list, client.InNamespace(ns)))
	names := make([]string, 0, len(list.Items))
	for _, c := range list.Items {
		names = append(names, c.Name)
	}
	require.ElementsMatch(t, []string{"bad", "bad-extension"}, names)

	// The status writer reports both; its status patch goes through.
	n := startNode(t, env, nodeOptions{identity: "node-a", leaseNS: ns})
	bad = waitReady(t, env, ns, "bad", status.False, status.ReasonInvalidAddress)
	msg := condition(bad, status.TypeReady).Message
	assert.Contains(t, msg, "spec.address holds control character U+000A")
	assert.NotContains(t, msg, "sshCommand", "the condition repeats the value")
	assert.Nil(t, bad.Status.Proxy, "no proxy address for a connector the node does not serve")
	e := waitReady(t, env, ns, "bad-extension", status.False, status.ReasonInvalidAddress)
	assert.Contains(t, condition(e, status.TypeReady).Message, `spec.addressExtensions[api] holds '<'`)
	eventually(t, "an InvalidAddress Warning event", func() (bool, string) {
		var events corev1.EventList
		require.NoError(t, env.Client.List(ctx, &events, client.InNamespace(ns)))
		for _, ev := range events.Items {
			if ev.InvolvedObject.Name == "bad" && ev.Reason == status.ReasonInvalidAddress && ev.Type == corev1.EventTypeWarning {
				return true, ""
			}
		}
		return false, "no event"
	})
	assert.Zero(t, up.hits.Load(), "a connector with an invalid address was probed")
	require.NotContains(t, n.logs.String(), "sshCommand")

	// A status update by anyone else works too.
	bad.Status.Annotations = map[string]string{"example.test/seen": "yes"}
	require.NoError(t, env.Client.Status().Update(ctx, bad))

	// A spec update that keeps the address is ratcheted through, and the
	// report stays.
	bad = getConnector(t, env, ns, "bad")
	bad.Spec.Params = []v1alpha1.Param{{Name: "note", Value: js(t, "kept")}}
	require.NoError(t, env.Client.Update(ctx, bad), "an update that keeps the stored address")
	waitReady(t, env, ns, "bad", status.False, status.ReasonInvalidAddress)

	// Another bad address is refused, naming the field.
	bad = getConnector(t, env, ns, "bad")
	bad.Spec.Address = "https://git.example.test/<x>"
	err = env.Client.Update(ctx, bad)
	require.True(t, apierrors.IsInvalid(err), "%v", err)
	require.Contains(t, err.Error(), "spec.address")

	// Fixing the address ends the report.
	bad = getConnector(t, env, ns, "bad")
	bad.Spec.Address = up.URL
	require.NoError(t, env.Client.Update(ctx, bad))
	eventually(t, "the fixed connector is no longer InvalidAddress", func() (bool, string) {
		c := getConnector(t, env, ns, "bad")
		r := condition(c, status.TypeReady)
		if r == nil || c.Status.ObservedGeneration != c.Generation {
			return false, "not observed yet"
		}
		return r.Reason != status.ReasonInvalidAddress, r.Reason + " " + r.Message
	})
}
