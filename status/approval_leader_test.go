package status_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
	"github.com/connectors-node/connectors-node/status/approval"
	"github.com/connectors-node/connectors-node/test/apiserver"
)

// TestApprovalControllerRunsOnlyInTheLeader runs two nodes with the
// approval controller as a controller of the status leader, as the binary
// wires it: only the lease holder's runs and writes AccessPolicy status;
// when it stops, the other's takes over and follows a policy change.
func TestApprovalControllerRunsOnlyInTheLeader(t *testing.T) {
	env := apiserver.Shared(t)
	ns := env.Namespace(t, "approval-leader")
	ctx := context.Background()
	var running, ran [2]atomic.Bool
	approvals := func(i int) func(context.Context) error {
		cl, err := client.NewWithWatch(env.Config, client.Options{Scheme: apiserver.Scheme()})
		require.NoError(t, err)
		ctrl, err := approval.New(approval.Options{Client: cl, Namespace: ns})
		require.NoError(t, err)
		return func(ctx context.Context) error {
			running[i].Store(true)
			ran[i].Store(true)
			defer running[i].Store(false)
			return ctrl.Run(ctx)
		}
	}
	a := startNode(t, env, nodeOptions{identity: "node-a", leaseNS: ns, whileLeading: []func(context.Context) error{approvals(0)}})
	eventually(t, "node-a leads", func() (bool, string) { return a.rec.Leading() && running[0].Load(), "" })
	b := startNode(t, env, nodeOptions{identity: "node-b", leaseNS: ns, whileLeading: []func(context.Context) error{approvals(1)}})

	policy := &v1alpha1.AccessPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "p"},
		Spec:       v1alpha1.AccessPolicySpec{Connector: &v1alpha1.ResourceSelector{Names: []string{"git"}}},
	}
	require.NoError(t, env.Client.Create(ctx, policy))
	create(t, env, gitConnector(t, ns, "git", "git-"+ns, "http://127.0.0.1:1", "git-auth"))
	key := client.ObjectKeyFromObject(policy)
	eventually(t, "the leader writes the policy's status", func() (bool, string) {
		require.NoError(t, env.Client.Get(ctx, key, policy))
		c := v1alpha1.FindCondition(policy.Status.Conditions, v1alpha1.ConditionReady)
		return c != nil && c.Status == "True" && len(policy.Status.MatchedConnectors) == 1, ""
	})
	require.Equal(t, policy.Generation, policy.Status.ObservedGeneration)
	require.False(t, b.rec.Leading())
	require.False(t, ran[1].Load(), "the approval controller ran in a node without the lease")

	a.stop()
	require.False(t, running[0].Load(), "the approval controller outlived its node's leadership")
	eventually(t, "node-b takes over", func() (bool, string) { return b.rec.Leading() && running[1].Load(), "" })
	policy.Spec.Connector.Names = []string{"other"}
	require.NoError(t, env.Client.Update(ctx, policy))
	eventually(t, "the new leader follows the policy", func() (bool, string) {
		require.NoError(t, env.Client.Get(ctx, key, policy))
		return policy.Status.ObservedGeneration == policy.Generation && len(policy.Status.MatchedConnectors) == 0, ""
	})
}
