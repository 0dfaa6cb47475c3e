package status

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	rl "k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/utils/ptr"
)

func testLease(holder string, renew time.Time, labels map[string]string) *coordinationv1.Lease {
	t := metav1.NewMicroTime(renew)
	return &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: "l", Namespace: "ns", Labels: labels},
		Spec: coordinationv1.LeaseSpec{
			HolderIdentity: ptr.To(holder), LeaseDurationSeconds: ptr.To(int32(15)),
			AcquireTime: &t, RenewTime: &t,
		},
	}
}

// TestLeaseViewJudgesByTheLocalClock pins when a node may stand: the
// holder's lease runs from when this node observed the record change, by
// its own clock, whatever renewTime says.
func TestLeaseViewJudgesByTheLocalClock(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	w := &leaseWatch{identity: "me", now: func() time.Time { return now }, changed: make(chan struct{})}
	require.True(t, w.view().free, "absent")

	// renewTime an hour in the past (a skewed clock): the lease still runs
	// 15 s from now.
	w.set(testLease("other", now.Add(-time.Hour), nil))
	v := w.view()
	require.False(t, v.free)
	require.Equal(t, now.Add(15*time.Second), v.expires)

	// A metadata-only change does not renew the lease.
	now = now.Add(10 * time.Second)
	w.set(testLease("other", now.Add(-time.Hour-10*time.Second), map[string]string{"x": "y"}))
	require.Equal(t, now.Add(5*time.Second), w.view().expires)

	now = now.Add(5 * time.Second)
	require.True(t, w.view().free, "unrenewed for the whole duration")
	raw, err := json.Marshal(rl.LeaseSpecToLeaderElectionRecord(&testLease("other", now.Add(-time.Hour-15*time.Second), nil).Spec))
	require.NoError(t, err)
	require.True(t, w.expired(raw))
	require.False(t, w.expired([]byte(`{"holderIdentity":"other"}`)), "a record other than the one watched")

	w.set(testLease("other", now, nil))
	require.False(t, w.view().free, "renewed")
	w.set(testLease("", now, nil))
	require.True(t, w.view().free, "released")
	w.set(testLease("me", now, nil))
	require.True(t, w.view().free, "its own")
	w.clear()
	require.True(t, w.view().free, "deleted")
}
