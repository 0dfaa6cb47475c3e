package status_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/connectors-node/connectors-node/status"
	"github.com/connectors-node/connectors-node/test/apiserver"
)

// TestOneWriterAndTakeover runs two node processes' reconcilers, each with
// its own clients: only the lease holder writes, and when it stops the
// other takes over and writes.
func TestOneWriterAndTakeover(t *testing.T) {
	env := apiserver.Shared(t)
	ns := env.Namespace(t, "leader")
	up := startUpstream(t)
	ctx := context.Background()

	a := startNode(t, env, nodeOptions{identity: "node-a", leaseNS: ns})
	eventually(t, "node-a leads", func() (bool, string) { return a.rec.Leading(), "" })
	b := startNode(t, env, nodeOptions{identity: "node-b", leaseNS: ns})

	cls := gitClass("git-"+ns, nil)
	create(t, env, cls, basicSecret(ns, "git-auth", upstreamPass), gitConnector(t, ns, "git", cls.Name, up.URL, "git-auth"))
	waitReady(t, env, ns, "git", status.True, "")
	require.True(t, a.rec.Leading())
	require.False(t, b.rec.Leading())
	require.Positive(t, a.statusWrites())
	require.Zero(t, b.statusWrites(), "a node without the lease wrote")
	require.Zero(t, b.api.statusWrites.Load(), "a node without the lease wrote")

	// node-a stops (SIGTERM); node-b takes the lease and writes.
	a.stop()
	aWrites := a.api.writes.Load()
	eventually(t, "node-b takes over", func() (bool, string) { return b.rec.Leading(), "" })
	lease, err := env.Kube.CoordinationV1().Leases(ns).Get(ctx, status.DefaultLeaseName, metav1.GetOptions{})
	require.NoError(t, err)
	require.Equal(t, "node-b", *lease.Spec.HolderIdentity)

	require.NoError(t, env.Client.Delete(ctx, basicSecret(ns, "git-auth", "")))
	waitReady(t, env, ns, "git", status.False, status.ReasonSecretNotFound)
	require.Positive(t, b.statusWrites())
	require.Equal(t, aWrites, a.api.writes.Load(), "a stopped node wrote")
}

// TestLosingTheLeaseStopsWrites takes the lease away from the leader, as a
// partition would: it stops writing as soon as it cannot renew.
func TestLosingTheLeaseStopsWrites(t *testing.T) {
	env := apiserver.Shared(t)
	ns := env.Namespace(t, "lost")
	up := startUpstream(t)
	ctx := context.Background()
	a := startNode(t, env, nodeOptions{identity: "node-a", leaseNS: ns})
	cls := gitClass("git-"+ns, nil)
	create(t, env, cls, basicSecret(ns, "git-auth", upstreamPass), gitConnector(t, ns, "git", cls.Name, up.URL, "git-auth"))
	waitReady(t, env, ns, "git", status.True, "")

	// Another holder takes the lease for an hour.
	leases := env.Kube.CoordinationV1().Leases(ns)
	eventually(t, "lease taken", func() (bool, string) {
		l, err := leases.Get(ctx, status.DefaultLeaseName, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		l.Spec.HolderIdentity = ptr.To("elsewhere")
		l.Spec.LeaseDurationSeconds = ptr.To(int32(3600))
		l.Spec.RenewTime = &metav1.MicroTime{Time: time.Now()}
		_, err = leases.Update(ctx, l, metav1.UpdateOptions{})
		return err == nil, "update failed"
	})
	eventually(t, "node-a gives up", func() (bool, string) { return !a.rec.Leading(), "" })
	writes := a.api.statusWrites.Load()

	require.NoError(t, env.Client.Delete(ctx, basicSecret(ns, "git-auth", "")))
	// Give a wrongly writing node ample time to show itself.
	time.Sleep(3 * time.Second)
	c := getConnector(t, env, ns, "git")
	require.Equal(t, status.True, condition(c, status.TypeReady).Status, "status was written without the lease")
	require.Equal(t, writes, a.api.statusWrites.Load())
}

// TestNonLeaderMakesNoLeaseRequestsAtRest counts the API requests of a
// node that does not lead: once its watch of the Lease is open it sends
// none while the leader renews, and it still takes over when the leader
// stops.
func TestNonLeaderMakesNoLeaseRequestsAtRest(t *testing.T) {
	env := apiserver.Shared(t)
	ns := env.Namespace(t, "rest")
	ctx := context.Background()

	a := startNode(t, env, nodeOptions{identity: "node-a", leaseNS: ns})
	eventually(t, "node-a leads", func() (bool, string) { return a.rec.Leading(), "" })
	b := startNode(t, env, nodeOptions{identity: "node-b", leaseNS: ns})
	eventually(t, "node-b watches the Lease", func() (bool, string) { return b.api.leaseWatches.Load() > 0, "" })

	before, renewals := b.api.leases.Load(), a.api.leases.Load()
	// Ten renewals of the leader: ten chances for a polling node to poll.
	eventually(t, "node-a renews", func() (bool, string) { return a.api.leases.Load() >= renewals+10, "" })
	require.Equal(t, before, b.api.leases.Load(), "a node without the lease sent Lease requests at rest")
	require.False(t, b.rec.Leading())
	require.Zero(t, b.api.leaseReads.Load(), "a node without the lease read the Lease")

	// node-a stops (releasing the lease); node-b takes over.
	a.stop()
	eventually(t, "node-b takes over", func() (bool, string) { return b.rec.Leading(), "" })
	lease, err := env.Kube.CoordinationV1().Leases(ns).Get(ctx, status.DefaultLeaseName, metav1.GetOptions{})
	require.NoError(t, err)
	require.Equal(t, "node-b", *lease.Spec.HolderIdentity)
}

// TestExpiredLeaseIsTakenOnFirstRead leaves a Lease behind as a crashed
// leader would (held, never renewed, never released). A node that watched
// it go unrenewed for its whole duration takes it with its first read of
// the Lease: it does not count the duration again from that read.
func TestExpiredLeaseIsTakenOnFirstRead(t *testing.T) {
	env := apiserver.Shared(t)
	ns := env.Namespace(t, "expired")
	ctx := context.Background()
	now := metav1.NewMicroTime(time.Now())
	_, err := env.Kube.CoordinationV1().Leases(ns).Create(ctx, &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: status.DefaultLeaseName},
		Spec: coordinationv1.LeaseSpec{
			HolderIdentity: ptr.To("crashed"), LeaseDurationSeconds: ptr.To(int32(2)),
			AcquireTime: &now, RenewTime: &now,
		},
	}, metav1.CreateOptions{})
	require.NoError(t, err)

	b := startNode(t, env, nodeOptions{identity: "node-b", leaseNS: ns})
	eventually(t, "node-b takes over", func() (bool, string) { return b.rec.Leading(), "" })
	require.Equal(t, int64(1), b.api.leaseReads.Load(), "reads of the Lease before taking it over")
	lease, err := env.Kube.CoordinationV1().Leases(ns).Get(ctx, status.DefaultLeaseName, metav1.GetOptions{})
	require.NoError(t, err)
	require.Equal(t, "node-b", *lease.Spec.HolderIdentity)
	require.Equal(t, int32(3), *lease.Spec.LeaseDurationSeconds, "the lease is written with the node's own duration")
	require.Equal(t, int32(1), *lease.Spec.LeaseTransitions)
}
