package kube_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/connectors-node/connectors-node/kube"
	"github.com/connectors-node/connectors-node/test/apiserver"
)

// A Reviewer with APIAudiences accepts the tokens the API server itself
// accepts (a pod's mounted ServiceAccount token) and refuses tokens issued
// for another audience, such as the proxy's.
func TestAuthenticateForTheAPIServersAudiences(t *testing.T) {
	env := apiserver.Shared(t)
	ns := env.Namespace(t, "apiaud")
	env.ServiceAccount(t, ns, "prometheus")
	r := newReviewer(t, env.Kube, testingclock.NewFakeClock(time.Now()), func(o *kube.ReviewerOptions) {
		o.Audience, o.APIAudiences = "", true
	})
	ctx := context.Background()
	user, err := r.Authenticate(ctx, env.Token(t, ns, "prometheus", nil, time.Hour))
	require.NoError(t, err)
	require.Equal(t, "system:serviceaccount:"+ns+":prometheus", user.Name)
	for name, token := range map[string]string{
		"proxy audience": env.Token(t, ns, "prometheus", []string{audience}, time.Hour),
		"garbage":        "not-a-token",
	} {
		_, err := r.Authenticate(ctx, token)
		require.ErrorIs(t, err, kube.ErrUnauthenticated, name)
	}

	_, err = kube.NewReviewer(kube.ReviewerOptions{Client: env.Kube, Audience: audience, APIAudiences: true})
	require.ErrorContains(t, err, "exclude each other")
	_, err = kube.NewReviewer(kube.ReviewerOptions{Client: env.Kube})
	require.ErrorContains(t, err, "Audience is required")
}

// AuthorizePath asks RBAC about a non-resource URL for the user: allowed
// with a ClusterRole on that path, forbidden (naming the path) without,
// and each decision is cached.
func TestAuthorizePath(t *testing.T) {
	env := apiserver.Shared(t)
	ns := env.Namespace(t, "paths")
	env.ServiceAccount(t, ns, "reader")
	env.ServiceAccount(t, ns, "other")
	ctx := context.Background()
	name := "metrics-" + ns
	_, err := env.Kube.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Rules:      []rbacv1.PolicyRule{{NonResourceURLs: []string{"/metrics"}, Verbs: []string{"get"}}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = env.Kube.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: "reader"}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = env.Kube.RbacV1().ClusterRoleBindings().Delete(context.Background(), name, metav1.DeleteOptions{})
		_ = env.Kube.RbacV1().ClusterRoles().Delete(context.Background(), name, metav1.DeleteOptions{})
	})

	var calls reviewCalls
	r := newReviewer(t, calls.client(t, env), testingclock.NewFakeClock(time.Now()), func(o *kube.ReviewerOptions) {
		o.Audience, o.APIAudiences = "", true
	})
	reader, other := kube.ServiceAccountUser(ns, "reader"), kube.ServiceAccountUser(ns, "other")
	require.Eventually(t, func() bool { return r.AuthorizePath(ctx, reader, "get", "/metrics") == nil },
		10*time.Second, 100*time.Millisecond, "the reader may not get /metrics")
	before := calls.access.Load()
	require.NoError(t, r.AuthorizePath(ctx, reader, "get", "/metrics"))
	require.Equal(t, before, calls.access.Load(), "an allowed path is cached")

	for _, c := range []struct {
		user       kube.User
		verb, path string
	}{{other, "get", "/metrics"}, {reader, "get", "/debug/pprof/heap"}, {reader, "post", "/metrics"}} {
		err := r.AuthorizePath(ctx, c.user, c.verb, c.path)
		require.ErrorIs(t, err, kube.ErrForbidden, "%s %s %s", c.user.Name, c.verb, c.path)
		var fe *kube.ForbiddenError
		require.True(t, errors.As(err, &fe))
		require.Equal(t, c.user.Name+" may not "+c.verb+` "`+c.path+`"`, err.Error())
	}
	before = calls.access.Load()
	require.ErrorIs(t, r.AuthorizePath(ctx, other, "get", "/metrics"), kube.ErrForbidden)
	require.Equal(t, before, calls.access.Load(), "a denied path is cached")
	// A path decision never answers for a connector of the same name.
	require.ErrorIs(t, r.Authorize(ctx, reader, "get", "/metrics"), kube.ErrForbidden)
}
