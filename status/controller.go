package status

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
)

// key is one object to reconcile: a Connector (namespace set) or a
// ConnectorClass (class set).
type key struct {
	class     bool
	namespace string
	name      string
}

func (k key) String() string {
	if k.class {
		return "connectorclass/" + k.name
	}
	return k.namespace + "/" + k.name
}

func connectorKey(c *v1alpha1.Connector) key { return key{namespace: c.Namespace, name: c.Name} }

// controller is one leadership term: a queue, workers, probes and the
// Service informer. Everything stops when its context ends.
type controller struct {
	opts     *Options
	metrics  *metrics
	queue    workqueue.TypedRateLimitingInterface[key]
	services corelisters.ServiceLister
	recorder record.EventRecorder
	prober   *prober
	cel      *celPrograms

	mu      sync.Mutex
	written map[key]written
}

// lead reconciles until ctx ends (the lease is lost or the node stops).
func (r *Reconciler) lead(ctx context.Context) error {
	c := &controller{
		opts:    &r.opts,
		metrics: r.metrics,
		cel:     r.cel,
		written: map[key]written{},
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.DefaultTypedControllerRateLimiter[key](),
			workqueue.TypedRateLimitingQueueConfig[key]{Name: "connectors-status"}),
	}
	defer c.queue.ShutDown()

	factory := informers.NewSharedInformerFactoryWithOptions(r.opts.Kube, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = managedSelector }))
	svcInformer := factory.Core().V1().Services()
	c.services = svcInformer.Lister()
	if _, err := svcInformer.Informer().AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		UpdateFunc: func(_, obj any) { c.enqueueServiceOwner(obj) },
		DeleteFunc: c.enqueueServiceOwner,
	}); err != nil {
		return err
	}
	factory.Start(ctx.Done())
	defer factory.Shutdown()

	broadcaster := record.NewBroadcaster(record.WithContext(ctx))
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: r.opts.Kube.CoreV1().Events("")})
	defer broadcaster.Shutdown()
	c.recorder = broadcaster.NewRecorder(r.opts.Client.Scheme(), corev1.EventSource{Component: "connectors-node"})

	c.prober = newProber(&r.opts, r.metrics, c.enqueueAfterProbe)
	c.prober.run = c.runProbes
	defer c.prober.shutdown()

	for _, synced := range factory.WaitForCacheSync(ctx.Done()) {
		if !synced {
			return ctx.Err()
		}
	}
	removeConn, err := r.opts.Objects.AddEventHandler(ctx, &v1alpha1.Connector{}, toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { c.enqueueConnector(obj) },
		UpdateFunc: func(_, obj any) { c.enqueueConnector(obj) },
		DeleteFunc: c.enqueueConnector,
	})
	if err != nil {
		return err
	}
	defer func() { _ = removeConn() }()
	removeClass, err := r.opts.Objects.AddEventHandler(ctx, &v1alpha1.ConnectorClass{}, toolscache.ResourceEventHandlerDetailedFuncs{
		// A class of the first list: its Connectors come in their own first
		// list. A class created later may be one they were waiting for.
		AddFunc:    func(obj any, initial bool) { c.enqueueClass(ctx, obj, !initial) },
		UpdateFunc: func(_, obj any) { c.enqueueClass(ctx, obj, true) },
		DeleteFunc: func(obj any) { c.enqueueClass(ctx, obj, true) },
	})
	if err != nil {
		return err
	}
	defer func() { _ = removeClass() }()

	var wg sync.WaitGroup
	for range r.opts.Workers {
		wg.Go(func() {
			for c.next(ctx) {
			}
		})
	}
	for range r.opts.ProbeWorkers {
		wg.Go(func() { c.prober.work(ctx) })
	}
	for _, run := range r.opts.WhileLeading {
		wg.Go(func() {
			if err := run(ctx); err != nil && ctx.Err() == nil {
				r.opts.Log.Error(err, "a controller of the status leader stopped")
			}
		})
	}
	<-ctx.Done()
	c.queue.ShutDown()
	c.prober.shutdown()
	wg.Wait()
	return nil
}

func (c *controller) enqueueConnector(obj any) {
	if d, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	if conn, ok := obj.(*v1alpha1.Connector); ok {
		c.queue.Add(connectorKey(conn))
	}
}

// enqueueClass queues a class and, when it changed or went away, every
// Connector of it. On add the Connectors are queued by their own adds.
func (c *controller) enqueueClass(ctx context.Context, obj any, withConnectors bool) {
	if d, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	cls, ok := obj.(*v1alpha1.ConnectorClass)
	if !ok {
		return
	}
	c.queue.Add(key{class: true, name: cls.Name})
	if !withConnectors {
		return
	}
	conns, err := c.opts.Objects.Connectors(ctx)
	if err != nil {
		c.opts.Log.Error(err, "listing connectors of a changed class", "connectorclass", cls.Name)
		return
	}
	for _, conn := range conns {
		if conn.Spec.ConnectorClassName == cls.Name {
			c.queue.Add(connectorKey(conn))
		}
	}
}

func (c *controller) enqueueServiceOwner(obj any) {
	if d, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	svc, ok := obj.(*corev1.Service)
	if !ok {
		return
	}
	if name := svc.Labels[connectorLabel]; name != "" {
		c.queue.Add(key{namespace: svc.Namespace, name: name})
	}
}

// enqueueAfterProbe queues a Connector whose probe result arrived.
func (c *controller) enqueueAfterProbe(k key) { c.queue.Add(k) }

// jitter returns d plus up to ProbeJitter of it, at random.
func (c *controller) jitter(d time.Duration) time.Duration {
	return d + time.Duration(randFloat()*c.opts.ProbeJitter*float64(d))
}

// next reconciles one key; false once the queue shuts down.
func (c *controller) next(ctx context.Context) bool {
	k, quit := c.queue.Get()
	if quit {
		return false
	}
	defer c.queue.Done(k)
	kind := "connector"
	var err error
	ready := true
	if k.class {
		kind = "connectorclass"
		err = c.reconcileClass(ctx, k.name)
	} else {
		ready, err = c.reconcileConnector(ctx, k)
	}
	switch {
	case ctx.Err() != nil:
		// The lease is gone: drop the work, the next leader redoes it.
		return true
	case err != nil:
		c.metrics.reconciles.WithLabelValues(kind, "error").Inc()
		var conflict *conflictError
		if errors.As(err, &conflict) {
			c.metrics.errors.WithLabelValues("conflict").Inc()
		} else {
			c.opts.Log.Error(err, "reconciling status", "object", k.String())
		}
		c.queue.AddRateLimited(k)
	default:
		c.metrics.reconciles.WithLabelValues(kind, "ok").Inc()
		c.queue.Forget(k)
		// Resync: Secrets are not watched (the node may only get them), and
		// Services may be changed behind the reconciler's back. A Connector
		// that is not Ready looks again sooner, for the Secret it waits for.
		resync := c.opts.ProbeInterval
		if !ready {
			resync = min(resync, notReadyResync)
		}
		c.queue.AddAfter(k, c.jitter(resync))
	}
	return true
}

// notReadyResync bounds the resync period of a Connector that is not Ready.
const notReadyResync = 30 * time.Second

// conflictError is a write that lost to a newer version of the object.
type conflictError struct{ err error }

func (e *conflictError) Error() string { return fmt.Sprintf("conflict: %v", e.err) }
func (e *conflictError) Unwrap() error { return e.err }

var _ client.Object = (*v1alpha1.Connector)(nil)
