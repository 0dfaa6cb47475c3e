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

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
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
// cluster would have it: deploy/'s namespace and RBAC and the example
// ConnectorClasses, all read from the repository at root.
func InstallBase(ctx context.Context, c client.Client, root string) error {
	objs, err := Load(
		filepath.Join(root, "deploy", "base", "namespace.yaml"),
		filepath.Join(root, "deploy", "base", "rbac.yaml"),
		filepath.Join(root, "examples", "connectorclass-git.yaml"),
		filepath.Join(root, "examples", "connectorclass-oci.yaml"),
		filepath.Join(root, "examples", "connectorclass-api.yaml"),
	)
	if err != nil {
		return err
	}
	return Create(ctx, c, objs)
}
