package node

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/connectors-node/connectors-node/test/apiserver"
	"github.com/connectors-node/connectors-node/test/servers/manifests"
)

// catalogText reads a ConnectorClass file of the deploy/classes catalog.
func catalogText(name string) (string, error) {
	b, err := os.ReadFile(filepath.Join(apiserver.RepoRoot(), filepath.FromSlash(manifests.CatalogDir), name)) //nolint:gosec // the repository's catalog
	return string(b), err
}

// catalogClass is catalogText for a test.
func catalogClass(t *testing.T, name string) string {
	t.Helper()
	s, err := catalogText(name)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
