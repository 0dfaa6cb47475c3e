package kube

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	crcache "sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
)

// Objects reads the objects the node service needs. Returned objects are
// shared with the cache and must not be modified.
type Objects interface {
	// Connector returns a Connector; a missing one is an error wrapping
	// ErrNotFound that reads `connector "<ns>/<name>" not found`.
	Connector(ctx context.Context, namespace, name string) (*v1alpha1.Connector, error)
	// ConnectorClass returns a ConnectorClass or an error wrapping ErrNotFound.
	ConnectorClass(ctx context.Context, name string) (*v1alpha1.ConnectorClass, error)
	// Secret returns a Secret or an error wrapping ErrNotFound.
	Secret(ctx context.Context, namespace, name string) (*corev1.Secret, error)
}

// SecretRefresher is implemented by an Objects that caches Secrets.
type SecretRefresher interface {
	// RefreshSecret reads the Secret namespace/name again now: an upstream
	// refused the credential it holds (401 or 403), which may have been
	// rotated since it was read. The next Secret call answers what that
	// read finds.
	RefreshSecret(namespace, name string)
}

// NotFoundError is the error for a missing object. It wraps ErrNotFound.
type NotFoundError struct {
	// Kind is the lower-case kind: connector, connectorclass, secret.
	Kind string
	// Key is <ns>/<name>, or <name> for cluster objects.
	Key string
}

func (e *NotFoundError) Error() string { return fmt.Sprintf("%s %q not found", e.Kind, e.Key) }

// Unwrap makes errors.Is(err, ErrNotFound) true.
func (e *NotFoundError) Unwrap() error { return ErrNotFound }

// CacheOptions configure NewCache.
type CacheOptions struct {
	// Config reaches the API server. Required.
	Config *rest.Config
	// SecretTTL is how long a Secret read stays cached; RefreshSecret
	// reads it sooner. Default DefaultSecretTTL.
	SecretTTL time.Duration
	// RefusedRereadGap is the least time between two reads of one Secret
	// that RefreshSecret makes. Default DefaultRefusedRereadGap.
	RefusedRereadGap time.Duration
	// MaxSecrets bounds the Secret cache. Default 1024.
	MaxSecrets int
	// ServiceTTL is how long a Service read (Service) stays cached. A
	// Service is never served past it, not even while the API server is
	// unavailable. Default 10s.
	ServiceTTL time.Duration
	// MaxServices bounds the Service cache. Default 1024.
	MaxServices int
	// APITimeout bounds one Secret read. Default 10s.
	APITimeout time.Duration
	// OutageGrace is how long past SecretTTL a Secret keeps serving while
	// the API server is unavailable. A Secret found deleted is never served
	// again. Default DefaultOutageGrace.
	OutageGrace time.Duration
	// Breaker fails uncached Secret reads fast while the API server is
	// known unreachable. Default: a Breaker of its own.
	Breaker *Breaker
	// Now is the clock of the Secret cache. Default time.Now.
	Now func() time.Time
	// Log receives errors of the informers. Default: discarded.
	Log logr.Logger
}

// Cache serves Connectors and ConnectorClasses from informers, and Secrets
// and Services from on-demand reads with a short TTL. There is no Secret or
// Service informer: the node reads only the Secrets its Connectors name and
// their host-form Services.
type Cache struct {
	informers crcache.Cache
	secrets   kubernetes.Interface
	ttl       time.Duration
	log       logr.Logger
	secretLRU *staleCache
	// refusedGap is CacheOptions.RefusedRereadGap.
	refusedGap time.Duration
	svcTTL     time.Duration
	svcLRU     *staleCache
	breaker    *Breaker
	synced     atomic.Bool
}

var (
	_ Objects         = (*Cache)(nil)
	_ SecretRefresher = (*Cache)(nil)
)

const (
	// DefaultSecretTTL is how long a Secret read stays cached by default:
	// under steady use each Secret is read about once per TTL, and a
	// refused credential sooner (RefreshSecret).
	DefaultSecretTTL = 5 * time.Minute
	// DefaultRefusedRereadGap is the least time between two reads of one
	// Secret that refusals cause.
	DefaultRefusedRereadGap = 10 * time.Second
)

