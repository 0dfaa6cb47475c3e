package configgen

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
)

// upstreamCase is one file of testdata/upstream: classes in the shapes the
// upstream documentation describes, the mounted Connectors, the volume
// attributes, and the files the documentation shows they render to.
// "<token>" in a wanted file stands for the pod's token and
// "<basic-token>" for base64(":"+token).
type upstreamCase struct {
	Classes    []v1alpha1.ConnectorClass `json:"classes"`
	Connectors []v1alpha1.Connector      `json:"connectors"`
	Names      string                    `json:"names"`
	Params     map[string]map[string]any `json:"params"`
	Want       map[string]string         `json:"want"`
}

// TestUpstreamDocumentedRenders renders each case as the CSI plugin does,
// with the Connectors' addresses resolved for their classes, and compares
// the named files with what the upstream documentation shows.
func TestUpstreamDocumentedRenders(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join("testdata", "upstream", "*.yaml"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no cases: %v", err)
	}
	for _, path := range paths {
		t.Run(strings.TrimSuffix(filepath.Base(path), ".yaml"), func(t *testing.T) {
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			var c upstreamCase
			if err := yaml.UnmarshalStrict(raw, &c); err != nil {
				t.Fatal(err)
			}
			classes := map[string]*v1alpha1.ConnectorClass{}
			for i := range c.Classes {
				classes[c.Classes[i].Name] = &c.Classes[i]
			}
			var mounted []Connector
			for i := range c.Connectors {
				obj := &c.Connectors[i]
				class := classes[obj.Spec.ConnectorClassName]
				if class == nil {
					t.Fatalf("connector %s: no class %q", obj.Name, obj.Spec.ConnectorClassName)
				}
				mounted = append(mounted, Connector{
					Object:        obj,
					Class:         class,
					ProxyAddress:  obj.ProxyAddressFor(class, testProxyURL, "cluster.local"),
					ClassProxyURL: class.OwnProxy(testProxyURL),
				})
			}
			in := baseInput(t, mounted...)
			if in.Configurations, in.Exclude, err = ParseNames(c.Names); err != nil {
				t.Fatal(err)
			}
			in.Params = c.Params
			files := render(t, in)
			basic := base64.StdEncoding.EncodeToString([]byte(":" + testToken))
			for name, want := range c.Want {
				want = strings.ReplaceAll(want, "<basic-token>", basic)
				want = strings.ReplaceAll(want, "<token>", testToken)
				got, ok := files[name]
				if !ok {
					t.Errorf("no file %s", name)
					continue
				}
				if string(got) != want {
					t.Errorf("%s differs from the documented output\n--- got\n%s\n--- want\n%s", name, got, want)
				}
			}
		})
	}
}
