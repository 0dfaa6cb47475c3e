// Package manifests reads multi-document YAML manifests and creates their
// objects in an API server, as `kubectl create -f` would. The demo, the
// deploy checks and the end-to-end tests share it.
package manifests

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"
)

// Load reads every non-empty document of the files, in order.
func Load(files ...string) ([]*unstructured.Unstructured, error) {
	var objs []*unstructured.Unstructured
	for _, f := range files {
		data, err := os.ReadFile(f) //nolint:gosec // the files are the project's own manifests
		if err != nil {
			return nil, err
		}
		more, err := Decode(f, data)
		if err != nil {
			return nil, err
		}
		objs = append(objs, more...)
	}
	return objs, nil
}

// Decode reads every non-empty document of data; name is what errors call it.
func Decode(name string, data []byte) ([]*unstructured.Unstructured, error) {
	var objs []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for {
		u := &unstructured.Unstructured{}
		err := dec.Decode(&u.Object)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if len(u.Object) == 0 {
			continue
		}
		if u.GetKind() == "" {
			return nil, fmt.Errorf("%s: a document has no kind", name)
		}
		objs = append(objs, u)
	}
	return objs, nil
}

// Create creates the objects in order.
func Create(ctx context.Context, c client.Client, objs []*unstructured.Unstructured) error {
	for _, u := range objs {
		if err := c.Create(ctx, u); err != nil {
			return fmt.Errorf("creating %s %s: %w", u.GetKind(), u.GetName(), err)
		}
	}
	return nil
}

// InstallBase creates what a node service needs besides the CRDs, as a
// cluster would have it: deploy/'s namespace and RBAC, the ConnectorClass
// catalog of deploy/classes and the example bearer-token API class, all
// read from the repository at root.
func InstallBase(ctx context.Context, c client.Client, root string) error {
	objs, err := Load(
		filepath.Join(root, "deploy", "base", "namespace.yaml"),
		filepath.Join(root, "deploy", "base", "rbac.yaml"),
		filepath.Join(root, "examples", "connectorclass-api.yaml"),
	)
	if err != nil {
		return err
	}
	classes, err := CatalogFiles(root)
	if err != nil {
		return err
	}
	catalog, err := Load(classes...)
	if err != nil {
		return err
	}
	return Create(ctx, c, append(objs, catalog...))
}

// CatalogDir is the ConnectorClass catalog's directory, relative to the
// repository root.
const CatalogDir = "deploy/classes"

// CatalogFiles returns the files deploy/classes/kustomization.yaml lists,
// in its order, under the repository at root.
func CatalogFiles(root string) ([]string, error) {
	dir := filepath.Join(root, filepath.FromSlash(CatalogDir))
	b, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml")) //nolint:gosec // the repository's own kustomization
	if err != nil {
		return nil, err
	}
	var k struct {
		Resources []string `json:"resources"`
	}
	if err := yaml.Unmarshal(b, &k); err != nil {
		return nil, fmt.Errorf("%s/kustomization.yaml: %w", CatalogDir, err)
	}
	if len(k.Resources) == 0 {
		return nil, fmt.Errorf("%s/kustomization.yaml lists no resources", CatalogDir)
	}
	files := make([]string, 0, len(k.Resources))
	for _, r := range k.Resources {
		if filepath.IsAbs(r) || strings.Contains(r, "..") {
			return nil, fmt.Errorf("%s/kustomization.yaml: resource %q is outside the catalog", CatalogDir, r)
		}
		files = append(files, filepath.Join(dir, filepath.FromSlash(r)))
	}
	return files, nil
}
