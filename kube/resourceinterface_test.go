package kube_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
	"github.com/connectors-node/connectors-node/test/apiserver"
)

// TestResourceInterfaceRoundTrip applies upstream's ResourceInterface
// manifests (testdata/resourceinterfaces) to a real API server with the
// generated CRDs and reads them back, as written and through the Go type:
// no field is pruned or lost.
func TestResourceInterfaceRoundTrip(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "resourceinterfaces", "*.yaml"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	env := apiserver.Shared(t)
	ctx := context.Background()
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			raw, err := os.ReadFile(file) //nolint:gosec // a test data file
			require.NoError(t, err)
			sent := &unstructured.Unstructured{}
			require.NoError(t, yaml.Unmarshal(raw, &sent.Object))
			want := sent.DeepCopy()
			require.NoError(t, env.Client.Create(ctx, sent))
			t.Cleanup(func() { _ = env.Client.Delete(context.Background(), sent) })

			got := &unstructured.Unstructured{}
			got.SetGroupVersionKind(want.GroupVersionKind())
			require.NoError(t, env.Client.Get(ctx, client.ObjectKeyFromObject(want), got))
			require.Equal(t, want.Object["spec"], got.Object["spec"], "spec read back as written")
			require.Equal(t, want.GetLabels(), got.GetLabels())
			require.Equal(t, want.GetAnnotations(), got.GetAnnotations())

			typed := &v1alpha1.ResourceInterface{}
			require.NoError(t, env.Client.Get(ctx, client.ObjectKeyFromObject(want), typed))
			b, err := yaml.Marshal(typed.Spec)
			require.NoError(t, err)
			var spec map[string]any
			require.NoError(t, yaml.Unmarshal(b, &spec))
			require.Equal(t, want.Object["spec"], spec, "spec through the Go type")
		})
	}
}
