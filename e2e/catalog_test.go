package e2e

import (
	"context"
	"path/filepath"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/connectors-node/connectors-node/test/apiserver"
	"github.com/connectors-node/connectors-node/test/servers/authlog"
	"github.com/connectors-node/connectors-node/test/servers/kubelet"
	"github.com/connectors-node/connectors-node/test/servers/manifests"
)

// installCatalogClass creates a ConnectorClass of deploy/classes, as
// `kubectl apply -k deploy/classes` would, so a story uses the catalog's
// own file. A class another story created already is left as it is.
func (s *story) installCatalogClass(file string) {
	s.t.Helper()
	objs, err := manifests.Load(filepath.Join(apiserver.RepoRoot(), "deploy", "classes", file))
	if err != nil {
		s.t.Fatal(err)
	}
	for _, o := range objs {
		if err := s.h.env.Client.Create(context.Background(), o); err != nil && !apierrors.IsAlreadyExists(err) {
			s.t.Fatalf("creating %s %s from deploy/classes/%s: %v", o.GetKind(), o.GetName(), file, err)
		}
	}
}

// catalogConnector creates a Connector of a catalog class for a server that
// wants user and password, a ServiceAccount allowed to use it, and that
// account's pod, and publishes the pod's volume with the configurations
// names. The Connector is named after the class.
func (s *story) catalogConnector(class, address, user, password, names string) (kubelet.Token, *volume) {
	s.t.Helper()
	secret := class + "-credentials"
	s.basicAuthSecret(secret, user, password)
	s.connector(connectorSpec{name: class, class: class, address: address, authName: "basicAuth", secret: secret})
	s.serviceAccount(s.ns, "builder")
	s.allow(s.ns, "builder", class)
	tok := s.token(s.ns, "builder")
	return tok, s.publish("builder", map[string]string{"connectors": class, "configuration.names": names}, tok)
}

// checkServerLog fails unless the server received requests, each with the
// Connector's user, and none with the pod's token.
func (s *story) checkServerLog(server string, reqs []authlog.Request, sawToken bool, user string) {
	s.t.Helper()
	if len(reqs) == 0 {
		s.t.Errorf("no request reached the %s", server)
	}
	for _, r := range reqs {
		if r.User != user {
			s.t.Errorf("%s %s reached the %s as %q, not the Connector's user", r.Method, r.Path, server, r.User)
		}
	}
	if sawToken {
		s.t.Errorf("the pod's token reached the %s", server)
	}
}
