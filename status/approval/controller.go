package approval

import (
	"context"
	"errors"
	"fmt"
	"reflect"
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
	// Connectors, Namespaces, ConfigMaps, check objects, Roles and
	// RoleBindings, and creates SubjectAccessReviews. Its scheme must know
	// the core, RBAC, authorization and connectors types. Required.
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
	// PolicyResync is how often every AccessPolicy is reconciled anyway,
	// which restores a default grant that was deleted. Default 5m.
	PolicyResync time.Duration
	// Workers reconcile in parallel, per kind. Default 2.
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
	if o.PolicyResync <= 0 {
		o.PolicyResync = 5 * time.Minute
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
// pod ends. It also reconciles AccessPolicies: their status and the Role
// and RoleBinding of their defaultPermission.
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
// the status Lease, so only the leader writes grants and status.
func (c *Controller) Run(ctx context.Context) error {
	requests := newQueue("connectors-approval")
	defer requests.ShutDown()
	policies := newQueue("connectors-access-policies")
	defer policies.ShutDown()

	cl := c.opts.Client
	enqueueTo := func(q workqueue.TypedRateLimitingInterface[types.NamespacedName]) func(any) {
		return func(obj any) {
			if d, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			if o, ok := obj.(client.Object); ok {
				q.Add(types.NamespacedName{Namespace: o.GetNamespace(), Name: o.GetName()})
			}
		}
	}
	requestInformer := newInformer(cl, &v1alpha1.AccessRequestList{}, &v1alpha1.AccessRequest{}, 0)
	// The resync repairs a default grant someone deleted.
	policyInformer := newInformer(cl, &v1alpha1.AccessPolicyList{}, &v1alpha1.AccessPolicy{}, c.opts.PolicyResync)
	connectorInformer := newInformer(cl, &v1alpha1.ConnectorList{}, &v1alpha1.Connector{}, 0)
	namespaceInformer := newInformer(cl, &corev1.NamespaceList{}, &corev1.Namespace{}, 0)
	if err := policyInformer.AddIndexers(toolscache.Indexers{toolscache.NamespaceIndex: toolscache.MetaNamespaceIndexFunc}); err != nil {
		return fmt.Errorf("approval: %w", err)
	}
	// policiesOf enqueues the policies of a namespace, whose matched
	// Connectors may have changed; "" enqueues those of every namespace
	// with a defaultPermission, whose subjects may have changed.
	policiesOf := func(ns string) {
		var objs []any
		if ns == "" {
			objs = policyInformer.GetStore().List()
		} else {
			objs, _ = policyInformer.GetIndexer().ByIndex(toolscache.NamespaceIndex, ns)
		}
		for _, o := range objs {
			if p, ok := o.(*v1alpha1.AccessPolicy); ok && (ns != "" || p.Spec.DefaultPermission != nil) {
				enqueueTo(policies)(o)
			}
		}
	}
	namespaceOf := func(obj any) string {
		if d, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
			obj = d.Obj
		}
		if o, ok := obj.(client.Object); ok {
			return o.GetNamespace()
		}
		return ""
	}
	for _, h := range []struct {
		informer toolscache.SharedIndexInformer
		handler  toolscache.ResourceEventHandler
	}{
		{requestInformer, toolscache.ResourceEventHandlerFuncs{
			AddFunc:    enqueueTo(requests),
			UpdateFunc: func(_, obj any) { enqueueTo(requests)(obj) },
		}},
		{policyInformer, toolscache.ResourceEventHandlerFuncs{
			AddFunc:    enqueueTo(policies),
			UpdateFunc: func(_, obj any) { enqueueTo(policies)(obj) },
			DeleteFunc: enqueueTo(policies),
		}},
		{connectorInformer, toolscache.ResourceEventHandlerFuncs{
			AddFunc: func(obj any) { policiesOf(namespaceOf(obj)) },
			UpdateFunc: func(old, obj any) {
				if !reflect.DeepEqual(old.(*v1alpha1.Connector).Labels, obj.(*v1alpha1.Connector).Labels) ||
					old.(*v1alpha1.Connector).DeletionTimestamp != obj.(*v1alpha1.Connector).DeletionTimestamp {
					policiesOf(namespaceOf(obj))
				}
			},
			DeleteFunc: func(obj any) { policiesOf(namespaceOf(obj)) },
		}},
		{namespaceInformer, toolscache.ResourceEventHandlerFuncs{
			AddFunc: func(any) { policiesOf("") },
			UpdateFunc: func(old, obj any) {
				if !reflect.DeepEqual(old.(*corev1.Namespace).Labels, obj.(*corev1.Namespace).Labels) {
					policiesOf("")
				}
			},
			DeleteFunc: func(any) { policiesOf("") },
		}},
	} {
		if _, err := h.informer.AddEventHandler(h.handler); err != nil {
			return fmt.Errorf("approval: %w", err)
		}
	}
	if c.opts.Events != nil {
		broadcaster := record.NewBroadcaster(record.WithContext(ctx))
		broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: c.opts.Events.CoreV1().Events("")})
		defer broadcaster.Shutdown()
		c.recorder = broadcaster.NewRecorder(c.opts.Client.Scheme(), corev1.EventSource{Component: "connectors-approval"})
	}
	informers := []toolscache.SharedIndexInformer{requestInformer, policyInformer, connectorInformer, namespaceInformer}
	synced := make([]toolscache.InformerSynced, len(informers))
	for i, inf := range informers {
		go inf.RunWithContext(ctx)
		synced[i] = inf.HasSynced
	}
	if !toolscache.WaitForCacheSync(ctx.Done(), synced...) {
		return ctx.Err()
	}

	var wg sync.WaitGroup
	for range c.opts.Workers {
		wg.Go(func() {
			for c.next(ctx, requests, "access request", c.Reconcile) {
			}
		})
		wg.Go(func() {
			for c.next(ctx, policies, "access policy", func(ctx context.Context, key types.NamespacedName) (bool, error) {
				return false, c.ReconcilePolicy(ctx, key)
			}) {
			}
		})
	}
	<-ctx.Done()
	requests.ShutDown()
	policies.ShutDown()
	wg.Wait()
	return nil
}