// NewCache builds a Cache. Call Start before use.
func NewCache(opts CacheOptions) (*Cache, error) {
	if opts.Config == nil {
		return nil, fmt.Errorf("kube cache: Config is required")
	}
	if opts.SecretTTL <= 0 {
		opts.SecretTTL = DefaultSecretTTL
	}
	if opts.RefusedRereadGap <= 0 {
		opts.RefusedRereadGap = DefaultRefusedRereadGap
	}
	if opts.MaxSecrets <= 0 {
		opts.MaxSecrets = 1024
	}
	if opts.ServiceTTL <= 0 {
		opts.ServiceTTL = 10 * time.Second
	}
	if opts.MaxServices <= 0 {
		opts.MaxServices = 1024
	}
	if opts.APITimeout <= 0 {
		opts.APITimeout = 10 * time.Second
	}
	if opts.Log.GetSink() == nil {
		opts.Log = logr.Discard()
	}
	if opts.OutageGrace <= 0 {
		opts.OutageGrace = DefaultOutageGrace
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	scheme := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	noCopy := true
	informers, err := crcache.New(opts.Config, crcache.Options{
		Scheme: scheme,
		ByObject: map[client.Object]crcache.ByObject{
			&v1alpha1.Connector{}:      {UnsafeDisableDeepCopy: &noCopy},
			&v1alpha1.ConnectorClass{}: {UnsafeDisableDeepCopy: &noCopy},
		},
		ReaderFailOnMissingInformer: true,
		DefaultTransform:            dropManagedFields,
	})
	if err != nil {
		return nil, fmt.Errorf("kube cache: %w", err)
	}
	cs, err := kubernetes.NewForConfig(opts.Config)
	if err != nil {
		return nil, fmt.Errorf("kube cache: %w", err)
	}
	if opts.Breaker == nil {
		opts.Breaker = defaultBreaker(cs, opts.Now)
	}
	return &Cache{
		informers:  informers,
		secrets:    cs,
		ttl:        opts.SecretTTL,
		log:        opts.Log,
		secretLRU:  newStaleCache("secret", opts.MaxSecrets, opts.OutageGrace, opts.APITimeout, opts.Breaker, opts.Now),
		refusedGap: opts.RefusedRereadGap,
		svcTTL:     opts.ServiceTTL,
		svcLRU:     newStaleCache("service", opts.MaxServices, opts.OutageGrace, opts.APITimeout, opts.Breaker, opts.Now),
		breaker:    opts.Breaker,
	}, nil
}

func dropManagedFields(obj any) (any, error) {
	if m, ok := obj.(metav1.Object); ok {
		m.SetManagedFields(nil)
	}
	return obj, nil
}

// Start runs the informers until ctx ends. It returns once they are
// registered; Synced reports when their first list is complete.
func (c *Cache) Start(ctx context.Context) error {
	for _, obj := range []client.Object{&v1alpha1.Connector{}, &v1alpha1.ConnectorClass{}} {
		if _, err := c.informers.GetInformer(ctx, obj); err != nil {
			return fmt.Errorf("kube cache: informer for %T: %w", obj, err)
		}
	}
	go func() {
		if err := c.informers.Start(ctx); err != nil {
			c.log.Error(err, "connector informers stopped")
		}
	}()
	go func() {
		if c.informers.WaitForCacheSync(ctx) {
			c.synced.Store(true)
		}
	}()
	return nil
}

// Synced reports whether the Connector and ConnectorClass caches hold a full list.
func (c *Cache) Synced() bool { return c.synced.Load() }

// WaitForSync blocks until the caches are synced or ctx ends.
func (c *Cache) WaitForSync(ctx context.Context) bool { return c.informers.WaitForCacheSync(ctx) }

// Connector implements Objects.
func (c *Cache) Connector(ctx context.Context, namespace, name string) (*v1alpha1.Connector, error) {
	var obj v1alpha1.Connector
	if err := c.informers.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, &obj); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, &NotFoundError{Kind: "connector", Key: namespace + "/" + name}
		}
		return nil, fmt.Errorf("reading connector %s/%s: %w", namespace, name, Classify(err))
	}
	return &obj, nil
}

// ConnectorClass implements Objects.
func (c *Cache) ConnectorClass(ctx context.Context, name string) (*v1alpha1.ConnectorClass, error) {
	var obj v1alpha1.ConnectorClass
	if err := c.informers.Get(ctx, types.NamespacedName{Name: name}, &obj); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, &NotFoundError{Kind: "connectorclass", Key: name}
		}
		return nil, fmt.Errorf("reading connectorclass %s: %w", name, Classify(err))
	}
	return &obj, nil
}

// Secret implements Objects. Concurrent misses for one Secret make one
// read. A cached Secret keeps serving for OutageGrace past its TTL,
// refreshed in the background; one found deleted (NotFound) is dropped,
// except right after an outage, when a 403 or 404 may come from an API
// server still loading its RBAC and caches (ErrUnavailable).
func (c *Cache) Secret(ctx context.Context, namespace, name string) (*corev1.Secret, error) {
	v, _, err := c.secretLRU.get(ctx, namespace+"/"+name, c.readSecret(namespace, name))
	if err != nil {
		return nil, err
	}
	return v.(*corev1.Secret), nil
}

