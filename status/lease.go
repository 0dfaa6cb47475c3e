package status

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/go-logr/logr"
	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	rl "k8s.io/client-go/tools/leaderelection/resourcelock"

	"github.com/connectors-node/connectors-node/kube"
)

// leaseWatch follows the status Lease with one watch (an informer selected
// by the Lease's name), so a node that does not lead learns of every
// renewal, release and takeover without polling. Like client-go's elector
// it judges a held Lease by the local clock: the record expires its
// leaseDurationSeconds after this node observed it change, whatever the
// holder's clock wrote in renewTime, so clock skew between nodes does not
// matter.
type leaseWatch struct {
	identity string
	now      func() time.Time
	factory  informers.SharedInformerFactory
	informer cache.SharedIndexInformer
	// synced reports whether the handler has seen the first list.
	synced func() bool

	mu       sync.Mutex
	present  bool
	rec      rl.LeaderElectionRecord
	raw      []byte
	observed time.Time
	// changed is closed, and replaced, whenever the view changes.
	changed chan struct{}
}

func newLeaseWatch(client kubernetes.Interface, namespace, name, identity string, now func() time.Time, log logr.Logger) (*leaseWatch, error) {
	w := &leaseWatch{identity: identity, now: now, changed: make(chan struct{})}
	w.factory = kube.NamedInformers(client, namespace, name)
	w.informer = w.factory.Coordination().V1().Leases().Informer()
	lease := namespace + "/" + name
	if err := w.informer.SetWatchErrorHandlerWithContext(func(_ context.Context, _ *cache.Reflector, err error) {
		log.Error(err, "watching the status lease", "lease", lease)
	}); err != nil {
		return nil, fmt.Errorf("status lease %s: %w", lease, err)
	}
	reg, err := w.informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    w.set,
		UpdateFunc: func(_, obj any) { w.set(obj) },
		DeleteFunc: func(any) { w.clear() },
	})
	if err != nil {
		return nil, fmt.Errorf("status lease %s: %w", lease, err)
	}
	w.synced = reg.HasSynced
	return w, nil
}

// start runs the watch until ctx ends and waits until the first list is
// observed; it reports false when ctx ended first.
func (w *leaseWatch) start(ctx context.Context) bool {
	w.factory.Start(ctx.Done())
	return cache.WaitForCacheSync(ctx.Done(), w.synced)
}

func (w *leaseWatch) set(obj any) {
	l, ok := obj.(*coordinationv1.Lease)
	if !ok {
		return
	}
	rec := rl.LeaseSpecToLeaderElectionRecord(&l.Spec)
	raw, err := json.Marshal(rec)
	if err != nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.present && bytes.Equal(raw, w.raw) {
		// Metadata only: the record, and so its expiry, is unchanged.
		return
	}
	w.present, w.rec, w.raw, w.observed = true, *rec, raw, w.now()
	w.notify()
}

func (w *leaseWatch) clear() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.present, w.rec, w.raw = false, rl.LeaderElectionRecord{}, nil
	w.notify()
}

// notify wakes the waiters. w.mu is held.
func (w *leaseWatch) notify() {
	close(w.changed)
	w.changed = make(chan struct{})
}

// leaseView is the Lease as last observed.
type leaseView struct {
	// free is true when this node may campaign: the Lease is absent,
	// released (no holder), held by this node, or expired.
	free bool
	// expires is, when free is false, the local time the holder's lease
	// ends unless it is renewed first.
	expires time.Time
	// changed is closed when the view changes.
	changed <-chan struct{}
}

func (w *leaseWatch) view() leaseView {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.viewLocked()
}

// viewLocked is view with w.mu held.
func (w *leaseWatch) viewLocked() leaseView {
	v := leaseView{changed: w.changed}
	if !w.present || w.rec.HolderIdentity == "" || w.rec.HolderIdentity == w.identity {
		v.free = true
		return v
	}
	v.expires = w.observed.Add(time.Duration(w.rec.LeaseDurationSeconds) * time.Second)
	v.free = !w.now().Before(v.expires)
	return v
}

// expired reports whether raw is the record last observed and that record
// has gone unrenewed for its whole lease duration since.
func (w *leaseWatch) expired(raw []byte) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.present && bytes.Equal(raw, w.raw) && w.viewLocked().free
}

// await blocks until the view is free or ctx ends; it reports false when
// ctx ended.
func (w *leaseWatch) await(ctx context.Context) bool {
	for ctx.Err() == nil {
		v := w.view()
		if v.free {
			return true
		}
		t := time.NewTimer(v.expires.Sub(w.now()))
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-v.changed:
		case <-t.C:
		}
		t.Stop()
	}
	return false
}

// watchedLock is the Lease lock as this node's elector uses it. A record
// that the watch saw go unrenewed for its whole duration is presented as
// released (no holder): a new elector would otherwise count the duration
// again from its own first read and take over only after twice the lease
// duration. Only a record identical to the one watched is so presented,
// and the elector's write still carries the resourceVersion it read, so a
// holder that renewed meanwhile makes the takeover fail with a conflict;
// only what is presented changes, never what is written.
type watchedLock struct {
	rl.Interface
	watch *leaseWatch
}

func (l *watchedLock) Get(ctx context.Context) (*rl.LeaderElectionRecord, []byte, error) {
	rec, raw, err := l.Interface.Get(ctx)
	if err != nil || rec.HolderIdentity == "" || rec.HolderIdentity == l.Identity() || !l.watch.expired(raw) {
		return rec, raw, err
	}
	seen := *rec
	seen.HolderIdentity = ""
	raw, err = json.Marshal(seen)
	if err != nil {
		return nil, nil, err
	}
	return &seen, raw, nil
}
