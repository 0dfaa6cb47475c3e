package kube_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/connectors-node/connectors-node/kube"
	"github.com/connectors-node/connectors-node/test/apiserver"
)

// TestCacheReadsServicesByNameForTheirTTL pins how the plugin reads a
// host-form Service: one GET by name, cached for ServiceTTL and never
// served past it, so a deleted or repointed Service is seen at the next
// read after the TTL; never a list or a watch.
func TestCacheReadsServicesByNameForTheirTTL(t *testing.T) {
	env := apiserver.Shared(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ns := env.Namespace(t, "svc")

	var mu sync.Mutex
	var services []string
	cfg := apiserver.CountingConfig(env.Config, func(r *http.Request) {
		if strings.Contains(r.URL.Path, "/services") {
			mu.Lock()
			defer mu.Unlock()
			services = append(services, r.Method+" "+r.URL.Path)
		}
	})
	var clock sync.Mutex
	now := time.Now()
	c, err := kube.NewCache(kube.CacheOptions{Config: cfg, ServiceTTL: 10 * time.Second, Now: func() time.Time {
		clock.Lock()
		defer clock.Unlock()
		return now
	}})
	require.NoError(t, err)
	require.NoError(t, c.Start(ctx))
	require.True(t, c.WaitForSync(ctx))
	advance := func(d time.Duration) {
		clock.Lock()
		defer clock.Unlock()
		now = now.Add(d)
	}

	_, err = c.Service(ctx, ns, "c-git")
	require.ErrorIs(t, err, kube.ErrNotFound)
	require.EqualError(t, err, `service "`+ns+`/c-git" not found`)

	_, err = env.Kube.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "c-git"},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "proxy.example"},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	for range 3 {
		svc, err := c.Service(ctx, ns, "c-git")
		require.NoError(t, err, "a missing Service is not cached")
		require.Equal(t, "proxy.example", svc.Spec.ExternalName)
		require.Empty(t, svc.ManagedFields)
	}
	require.NoError(t, env.Kube.CoreV1().Services(ns).Delete(ctx, "c-git", metav1.DeleteOptions{}))
	_, err = c.Service(ctx, ns, "c-git")
	require.NoError(t, err, "served from the cache within its TTL")
	advance(11 * time.Second)
	_, err = c.Service(ctx, ns, "c-git")
	require.ErrorIs(t, err, kube.ErrNotFound, "never served past its TTL")

	mu.Lock()
	defer mu.Unlock()
	path := "/api/v1/namespaces/" + ns + "/services/c-git"
	require.Equal(t, []string{"GET " + path, "GET " + path, "GET " + path}, services,
		"one GET by name per miss; no list or watch")
}
