package kube_test

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/connectors-node/connectors-node/kube"
	"github.com/connectors-node/connectors-node/test/apiserver"
)

func TestCacheServesConnectorsAndClasses(t *testing.T) {
	env := apiserver.Shared(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ns := env.Namespace(t, "cache")
	secret, connectors, class := realisticObjects(t, ns)
	class.Name = "cache-" + ns

	var mu sync.Mutex
	var paths []string
	cfg := apiserver.CountingConfig(env.Config, func(r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		paths = append(paths, r.Method+" "+r.URL.Path)
	})
	c, err := kube.NewCache(kube.CacheOptions{Config: cfg, SecretTTL: time.Minute})
	require.NoError(t, err)
	require.False(t, c.Synced())
	require.NoError(t, c.Start(ctx))
	require.True(t, c.WaitForSync(ctx))
	require.Eventually(t, c.Synced, 10*time.Second, 10*time.Millisecond)

	_, err = c.Connector(ctx, ns, "git")
	require.ErrorIs(t, err, kube.ErrNotFound)
	require.EqualError(t, err, `connector "`+ns+`/git" not found`)

	require.NoError(t, env.Client.Create(ctx, class))
	for _, o := range connectors {
		require.NoError(t, env.Client.Create(ctx, o))
	}
	require.Eventually(t, func() bool {
		got, err := c.Connector(ctx, ns, "git")
		return err == nil && got.Spec.Address == "https://git.example.test/group"
	}, 10*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool {
		_, err := c.ConnectorClass(ctx, class.Name)
		return err == nil
	}, 10*time.Second, 10*time.Millisecond)
	_, err = c.ConnectorClass(ctx, "absent")
	require.ErrorIs(t, err, kube.ErrNotFound)

	// Secrets: read on demand by name, cached, never listed or watched.
	_, err = c.Secret(ctx, ns, "git-auth")
	require.ErrorIs(t, err, kube.ErrNotFound)
	_, err = env.Kube.CoreV1().Secrets(ns).Create(ctx, secret, metav1.CreateOptions{})
	require.NoError(t, err)
	var wg sync.WaitGroup
	var failures atomic.Int32
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := c.Secret(ctx, ns, "git-auth")
			if err != nil || string(s.Data["password"]) != "s3cret" {
				failures.Add(1)
			}
		}()
	}
	wg.Wait()
	require.Zero(t, failures.Load())

	mu.Lock()
	defer mu.Unlock()
	secretGets := 0
	for _, p := range paths {
		require.NotContains(t, p, "GET /api/v1/secrets", "no cluster-wide secret list")
		if p == "GET /api/v1/namespaces/"+ns+"/secrets/git-auth" {
			secretGets++
		}
	}
	// One read for the miss before creation, then one for 20 concurrent readers.
	require.LessOrEqual(t, secretGets, 2)
}

func TestCacheSecretErrorsAreTyped(t *testing.T) {
	env := apiserver.Shared(t)
	ctx := context.Background()
	c, err := kube.NewCache(kube.CacheOptions{Config: env.Config})
	require.NoError(t, err)
	_, err = c.Secret(ctx, "nowhere", "none")
	var nf *kube.NotFoundError
	require.True(t, errors.As(err, &nf))
	require.Equal(t, `secret "nowhere/none" not found`, err.Error())

	_, err = kube.NewCache(kube.CacheOptions{})
	require.Error(t, err)
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
