package deploy_test

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/connectors-node/connectors-node/configgen"
	"github.com/connectors-node/connectors-node/grammar/publicurl"
	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
	"github.com/connectors-node/connectors-node/proxy/policy"
	"github.com/connectors-node/connectors-node/test/apiserver"
	"github.com/connectors-node/connectors-node/test/servers/manifests"
)

// catalog renders deploy/classes with kustomize, after checking that its
// kustomization lists every file beside it, and returns the classes.
func catalog(t *testing.T) []*v1alpha1.ConnectorClass {
	t.Helper()
	listed, err := manifests.CatalogFiles("..")
	require.NoError(t, err)
	files, err := filepath.Glob("classes/*.yaml")
	require.NoError(t, err)
	for i, f := range listed {
		listed[i] = filepath.Clean(f)
	}
	for _, f := range files {
		if filepath.Base(f) != "kustomization.yaml" {
			require.Contains(t, listed, filepath.Clean(filepath.Join("..", "deploy", f)), "classes/kustomization.yaml does not list %s", f)
		}
	}

	objs := kustomize(t, "classes")
	require.NotEmpty(t, objs)
	var out []*v1alpha1.ConnectorClass
	names := map[string]bool{}
	for _, u := range objs {
		require.Equal(t, v1alpha1.GroupVersion.String(), u.GetAPIVersion(), "%s %s", u.GetKind(), u.GetName())
		require.Equal(t, "ConnectorClass", u.GetKind(), "the catalog holds a %s (%s)", u.GetKind(), u.GetName())
		require.Empty(t, u.GetNamespace(), "ConnectorClass %s: the kind is cluster-scoped", u.GetName())
		require.False(t, names[u.GetName()], "ConnectorClass %s twice", u.GetName())
		names[u.GetName()] = true
		c := &v1alpha1.ConnectorClass{}
		require.NoError(t, runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, c, true), "ConnectorClass %s", u.GetName())
		out = append(out, c)
	}
	return out
}

// TestCatalogIsValidOnARealAPIServer installs the catalog into a real API
// server with the project's CRDs, with strict field validation, so a field
// the CRD does not know or a value of the wrong type fails here.
func TestCatalogIsValidOnARealAPIServer(t *testing.T) {
	classes := catalog(t)
	env := apiserver.Start(t, apiserver.Options{})
	ctx := context.Background()
	for _, u := range kustomize(t, "classes") {
		err := env.Client.Create(ctx, u, &client.CreateOptions{Raw: &metav1.CreateOptions{FieldValidation: metav1.FieldValidationStrict}})
		require.NoError(t, err, "ConnectorClass %s", u.GetName())
	}
	for _, want := range classes {
		got := &v1alpha1.ConnectorClass{}
		require.NoError(t, env.Client.Get(ctx, client.ObjectKey{Name: want.Name}, got))
		require.Equal(t, want.Spec, got.Spec, "ConnectorClass %s changed on the way through the API server", want.Name)
	}
}

// TestCatalogClassesRender renders every configuration of every class for
// a Connector of that class, and compiles every class's Rego policies.
func TestCatalogClassesRender(t *testing.T) {
	engine := policy.New(policy.Options{})
	for _, class := range catalog(t) {
		t.Run(class.Name, func(t *testing.T) {
			require.NotNil(t, class.Spec.Address, "the class declares no address")
			require.NotEmpty(t, class.Spec.Auth.Types, "the class declares no auth type")
			require.NotEmpty(t, class.Spec.Configurations, "the class renders no configuration")
			require.Empty(t, engine.Check(class), "the class's policies do not compile")
			c := sampleConnector(class)
			var names []string
			params := map[string]map[string]any{}
			for _, cfg := range class.Spec.Configurations {
				names = append(names, cfg.Name)
				for _, p := range cfg.Params {
					if p.Annotations[v1alpha1.RequiredParamAnnotation] == "true" {
						if params[cfg.Name] == nil {
							params[cfg.Name] = map[string]any{}
						}
						params[cfg.Name][p.Name] = "sample-repository"
					}
				}
			}
			files, err := configgen.Render(configgen.Input{
				Params:         params,
				Connectors:     []configgen.Connector{{Object: c, Class: class, ProxyAddress: c.ProxyAddress(publicurl.Default)}},
				Token:          "header.payload.signature",
				ProxyURL:       publicurl.MustParse(publicurl.Default),
				CACertPEM:      []byte("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"),
				Configurations: names,
			})
			require.NoError(t, err)
			for _, cfg := range class.Spec.Configurations {
				for file := range cfg.Data {
					require.NotEmpty(t, files[file], "configuration %s: %s rendered empty", cfg.Name, file)
					require.NotContains(t, string(files[file]), "<no value>", "configuration %s: %s uses a missing value", cfg.Name, file)
				}
			}
		})
	}
}

// TestCatalogIsTheDocsIndex checks that the catalog table of
// docs/catalog.md names every class of the catalog.
func TestCatalogIsTheDocsIndex(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "docs", "catalog.md"))
	require.NoError(t, err)
	page := string(b)
	var missing []string
	for _, class := range catalog(t) {
		if !strings.Contains(page, "| `"+class.Name+"` |") {
			missing = append(missing, class.Name)
		}
	}
	sort.Strings(missing)
	require.Empty(t, missing, "the catalog table of docs/catalog.md lacks these classes")
}

// sampleConnector is a Connector of class with its first auth type and a
// Secret name when that type takes one.
func sampleConnector(class *v1alpha1.ConnectorClass) *v1alpha1.Connector {
	c := &v1alpha1.Connector{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "sample-" + class.Name},
		Spec:       v1alpha1.ConnectorSpec{ConnectorClassName: class.Name, Address: "https://tool.example.com"},
	}
	auth := class.Spec.Auth.Types[0]
	c.Spec.Auth.Name = auth.Name
	if auth.SecretType != "" {
		c.Spec.Auth.SecretRef = &corev1.ObjectReference{Name: "sample-credential"}
	}
	for _, ext := range class.Spec.AddressExtensions {
		c.Spec.AddressExtensions = append(c.Spec.AddressExtensions, v1alpha1.Param{Name: ext.Name})
		c.Spec.AddressExtensions[len(c.Spec.AddressExtensions)-1].Value.Raw = []byte(`"https://` + ext.Name + `.tool.example.com"`)
	}
	return c
}
