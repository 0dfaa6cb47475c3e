package kube_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
	"github.com/connectors-node/connectors-node/test/apiserver"
	"github.com/connectors-node/connectors-node/test/servers/manifests"
)

// TestApprovalCRDRoundTrip applies upstream-shaped AccessPolicy and
// AccessRequest manifests, every field set, to a real API server with the
// project's CRDs (and upstream's, when $REFERENCE_CRDS holds them): the
// server keeps every field, spec and status, and the Go types decode and
// encode them unchanged.
func TestApprovalCRDRoundTrip(t *testing.T) {
	dirs := map[string]string{"generated": filepath.Join(apiserver.RepoRoot(), "deploy", "base", "crds")}
	if dir := os.Getenv("REFERENCE_CRDS"); dir != "" {
		if _, err := os.Stat(filepath.Join(dir, "connectors.alauda.io_accessrequests.yaml")); err == nil { //nolint:gosec // the test's own CRD directory

			dirs["reference"] = dir
		}
	}
	for name, dir := range dirs {
		t.Run(name, func(t *testing.T) {
			env := apiserver.Start(t, apiserver.Options{CRDDirs: []string{dir}})
			ctx := context.Background()
			ns := env.Namespace(t, "approval")
			objs, err := manifests.Load(filepath.Join("testdata", "approval.yaml"))
			require.NoError(t, err)
			require.Len(t, objs, 2)
			for _, want := range objs {
				want.SetNamespace(ns)
				sent := want.DeepCopy()
				status := sent.Object["status"]
				require.NoError(t, env.Client.Create(ctx, sent), "creating %s", want.GetKind())
				sent.Object["status"] = status
				require.NoError(t, env.Client.Status().Update(ctx, sent), "writing %s status", want.GetKind())

				got := &unstructured.Unstructured{}
				got.SetGroupVersionKind(want.GroupVersionKind())
				require.NoError(t, env.Client.Get(ctx, client.ObjectKeyFromObject(want), got))
				for _, field := range []string{"spec", "status"} {
					require.JSONEq(t, mustJSON(t, want.Object[field]), mustJSON(t, got.Object[field]), "%s %s lost or changed a field", want.GetKind(), field)
				}

				// The Go types hold every field too.
				typed, err := apiserver.Scheme().New(want.GroupVersionKind())
				require.NoError(t, err)
				require.NoError(t, runtime.DefaultUnstructuredConverter.FromUnstructured(got.Object, typed))
				back, err := runtime.DefaultUnstructuredConverter.ToUnstructured(typed)
				require.NoError(t, err)
				for _, field := range []string{"spec", "status"} {
					require.JSONEq(t, mustJSON(t, want.Object[field]), mustJSON(t, back[field]), "%T %s", typed, field)
				}
			}
			var list v1alpha1.AccessRequestList
			require.NoError(t, env.Client.List(ctx, &list, client.InNamespace(ns)))
			require.Len(t, list.Items, 1)
			b, err := json.Marshal(list.Items[0].Status.Policies[0].PermissionSync)
			require.NoError(t, err)
			require.Contains(t, string(b), `"reason":"Pending"`)
		})
	}
}
