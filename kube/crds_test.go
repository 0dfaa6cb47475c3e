package kube_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/connectors-node/connectors-node/test/apiserver"
	"github.com/connectors-node/connectors-node/test/testenv"
)

// TestGeneratedCRDsAreCurrent fails when deploy/base/crds no longer matches the
// Go types: run `make generate` and commit the result.
func TestGeneratedCRDsAreCurrent(t *testing.T) {
	root := apiserver.RepoRoot()
	gen := filepath.Join(root, "bin", "controller-gen")
	if _, err := os.Stat(gen); err != nil {
		testenv.SkipOrFail(t, "controller-gen missing: run `make tools`: %v", err)
	}
	out := t.TempDir()
	cmd := exec.CommandContext(t.Context(), gen, "crd:crdVersions=v1", "paths=./kube/api/...", "output:crd:artifacts:config="+out)
	cmd.Dir = root
	b, err := cmd.CombinedOutput()
	require.NoError(t, err, string(b))

	committed, err := filepath.Glob(filepath.Join(root, "deploy", "base", "crds", "*.yaml"))
	require.NoError(t, err)
	generated, err := filepath.Glob(filepath.Join(out, "*.yaml"))
	require.NoError(t, err)
	require.Len(t, committed, len(generated), "deploy/base/crds has a different set of files: run `make generate`")
	for _, g := range generated {
		want, err := os.ReadFile(g)
		require.NoError(t, err)
		have, err := os.ReadFile(filepath.Join(root, "deploy", "base", "crds", filepath.Base(g)))
		require.NoError(t, err, "run `make generate`")
		require.Equal(t, string(want), string(have), "%s is stale: run `make generate`", filepath.Base(g))
	}
}
