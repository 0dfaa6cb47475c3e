package ca

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"slices"
	"sync"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// GlobalCALabel marks a Secret in the service's namespace whose
// certificates every Connector trusts, as upstream documents:
// connectors.cpaas.io/ca-cert: "true".
const GlobalCALabel = "connectors.cpaas.io/ca-cert"

// Roots gives the roots trusted for TLS to tools. The proxy's upstream
// connections and any probe of a tool use it. The pool must not be
// modified (clone it to add a Connector's own CA); the generation changes
// whenever the pool does, so a user can rebuild what it derived from it.
type Roots interface {
	Roots() (pool *x509.CertPool, generation uint64)
}

// StaticRoots is a Roots that never changes.
type StaticRoots struct{ Pool *x509.CertPool }

// Roots implements Roots.
func (s StaticRoots) Roots() (*x509.CertPool, uint64) { return s.Pool, 0 }

// GlobalCAs is the base roots (such as the system pool) plus the
// certificates of every Secret in one namespace labelled GlobalCALabel
// "true". It watches only those Secrets, with a label-selected informer
// in that namespace, so a labelled Secret that appears, changes or goes is
// picked up without a restart.
type GlobalCAs struct {
	base     *x509.CertPool
	log      logr.Logger
	factory  informers.SharedInformerFactory
	informer cache.SharedIndexInformer

	mu      sync.Mutex
	certs   map[string][]byte // Secret name to its certificates' PEM
	pool    *x509.CertPool
	gen     uint64
	lastSum [32]byte
}

var _ Roots = (*GlobalCAs)(nil)

// NewGlobalCAs watches the labelled Secrets of namespace. base may be nil
// (an empty pool). Call Start.
func NewGlobalCAs(client kubernetes.Interface, namespace string, base *x509.CertPool, log logr.Logger) (*GlobalCAs, error) {
	if base == nil {
		base = x509.NewCertPool()
	}
	if log.GetSink() == nil {
		log = logr.Discard()
	}
	factory := informers.NewSharedInformerFactoryWithOptions(client, 0,
		informers.WithNamespace(namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = GlobalCALabel + "=true" }))
	g := &GlobalCAs{base: base, log: log, factory: factory, certs: map[string][]byte{}, pool: base}
	g.informer = factory.Core().V1().Secrets().Informer()
	_, err := g.informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { g.set(obj) },
		UpdateFunc: func(_, obj any) { g.set(obj) },
		DeleteFunc: g.remove,
	})
	if err != nil {
		return nil, fmt.Errorf("global CA secrets: %w", err)
	}
	return g, nil
}

// Start runs the informer until ctx ends.
func (g *GlobalCAs) Start(ctx context.Context) { g.factory.Start(ctx.Done()) }

// Synced reports whether the first list of labelled Secrets is in.
func (g *GlobalCAs) Synced() bool { return g.informer.HasSynced() }

// WaitForSync blocks until the first list is in or ctx ends.
func (g *GlobalCAs) WaitForSync(ctx context.Context) bool {
	return cache.WaitForCacheSync(ctx.Done(), g.informer.HasSynced)
}

// Roots implements Roots.
func (g *GlobalCAs) Roots() (*x509.CertPool, uint64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.pool, g.gen
}

// Secrets returns the names of the labelled Secrets seen, sorted.
func (g *GlobalCAs) Secrets() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	names := make([]string, 0, len(g.certs))
	for n := range g.certs {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

func (g *GlobalCAs) set(obj any) {
	s, ok := obj.(*corev1.Secret)
	if !ok {
		return
	}
	certs := CertsFromSecret(s)
	if len(certs) == 0 {
		// The name only: the Secret's keys and values are never logged.
		g.log.Info("global CA secret holds no PEM certificate in a .crt or .pem key", "secret", s.Namespace+"/"+s.Name)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.certs[s.Name] = certs
	g.rebuild()
}

func (g *GlobalCAs) remove(obj any) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	s, ok := obj.(*corev1.Secret)
	if !ok {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.certs, s.Name)
	g.rebuild()
}

// rebuild makes a new pool when the certificates changed. g.mu is held.
func (g *GlobalCAs) rebuild() {
	names := make([]string, 0, len(g.certs))
	for n := range g.certs {
		names = append(names, n)
	}
	slices.Sort(names)
	h := sha256.New()
	pool := g.base.Clone()
	for _, n := range names {
		h.Write(g.certs[n])
		pool.AppendCertsFromPEM(g.certs[n])
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	if sum == g.lastSum {
		return
	}
	g.lastSum = sum
	g.pool = pool
	g.gen++
}
