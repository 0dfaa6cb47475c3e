package approval

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
)

// Options configure New. Zero values take the documented defaults.
type Options struct {
	// Client reads and writes AccessRequests, AccessPolicies, Pods,
	// Connectors, ConfigMaps, check objects, Roles and RoleBindings. Its
	// scheme must know the core, RBAC and connectors types. Required.
	Client client.WithWatch
	// Namespace is the service's namespace: the only one whose role and
	// check template ConfigMaps are read. Required.
	Namespace string
	// Events, when set, receives Events on AccessRequests (core/v1) while
	// Run runs: a grant synced, a grant removed. Default: none.
	Events kubernetes.Interface
	// CheckPeriod is how often a pending request looks at its checks and a
	// granted one at its pod. Default 5s.
	CheckPeriod time.Duration
	// Workers reconcile in parallel. Default 2.
	Workers int
	// Log receives reconcile errors. Default: discarded.
	Log logr.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

func (o *Options) setDefaults() error {
	var errs []error
	if o.Client == nil {
		errs = append(errs, errors.New("approval: Client is required"))
	}
	if o.Namespace == "" {
		errs = append(errs, errors.New("approval: Namespace is required"))
	}
	if o.CheckPeriod <= 0 {
		o.CheckPeriod = 5 * time.Second
	}
	if o.Workers <= 0 {
		o.Workers = 2
	}
	if o.Log.GetSink() == nil {
		o.Log = logr.Discard()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return errors.Join(errs...)
}

// Controller reconciles AccessRequests: it validates the pod, resolves the
// Connector, snapshots the matched AccessPolicies, evaluates their checks
// and syncs the pod-scoped Role and RoleBinding, which it removes when the
// pod ends.
type Controller struct {
	opts Options
	// recorder is set by Run when Options.Events is; nil records nothing.
	recorder record.EventRecorder
}

// New builds a Controller; Run starts it.
func New(opts Options) (*Controller, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	return &Controller{opts: opts}, nil
}

// Run reconciles until ctx ends. The status writer runs it while it holds
// the status Lease.
func (c *Controller) Run(ctx context.Context) error {
	queue := workqueue.NewTypedRateLimitingQueueWithConfig(
		workqueue.DefaultTypedControllerRateLimiter[types.NamespacedName](),
		workqueue.TypedRateLimitingQueueConfig[types.NamespacedName]{Name: "connectors-approval"})
	defer queue.ShutDown()

	cl := c.opts.Client
	lw := &toolscache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			list := &v1alpha1.AccessRequestList{}
			return list, cl.List(ctx, list, &client.ListOptions{Raw: &o})
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return cl.Watch(ctx, &v1alpha1.AccessRequestList{}, &client.ListOptions{Raw: &o})
		},
	}
	informer := toolscache.NewSharedIndexInformer(lw, &v1alpha1.AccessRequest{}, 0, toolscache.Indexers{})
	enqueue := func(obj any) {
		if d, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
			obj = d.Obj
		}
		if ar, ok := obj.(*v1alpha1.AccessRequest); ok {
			queue.Add(types.NamespacedName{Namespace: ar.Namespace, Name: ar.Name})
		}
	}
	if _, err := informer.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, obj any) { enqueue(obj) },
	}); err != nil {
		return fmt.Errorf("approval: %w", err)
	}
	if c.opts.Events != nil {
		broadcaster := record.NewBroadcaster(record.WithContext(ctx))
		broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: c.opts.Events.CoreV1().Events("")})
		defer broadcaster.Shutdown()
		c.recorder = broadcaster.NewRecorder(c.opts.Client.Scheme(), corev1.EventSource{Component: "connectors-approval"})
	}
	go informer.RunWithContext(ctx)
	if !toolscache.WaitForCacheSync(ctx.Done(), informer.HasSynced) {
		return ctx.Err()
	}

	var wg sync.WaitGroup
	for range c.opts.Workers {
		wg.Go(func() {
			for c.next(ctx, queue) {
			}
		})
	}
	<-ctx.Done()
	queue.ShutDown()
	wg.Wait()
	return nil
}

// next reconciles one AccessRequest; false once the queue shuts down.
func (c *Controller) next(ctx context.Context, queue workqueue.TypedRateLimitingInterface[types.NamespacedName]) bool {
	key, quit := queue.Get()
	if quit {
		return false
	}
	defer queue.Done(key)
	again, err := c.Reconcile(ctx, key)
	switch {
	case ctx.Err() != nil:
		// The lease is gone: the next leader redoes the work.
	case err != nil:
		if !apierrors.IsConflict(err) {
			c.opts.Log.Error(err, "reconciling access request", "accessrequest", key.String())
		}
		queue.AddRateLimited(key)
	default:
		queue.Forget(key)
		if again {
			queue.AddAfter(key, c.opts.CheckPeriod)
		}
	}
	return true
}
