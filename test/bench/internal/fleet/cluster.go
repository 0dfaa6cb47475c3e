package fleet

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
	"github.com/connectors-node/connectors-node/test/apiserver"
	"github.com/connectors-node/connectors-node/test/bench/internal/certs"
	"github.com/connectors-node/connectors-node/test/servers/manifests"
)

// Audience is the proxy's token audience, the binary's default.
const Audience = "connectors-proxy"

// PodServiceAccount is the ServiceAccount of every benchmark pod; it may
// use every Connector of its namespace.
const PodServiceAccount = "bench"

// Cluster is a running API server with the deploy/ RBAC, the example
// classes and an upstream every Connector points at.
type Cluster struct {
	Env *apiserver.Env
	// Kube is a client without client-side rate limits, for setup.
	Kube kubernetes.Interface
	// Client is a controller-runtime client, likewise unlimited.
	Client client.Client
	// Work is a scratch directory; volumes are mounted under Work/kubelet.
	Work string
	// Upstream is the base URL of a loopback HTTP server that answers
	// every path with a small body.
	Upstream string
	// UpstreamTLS is the same server over TLS, with a certificate for
	// 127.0.0.1 that UpstreamCA (PEM) signed.
	UpstreamTLS string
	UpstreamCA  []byte

	closers []func()
}

// Start starts the API server and the upstream under a new directory.
func Start() (*Cluster, error) {
	work, err := os.MkdirTemp("", "connectors-bench-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{Work: work}
	c.closers = append(c.closers, func() { _ = os.RemoveAll(work) })
	if err := c.start(); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func (c *Cluster) start() error {
	env, err := apiserver.New(apiserver.Options{})
	if err != nil {
		return err
	}
	c.Env = env
	c.closers = append(c.closers, func() { _ = env.Stop() })
	rc := rest.CopyConfig(env.Config)
	rc.QPS, rc.Burst = -1, 0 // setup only: no client-side throttling
	if c.Kube, err = kubernetes.NewForConfig(rc); err != nil {
		return err
	}
	if c.Client, err = client.New(rc, client.Options{Scheme: apiserver.Scheme()}); err != nil {
		return err
	}
	if err := manifests.InstallBase(context.Background(), c.Client, apiserver.RepoRoot()); err != nil {
		return err
	}
	if c.Upstream, err = c.serveUpstream(nil); err != nil {
		return err
	}
	cert, caPEM, err := certs.Server("127.0.0.1")
	if err != nil {
		return err
	}
	tlsConf := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if c.UpstreamTLS, err = c.serveUpstream(tlsConf); err != nil {
		return err
	}
	c.UpstreamCA = caPEM
	return os.MkdirAll(filepath.Join(c.Work, "kubelet"), 0o750)
}

// serveUpstream starts a loopback server that answers every path with a
// small body, over TLS when tlsConf is not nil, and returns its base URL.
func (c *Cluster) serveUpstream(tlsConf *tls.Config) (string, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	body := []byte("ok\n")
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			_, _ = w.Write(body)
		}),
		ReadHeaderTimeout: 5 * time.Second,
		TLSConfig:         tlsConf,
	}
	scheme := "http"
	if tlsConf != nil {
		scheme = "https"
		ln = tls.NewListener(ln, tlsConf)
	}
	go func() { _ = srv.Serve(ln) }()
	c.closers = append(c.closers, func() { _ = srv.Close() })
	return scheme + "://" + ln.Addr().String(), nil
}

// Close stops everything Start started, in reverse order.
func (c *Cluster) Close() {
	for i := len(c.closers) - 1; i >= 0; i-- {
		c.closers[i]()
	}
	c.closers = nil
}

// ConnectorRef names a Connector.
type ConnectorRef struct{ Namespace, Name string }