func newQueue(name string) workqueue.TypedRateLimitingInterface[types.NamespacedName] {
	return workqueue.NewTypedRateLimitingQueueWithConfig(
		workqueue.DefaultTypedControllerRateLimiter[types.NamespacedName](),
		workqueue.TypedRateLimitingQueueConfig[types.NamespacedName]{Name: name})
}

// newInformer lists and watches one kind through the client.
func newInformer(cl client.WithWatch, list client.ObjectList, obj runtime.Object, resync time.Duration) toolscache.SharedIndexInformer {
	lw := &toolscache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			l := list.DeepCopyObject().(client.ObjectList)
			return l, cl.List(ctx, l, &client.ListOptions{Raw: &o})
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return cl.Watch(ctx, list.DeepCopyObject().(client.ObjectList), &client.ListOptions{Raw: &o})
		},
	}
	return toolscache.NewSharedIndexInformer(lw, obj, resync, toolscache.Indexers{})
}

// next reconciles one key of queue; false once the queue shuts down.
func (c *Controller) next(ctx context.Context, queue workqueue.TypedRateLimitingInterface[types.NamespacedName], what string,
	reconcile func(context.Context, types.NamespacedName) (bool, error)) bool {
	key, quit := queue.Get()
	if quit {
		return false
	}
	defer queue.Done(key)
	again, err := reconcile(ctx, key)
	switch {
	case ctx.Err() != nil:
		// The lease is gone: the next leader redoes the work.
	case err != nil:
		if !apierrors.IsConflict(err) {
			c.opts.Log.Error(err, "reconciling "+what, "key", key.String())
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
