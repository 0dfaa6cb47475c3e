package kube_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
	"github.com/connectors-node/connectors-node/test/apiserver"
	"github.com/connectors-node/connectors-node/test/testenv"
)

func js(t testing.TB, v any) apiextensionsv1.JSON {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return apiextensionsv1.JSON{Raw: b}
}

// realisticObjects are objects as upstream users write them, using every
// field the node service reads.
func realisticObjects(t testing.TB, ns string) (*corev1.Secret, []*v1alpha1.Connector, *v1alpha1.ConnectorClass) {
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "git-auth"},
		Type:       corev1.SecretTypeBasicAuth,
		StringData: map[string]string{"username": "bot", "password": "s3cret"},
	}
	git := &v1alpha1.Connector{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "git"},
		Spec: v1alpha1.ConnectorSpec{
			ConnectorClassName: "git",
			Address:            "https://git.example.test/group",
			Auth: v1alpha1.ConnectorAuth{
				Name:      "basicAuth",
				SecretRef: &corev1.ObjectReference{Name: "git-auth", Namespace: ns},
				Params:    []v1alpha1.Param{{Name: "repository", Value: js(t, "group/app")}},
			},
		},
	}
	registry := &v1alpha1.Connector{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "registry"},
		Spec: v1alpha1.ConnectorSpec{
			ConnectorClassName: "oci",
			Address:            "https://registry.example.test",
			AddressExtensions: []v1alpha1.Param{
				{Name: "tokenRealm", Value: js(t, "https://auth.example.test/token")},
				{Name: "mirrors", Value: js(t, []string{"https://mirror.example.test"})},
			},
			Params: []v1alpha1.Param{
				{Name: "insecure", Value: js(t, false)},
				{Name: "labels", Value: js(t, map[string]any{"team": "a", "tier": 2})},
			},
			CACertSecretRef: &corev1.LocalObjectReference{Name: "registry-ca"},
		},
	}
	class := &v1alpha1.ConnectorClass{
		ObjectMeta: metav1.ObjectMeta{
			Name:        "git",
			Annotations: map[string]string{v1alpha1.ProxyResolverAnnotation: "path"},
		},
		Spec: v1alpha1.ConnectorClassSpec{
			Address: &v1alpha1.ParamSpec{Name: "address", Type: "string"},
			Params: []v1alpha1.ParamSpec{
				{Name: "sslVerify", Type: "string", Default: ptr(js(t, "true")), Description: "verify TLS"},
				{Name: "depth", Type: "object", Properties: map[string]v1alpha1.PropertySpec{"value": {Type: "string"}}, Default: ptr(js(t, map[string]any{"value": "1"}))},
			},
			Auth: v1alpha1.ConnectorClassAuth{Types: []v1alpha1.AuthType{
				{Name: "basicAuth", SecretType: string(corev1.SecretTypeBasicAuth), Params: []v1alpha1.ParamSpec{{Name: "repository", Type: "string"}}},
				{Name: "none", Optional: true, Generator: &v1alpha1.Rego{Rego: "package proxy\nauth = {}"}},
			}},
			Configurations: []v1alpha1.Configuration{
				{
					Name: "gitconfig",
					Data: map[string]string{".gitconfig": "[http]\n\textraHeader = Authorization: Basic {{ printf \":%s\" .context.token | b64enc }}\n{{- range .connectors }}\n[url \"{{ .status.proxyAddress }}\"]\n\tinsteadOf = {{ .spec.address }}\n{{- end }}\n"},
				},
				{
					Name:   "settings",
					Data:   map[string]string{"settings.conf": "mirror={{ .configurations.settings.mirror }}\n"},
					Params: []v1alpha1.ParamSpec{{Name: "mirror", Type: "string", Default: ptr(js(t, "https://mirror.example.test"))}},
				},
			},
			Proxy: &v1alpha1.ProxySpec{
				Destination: v1alpha1.Destination{
					Ref:      &v1alpha1.KReference{Kind: "Service", Name: "connectors-proxy", Namespace: "connectors-system", APIVersion: "v1"},
					Audience: "connectors-proxy",
				},
				AuthExtractor: &v1alpha1.Rego{Rego: "package proxy\nauth = {\"token\": input.request.headers[\"Private-Token\"][0]}"},
			},
		},
	}
	return secret, []*v1alpha1.Connector{git, registry}, class
}

