package e2e

import (
	"context"
	"path/filepath"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/connectors-node/connectors-node/internal/testserver/manifests"
	"github.com/connectors-node/connectors-node/kube/apitest"
)

// installCatalogClass creates a ConnectorClass of deploy/classes, as
// `kubectl apply -k deploy/classes` would, so a story uses the catalog's
// own file. A class another story created already is left as it is.
func (s *story) installCatalogClass(file string) {
	s.t.Helper()
	objs, err := manifests.Load(filepath.Join(apitest.RepoRoot(), "deploy", "classes", file))
	if err != nil {
		s.t.Fatal(err)
	}
	for _, o := range objs {
		if err := s.h.env.Client.Create(context.Background(), o); err != nil && !apierrors.IsAlreadyExists(err) {
			s.t.Fatalf("creating %s %s from deploy/classes/%s: %v", o.GetKind(), o.GetName(), file, err)
		}
	}
}
