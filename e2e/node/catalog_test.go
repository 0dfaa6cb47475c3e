package node

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/connectors-node/connectors-node/internal/testserver/manifests"
	"github.com/connectors-node/connectors-node/kube/apitest"
)

// catalogClass reads a ConnectorClass file of the deploy/classes catalog.
func catalogClass(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(apitest.RepoRoot(), filepath.FromSlash(manifests.CatalogDir), name)) //nolint:gosec // the repository's catalog
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
