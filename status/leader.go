package status

import (
	"context"
	"fmt"
	"sync/atomic"

	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// Reconciler writes Connector and ConnectorClass status while it holds the
// status Lease.
type Reconciler struct {
	opts    Options
	metrics *metrics
	// cel holds the compiled response.cel expressions across terms.
	cel *celPrograms
	// leading is the number of the term being led, 0 when none.
	leading atomic.Int64
	// terms counts the leadership terms started; each term is numbered.
	terms atomic.Int64
}

// New builds a Reconciler; Run starts it.
func New(opts Options) (*Reconciler, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	m := newMetrics(opts.Registerer)
	progs, err := newCELPrograms(m.compiles)
	if err != nil {
		return nil, err
	}
	return &Reconciler{opts: opts, metrics: m, cel: progs}, nil
}

// Leading reports whether this Reconciler holds the lease now.
func (r *Reconciler) Leading() bool { return r.leading.Load() != 0 }

// Run takes part in the status election until ctx ends. A node that does
// not lead watches the Lease and campaigns only when it is absent,
// released, or expired by the local clock since its last renewal was
// observed; when another node wins, it leaves the election and watches
// again, so at rest only the leader sends Lease requests (its renewals).
// While leading it reconciles; when the lease is lost it stops writing at
// once (the reconcile context is cancelled). On return the lease is
// released.
func (r *Reconciler) Run(ctx context.Context) error {
	lock, err := resourcelock.New(resourcelock.LeasesResourceLock, r.opts.Namespace, r.opts.LeaseName,
		r.opts.Kube.CoreV1(), r.opts.Kube.CoordinationV1(),
		resourcelock.ResourceLockConfig{Identity: r.opts.Identity})
	if err != nil {
		return fmt.Errorf("status lease: %w", err)
	}
	w, err := newLeaseWatch(r.opts.Kube, r.opts.Namespace, r.opts.LeaseName, r.opts.Identity, r.opts.Now, r.opts.Log)
	if err != nil {
		return err
	}
	if !w.start(ctx) {
		return nil
	}
	elected := &watchedLock{Interface: lock, watch: w}
	for w.await(ctx) {
		if err := r.campaign(ctx, w, elected); err != nil {
			return err
		}
	}
	return nil
}

// campaign runs client-go's elector until ctx ends, the lease is lost, or,
// before this node leads, the watch shows another holder's valid lease.
func (r *Reconciler) campaign(ctx context.Context, w *leaseWatch, lock resourcelock.Interface) error {
	log := r.opts.Log
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		for {
			v := w.view()
			if !v.free && !r.Leading() {
				// Another node won: leave, and watch again.
				cancel()
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-v.changed:
			}
		}
	}()
	// ended is closed when a term this campaign started is over.
	var started atomic.Bool
	ended := make(chan struct{})
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   r.opts.LeaseDuration,
		RenewDeadline:   r.opts.RenewDeadline,
		RetryPeriod:     r.opts.RetryPeriod,
		ReleaseOnCancel: true,
		Name:            r.opts.LeaseName,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(lctx context.Context) {
				started.Store(true)
				defer close(ended)
				term := r.terms.Add(1)
				r.leading.Store(term)
				r.metrics.leader.Set(1)
				log.Info("status lease acquired; writing status", "lease", r.opts.Namespace+"/"+r.opts.LeaseName)
				if err := r.lead(lctx); err != nil {
					log.Error(err, "status reconciler stopped")
				}
				// The term ends with lctx: the lease is lost or released,
				// and lead has stopped every write.
				<-lctx.Done()
				// A later term may have begun if this one started late.
				if r.leading.CompareAndSwap(term, 0) {
					r.metrics.leader.Set(0)
				}
				log.Info("status lease lost or released; status writes stopped")
			},
			// The elector calls this whenever it returns, led or not;
			// OnStartedLeading ends the term itself.
			OnStoppedLeading: func() {},
		},
	})
	if err != nil {
		return fmt.Errorf("status lease: %w", err)
	}
	// Run returns when ctx ends or the lease is lost; the next campaign
	// waits for the term to end, so two terms of one node do not overlap.
	le.Run(ctx)
	if started.Load() {
		<-ended
	}
	return nil
}
