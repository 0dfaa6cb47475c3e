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
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
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
// cluster would have it: deploy/'s namespace, RBAC and Service admission
// policy, the ConnectorClass catalog of deploy/classes and the example
// bearer-token API class, all read from the repository at root. It returns
// once the API server enforces the policy.
func InstallBase(ctx context.Context, c client.Client, root string) error {
	objs, err := Load(
		filepath.Join(root, "deploy", "base", "namespace.yaml"),
		filepath.Join(root, "deploy", "base", "rbac.yaml"),
		filepath.Join(root, "deploy", "base", "admission.yaml"),
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
	if err := Create(ctx, c, append(objs, catalog...)); err != nil {
		return err
	}
	return WaitForServicePolicy(ctx, c)
}

// WaitForServicePolicy waits until the API server enforces deploy/'s
// ValidatingAdmissionPolicy on Services (it compiles a new policy in the
// background): until c, which is not the status writer, is refused a
// dry-run create of a Service with the project's managed-by label.
func WaitForServicePolicy(ctx context.Context, c client.Client) error {
	probe := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: "default", Name: "connectors-policy-probe",
			Labels: map[string]string{v1alpha1.HostFormManagedByLabel: v1alpha1.HostFormManagedByValue},
		},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "probe.invalid"},
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		err := c.Create(ctx, probe.DeepCopy(), client.DryRunAll)
		if apierrors.IsForbidden(err) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the Service admission policy is not enforced (last answer: %w): %w", err, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// WaitForGrantPolicy waits until the API server enforces deploy/'s
// ValidatingAdmissionPolicy on access grants: until c, which is not the
// status writer, is refused a dry-run create of a Role labelled as one.
func WaitForGrantPolicy(ctx context.Context, c client.Client) error {
	probe := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: "default", Name: "connectors-access-probe",
			Labels: map[string]string{"app.kubernetes.io/managed-by": "connectors-node", v1alpha1.AccessRequestLabel: "probe"},
		},
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		err := c.Create(ctx, probe.DeepCopy(), client.DryRunAll)
		if apierrors.IsForbidden(err) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the access grant admission policy is not enforced (last answer: %w): %w", err, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
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