// RefreshSecret implements SecretRefresher: it reads the Secret again now,
// in the background, if it is cached and no such read of it was made in
// the last RefusedRereadGap; until that read answers, Secret waits for it.
// While the API server is unavailable the cached Secret keeps serving.
func (c *Cache) RefreshSecret(namespace, name string) {
	c.secretLRU.recheck(namespace+"/"+name, c.refusedGap, c.readSecret(namespace, name))
}

// readSecret returns the read of one Secret for the Secret cache.
func (c *Cache) readSecret(namespace, name string) func(context.Context) (answer, error) {
	return func(ctx context.Context) (answer, error) {
		key := namespace + "/" + name
		s, err := c.secrets.CoreV1().Secrets(namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			err = c.breaker.classifyRead(err)
			if apierrors.IsNotFound(err) && !errors.Is(err, ErrUnavailable) {
				return answer{}, &NotFoundError{Kind: "secret", Key: key}
			}
			return answer{}, fmt.Errorf("reading secret %s: %w", key, err)
		}
		s.ManagedFields = nil
		return answer{val: s, ttl: c.ttl, keep: true}, nil
	}
}

// Service returns the Service namespace/name, read on demand and cached
// for ServiceTTL, or an error wrapping ErrNotFound. The plugin reads only
// the host-form Services c-<name> its Connectors' addresses name; there is
// no Service informer. A Service is never served stale.
func (c *Cache) Service(ctx context.Context, namespace, name string) (*corev1.Service, error) {
	key := namespace + "/" + name
	v, _, err := c.svcLRU.get(ctx, key, func(ctx context.Context) (answer, error) {
		s, err := c.secrets.CoreV1().Services(namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			err = c.breaker.classifyRead(err)
			if apierrors.IsNotFound(err) && !errors.Is(err, ErrUnavailable) {
				return answer{}, &NotFoundError{Kind: "service", Key: key}
			}
			return answer{}, fmt.Errorf("reading service %s: %w", key, err)
		}
		s.ManagedFields = nil
		return answer{val: s, ttl: c.svcTTL}, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*corev1.Service), nil
}

// AddEventHandler registers h on the informer of obj (a Connector or a
// ConnectorClass); the handler first sees an add for every cached object.
// Remove it with the returned function.
func (c *Cache) AddEventHandler(ctx context.Context, obj client.Object, h toolscache.ResourceEventHandler) (remove func() error, err error) {
	inf, err := c.informers.GetInformer(ctx, obj)
	if err != nil {
		return nil, fmt.Errorf("kube cache: informer for %T: %w", obj, err)
	}
	reg, err := inf.AddEventHandler(h)
	if err != nil {
		return nil, fmt.Errorf("kube cache: handler for %T: %w", obj, err)
	}
	return func() error { return inf.RemoveEventHandler(reg) }, nil
}

// Connectors lists the cached Connectors, of every namespace. The objects
// are shared with the cache and must not be modified.
func (c *Cache) Connectors(ctx context.Context) ([]*v1alpha1.Connector, error) {
	var list v1alpha1.ConnectorList
	if err := c.informers.List(ctx, &list); err != nil {
		return nil, fmt.Errorf("listing connectors: %w", err)
	}
	out := make([]*v1alpha1.Connector, len(list.Items))
	for i := range list.Items {
		out[i] = &list.Items[i]
	}
	return out, nil
}

// OnConnectorClass calls changed with every ConnectorClass the cache adds
// or updates (the first list included) and deleted with the name of every
// one it drops. Call it after Start.
func (c *Cache) OnConnectorClass(ctx context.Context, changed func(*v1alpha1.ConnectorClass), deleted func(name string)) error {
	inf, err := c.informers.GetInformer(ctx, &v1alpha1.ConnectorClass{})
	if err != nil {
		return fmt.Errorf("kube cache: informer for connectorclasses: %w", err)
	}
	_, err = inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			if cc, ok := obj.(*v1alpha1.ConnectorClass); ok {
				changed(cc)
			}
		},
		UpdateFunc: func(_, obj any) {
			if cc, ok := obj.(*v1alpha1.ConnectorClass); ok {
				changed(cc)
			}
		},
		DeleteFunc: func(obj any) {
			if d, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			if cc, ok := obj.(*v1alpha1.ConnectorClass); ok {
				deleted(cc.Name)
			}
		},
	})
	if err != nil {
		return fmt.Errorf("kube cache: watching connectorclasses: %w", err)
	}
	return nil
}
