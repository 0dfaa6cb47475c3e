package kube_test

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/connectors-node/connectors-node/kube"
	"github.com/connectors-node/connectors-node/test/apiserver"
	"github.com/connectors-node/connectors-node/test/servers/kubelet"
)

// TestPodBindingWithRealTokens mints tokens bound to real Pod objects on the
// API server, reviews them, and checks their binding: the pod's node, the
// pod's IP as the source address, and tokens bound to no pod.
func TestPodBindingWithRealTokens(t *testing.T) {
	env := apiserver.Shared(t)
	ctx := context.Background()
	ns := env.Namespace(t, "binding")
	env.ServiceAccount(t, ns, "builder")
	require.NoError(t, kubelet.RegisterNode(ctx, env.Kube, "node-a"))
	require.NoError(t, kubelet.RegisterNode(ctx, env.Kube, "node-b"))
	reviewer, err := kube.NewReviewer(kube.ReviewerOptions{Client: env.Kube, Audience: audience})
	require.NoError(t, err)

	mint := func(name, node string) kube.User {
		u := podUser(t, env, reviewer, ns, name, node)
		require.Equal(t, []string{name}, u.Extra[kube.ExtraPodName])
		pod, err := env.Kube.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		require.NoError(t, err)
		require.Equal(t, []string{string(pod.UID)}, u.Extra[kube.ExtraPodUID])
		return u
	}
	here := mint("here", "node-a")
	require.Equal(t, []string{"node-a"}, here.Extra[kube.ExtraNodeName], "a token for a pod on a registered node names the node")
	elsewhere := mint("elsewhere", "node-b")
	// A token that names no node (API servers before node binding): the
	// binding reads the pod's spec.nodeName instead.
	unregistered := mint("unregistered", "node-c")
	delete(unregistered.Extra, kube.ExtraNodeName)
	unbound, err := reviewer.Authenticate(ctx, env.Token(t, ns, "builder", []string{audience}, time.Hour))
	require.NoError(t, err)

	pod := netip.MustParseAddr("127.0.0.1")
	replay := netip.MustParseAddr("127.0.0.2")
	strict, err := kube.NewPodBinding(kube.PodBindingOptions{Client: env.Kube, NodeName: "node-a", CheckNode: true, CheckSource: true})
	require.NoError(t, err)
	noSource, err := kube.NewPodBinding(kube.PodBindingOptions{Client: env.Kube, NodeName: "node-a", CheckNode: true})
	require.NoError(t, err)
	lax, err := kube.NewPodBinding(kube.PodBindingOptions{Client: env.Kube, NodeName: "node-c", CheckNode: true, CheckSource: true, AllowUnbound: true})
	require.NoError(t, err)

	cases := []struct {
		name    string
		b       *kube.PodBinding
		user    kube.User
		source  netip.Addr
		binding string // "" for accepted
	}{
		{"own pod, own node, pod IP", strict, here, pod, ""},
		{"own pod replayed from another address", strict, here, replay, kube.BindingSource},
		{"IPv4-mapped pod IP is the pod IP", strict, here, netip.MustParseAddr("::ffff:127.0.0.1"), ""},
		{"pod on another node", strict, elsewhere, pod, kube.BindingNode},
		{"pod on another node, source check off", noSource, elsewhere, pod, kube.BindingNode},
		{"replay with the source check off", noSource, here, replay, ""},
		{"node read from the pod", lax, unregistered, pod, ""},
		{"node read from the pod, other node", strict, unregistered, pod, kube.BindingNode},
		{"token bound to no pod", strict, unbound, pod, kube.BindingPod},
		{"token bound to no pod, allowed", lax, unbound, replay, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.b.Check(ctx, c.user, c.source)
			if c.binding == "" {
				require.NoError(t, err)
				return
			}
			var be *kube.BindingError
			require.True(t, errors.As(err, &be), "got %v", err)
			require.Equal(t, c.binding, be.Binding)
			require.ErrorIs(t, err, kube.ErrUnauthenticated)
		})
	}

	t.Run("a deleted pod's token", func(t *testing.T) {
		gone := mint("gone", "node-a")
		require.NoError(t, env.Kube.CoreV1().Pods(ns).Delete(ctx, "gone", *zeroGrace()))
		fresh, err := kube.NewPodBinding(kube.PodBindingOptions{Client: env.Kube, NodeName: "node-a", CheckNode: true, CheckSource: true})
		require.NoError(t, err)
		var be *kube.BindingError
		require.ErrorAs(t, fresh.Check(ctx, gone, pod), &be)
		require.Equal(t, kube.BindingPod, be.Binding)
	})
}

func zeroGrace() *metav1.DeleteOptions {
	var zero int64
	return &metav1.DeleteOptions{GracePeriodSeconds: &zero}
}