func ptr[T any](v T) *T { return &v }

// referenceCRDs is the directory of the upstream CRDs: $REFERENCE_CRDS, else
// ../shared/reference/crds beside the repository.
func referenceCRDs() string {
	if dir := os.Getenv("REFERENCE_CRDS"); dir != "" {
		return dir
	}
	return filepath.Join(apiserver.RepoRoot(), "..", "shared", "reference", "crds")
}

// TestReferenceCRDCompatibility loads the upstream CRDs into a real API
// server, writes realistic objects, reads them back through the project's
// types and checks nothing is lost; then does the same with the project's
// generated CRDs.
func TestReferenceCRDCompatibility(t *testing.T) {
	dirs := map[string]string{
		"reference": referenceCRDs(),
		"generated": filepath.Join(apiserver.RepoRoot(), "deploy", "base", "crds"),
	}
	for name, dir := range dirs {
		t.Run(name, func(t *testing.T) {
			if _, err := os.Stat(dir); err != nil && name == "reference" && !testenv.InCI() {
				t.Skipf("upstream reference CRDs not found (%v); they live beside the repository in ../shared/reference/crds, or set REFERENCE_CRDS", err)
			}
			env := apiserver.Start(t, apiserver.Options{CRDDirs: []string{dir}})
			ctx := context.Background()
			ns := env.Namespace(t, "compat")
			secret, connectors, class := realisticObjects(t, ns)
			_, err := env.Kube.CoreV1().Secrets(ns).Create(ctx, secret, metav1.CreateOptions{})
			require.NoError(t, err)

			objs := []client.Object{class}
			for _, c := range connectors {
				objs = append(objs, c)
			}
			for _, want := range objs {
				sent := want.DeepCopyObject().(client.Object)
				require.NoError(t, env.Client.Create(ctx, sent), "creating %T", want)
				got := want.DeepCopyObject().(client.Object)
				require.NoError(t, env.Client.Get(ctx, client.ObjectKeyFromObject(sent), got))
				requireSameSpec(t, want, got)
			}

			// A status written by a controller survives too.
			c := connectors[0].DeepCopy()
			require.NoError(t, env.Client.Get(ctx, client.ObjectKeyFromObject(c), c))
			c.Status.Proxy = &v1alpha1.ProxyStatus{HTTPAddress: &v1alpha1.Addressable{
				URL: "http://connectors-proxy.connectors-system.svc/namespaces/" + ns + "/connectors/git", Audience: "connectors-proxy",
			}}
			c.Status.Conditions = []v1alpha1.Condition{{Type: "Ready", Status: "True", Reason: "Ok"}}
			require.NoError(t, env.Client.Status().Update(ctx, c))
			got := &v1alpha1.Connector{}
			require.NoError(t, env.Client.Get(ctx, client.ObjectKeyFromObject(c), got))
			require.Equal(t, c.Status, got.Status)
			require.Equal(t, c.Status.Proxy.HTTPAddress.URL, got.ProxyAddress("http://ignored"))
		})
	}
}

func requireSameSpec(t *testing.T, want, got client.Object) {
	t.Helper()
	switch w := want.(type) {
	case *v1alpha1.Connector:
		require.Equal(t, mustJSON(t, w.Spec), mustJSON(t, got.(*v1alpha1.Connector).Spec))
	case *v1alpha1.ConnectorClass:
		g := got.(*v1alpha1.ConnectorClass)
		require.Equal(t, mustJSON(t, w.Spec), mustJSON(t, g.Spec))
		require.Equal(t, w.Annotations, g.Annotations)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}