// CreateConnectors creates n git Connectors, each with its basic-auth
// Secret, spread over namespaces of perNamespace Connectors, and in each
// namespace the ServiceAccount PodServiceAccount with get on its
// Connectors. It uses a few concurrent clients.
func (c *Cluster) CreateConnectors(ctx context.Context, n, perNamespace int) ([]ConnectorRef, error) {
	var refs []ConnectorRef
	var namespaces []string
	for i := range n {
		ns := fmt.Sprintf("bench-%03d", i/perNamespace)
		if i%perNamespace == 0 {
			namespaces = append(namespaces, ns)
		}
		refs = append(refs, ConnectorRef{Namespace: ns, Name: fmt.Sprintf("git-%04d", i)})
	}
	for _, ns := range namespaces {
		if err := c.namespace(ctx, ns); err != nil {
			return nil, err
		}
	}
	work := make(chan ConnectorRef)
	errs := make([]error, 8)
	var wg sync.WaitGroup
	for w := range errs {
		wg.Go(func() {
			for ref := range work {
				if errs[w] == nil {
					errs[w] = c.connector(ctx, ref)
				}
			}
		})
	}
	for _, ref := range refs {
		work <- ref
	}
	close(work)
	wg.Wait()
	return refs, errors.Join(errs...)
}

func (c *Cluster) namespace(ctx context.Context, ns string) error {
	objs := []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: PodServiceAccount}},
		&rbacv1.Role{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "use-connectors"},
			Rules: []rbacv1.PolicyRule{{
				APIGroups: []string{v1alpha1.GroupVersion.Group},
				Resources: []string{v1alpha1.ConnectorResource},
				Verbs:     []string{"get"},
			}},
		},
		&rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "use-connectors"},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "use-connectors"},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: PodServiceAccount}},
		},
	}
	for _, o := range objs {
		if err := c.Client.Create(ctx, o); err != nil {
			return fmt.Errorf("creating %T %s: %w", o, o.GetName(), err)
		}
	}
	return nil
}

// CreateTLSConnector creates a git Connector named name in namespace ns
// (one of CreateConnectors') for UpstreamTLS, with its basic-auth Secret
// and a Secret of UpstreamCA that verifies it.
func (c *Cluster) CreateTLSConnector(ctx context.Context, ns, name string) (ConnectorRef, error) {
	ref := ConnectorRef{Namespace: ns, Name: name}
	ca := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + "-ca"},
		Data:       map[string][]byte{"ca.crt": c.UpstreamCA},
	}
	if err := c.Client.Create(ctx, ca); err != nil {
		return ref, fmt.Errorf("creating secret %s/%s: %w", ns, ca.Name, err)
	}
	return ref, c.createConnector(ctx, ref, c.UpstreamTLS, &corev1.LocalObjectReference{Name: ca.Name})
}

func (c *Cluster) connector(ctx context.Context, ref ConnectorRef) error {
	return c.createConnector(ctx, ref, c.Upstream, nil)
}

func (c *Cluster) createConnector(ctx context.Context, ref ConnectorRef, address string, caRef *corev1.LocalObjectReference) error {
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ref.Namespace, Name: ref.Name + "-auth"},
		Type:       corev1.SecretTypeBasicAuth,
		StringData: map[string]string{"username": "bot", "password": "bench-password-" + ref.Name},
	}
	if err := c.Client.Create(ctx, secret); err != nil {
		return fmt.Errorf("creating secret %s/%s: %w", secret.Namespace, secret.Name, err)
	}
	conn := &v1alpha1.Connector{
		ObjectMeta: metav1.ObjectMeta{Namespace: ref.Namespace, Name: ref.Name},
		Spec: v1alpha1.ConnectorSpec{
			ConnectorClassName: "git",
			Address:            address,
			CACertSecretRef:    caRef,
			Auth: v1alpha1.ConnectorAuth{
				Name:      "basicAuth",
				SecretRef: &corev1.ObjectReference{Name: secret.Name},
			},
		},
	}
	if err := c.Client.Create(ctx, conn); err != nil {
		return fmt.Errorf("creating connector %s/%s: %w", ref.Namespace, ref.Name, err)
	}
	return nil
}
