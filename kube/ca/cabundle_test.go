package ca_test

import (
	"context"
	"crypto/x509"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/connectors-node/connectors-node/kube/ca"
	"github.com/connectors-node/connectors-node/test/apiserver"
)

func newTestCA(t *testing.T, name string) *ca.CA {
	t.Helper()
	authority, err := ca.NewCA(name, time.Now())
	require.NoError(t, err)
	return authority
}

func caKeyPEM(t *testing.T, authority *ca.CA) []byte {
	t.Helper()
	der, err := x509.MarshalECPrivateKey(authority.Key)
	require.NoError(t, err)
	return pemBlock("EC PRIVATE KEY", der)
}

func TestNormalizeCABundle(t *testing.T) {
	a, b := newTestCA(t, "a"), newTestCA(t, "b")
	got, err := ca.NormalizeBundle(append(append(append([]byte{}, a.CertPEM...), b.CertPEM...), a.CertPEM...))
	require.NoError(t, err)
	require.Equal(t, string(a.CertPEM)+string(b.CertPEM), string(got), "duplicates are dropped, order kept")

	for name, tc := range map[string]struct {
		in   []byte
		want string
	}{
		"empty":            {nil, "no PEM certificate"},
		"a key beside":     {append(append([]byte{}, a.CertPEM...), caKeyPEM(t, a)...), `"EC PRIVATE KEY"`},
		"a key alone":      {caKeyPEM(t, a), "not a CERTIFICATE"},
		"stray text":       {append(append([]byte{}, a.CertPEM...), "junk"...), "not a PEM block"},
		"garbage DER":      {pemBlock("CERTIFICATE", []byte("x")), "PEM block 1"},
		"second block bad": {append(append([]byte{}, a.CertPEM...), pemBlock("CERTIFICATE", []byte("x"))...), "PEM block 2"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ca.NormalizeBundle(tc.in)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

// TestCAKeeperPublishesTheCertificatesAlone checks that the process holding
// the key publishes the certificate, never the key, in the ConfigMap, and
// that a reader of the ConfigMap alone gets the same certificates.
func TestCAKeeperPublishesTheCertificatesAlone(t *testing.T) {
	env := apiserver.Shared(t)
	ns := env.Namespace(t, "ca-publish")
	ctx := context.Background()
	opts := ca.Options{Client: env.Kube, Namespace: ns, Secret: "connectors-proxy-ca"}
	k, err := ca.NewKeeper(ctx, opts)
	require.NoError(t, err)
	authority := k.Signing()
	require.Equal(t, string(authority.CertPEM), string(k.BundlePEM()))

	cm, err := env.Kube.CoreV1().ConfigMaps(ns).Get(ctx, ca.DefaultConfigMap, metav1.GetOptions{})
	require.NoError(t, err)
	require.Equal(t, map[string]string{ca.BundleKey: string(authority.CertPEM)}, cm.Data)
	require.Empty(t, cm.BinaryData)
	require.NotContains(t, cm.Data[ca.BundleKey], "PRIVATE KEY")

	// A second keeper (another replica) reads the same CA and leaves the
	// ConfigMap as it is.
	k2, err := ca.NewKeeper(ctx, opts)
	require.NoError(t, err)
	require.True(t, k2.Signing().Key.Equal(authority.Key))
	cm2, err := env.Kube.CoreV1().ConfigMaps(ns).Get(ctx, ca.DefaultConfigMap, metav1.GetOptions{})
	require.NoError(t, err)
	require.Equal(t, cm.ResourceVersion, cm2.ResourceVersion, "an unchanged bundle is not written again")

	r, err := ca.NewBundleReader(ca.Options{Client: env.Kube, Namespace: ns})
	require.NoError(t, err)
	require.False(t, r.Loaded())
	require.Nil(t, r.BundlePEM())
	require.NoError(t, r.Refresh(ctx))
	require.Equal(t, string(authority.CertPEM), string(r.BundlePEM()))

	// Something written beside the bundle is removed by the next publish.
	cm2.Data["extra"] = "x"
	_, err = env.Kube.CoreV1().ConfigMaps(ns).Update(ctx, cm2, metav1.UpdateOptions{})
	require.NoError(t, err)
	require.NoError(t, k.Refresh(ctx))
	cm3, err := env.Kube.CoreV1().ConfigMaps(ns).Get(ctx, ca.DefaultConfigMap, metav1.GetOptions{})
	require.NoError(t, err)
	require.Equal(t, []string{ca.BundleKey}, keys(cm3.Data))
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestCARotationSteps walks the documented rotation through the real API
// server: the new certificate is published beside the old one first, then
// the new key signs while the old certificate stays trusted, then the old
// one is dropped. At every step the published bundle holds every
// certificate a leaf could be signed with, and a bad Secret is never
// adopted.
func TestCARotationSteps(t *testing.T) {
	env := apiserver.Shared(t)
	ns := env.Namespace(t, "ca-rotate")
	ctx := context.Background()
	const name = "connectors-proxy-ca"
	opts := ca.Options{Client: env.Kube, Namespace: ns, Secret: name}
	k, err := ca.NewKeeper(ctx, opts)
	require.NoError(t, err)
	r, err := ca.NewBundleReader(ca.Options{Client: env.Kube, Namespace: ns})
	require.NoError(t, err)
	oldCA, newCA := k.Signing(), newTestCA(t, "connectors-proxy-ca-2")

	step := func(what string, data map[string][]byte) {
		t.Helper()
		s, err := env.Kube.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
		require.NoError(t, err)
		s.Data = data
		_, err = env.Kube.CoreV1().Secrets(ns).Update(ctx, s, metav1.UpdateOptions{})
		require.NoError(t, err, what)
		require.NoError(t, k.Refresh(ctx), what)
		require.NoError(t, r.Refresh(ctx), what)
	}
	oldKey := caKeyPEM(t, oldCA)

	// 1. Publish the new certificate beside the old one; the old key signs.
	step("publish", map[string][]byte{corev1.TLSCertKey: oldCA.CertPEM, corev1.TLSPrivateKeyKey: oldKey, ca.BundleKey: newCA.CertPEM})
	require.True(t, k.Signing().Key.Equal(oldCA.Key))
	require.Equal(t, string(oldCA.CertPEM)+string(newCA.CertPEM), string(r.BundlePEM()))

	// 2. Switch: the new key signs, the old certificate stays trusted.
	step("switch", map[string][]byte{corev1.TLSCertKey: newCA.CertPEM, corev1.TLSPrivateKeyKey: caKeyPEM(t, newCA), ca.BundleKey: oldCA.CertPEM})
	require.True(t, k.Signing().Key.Equal(newCA.Key))
	require.Equal(t, string(newCA.CertPEM)+string(oldCA.CertPEM), string(r.BundlePEM()))

	// A broken Secret is logged and ignored: the CA in use stays.
	s, err := env.Kube.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
	require.NoError(t, err)
	s.Data[corev1.TLSPrivateKeyKey] = oldKey // does not match tls.crt
	_, err = env.Kube.CoreV1().Secrets(ns).Update(ctx, s, metav1.UpdateOptions{})
	require.NoError(t, err)
	err = k.Refresh(ctx)
	require.ErrorContains(t, err, "does not match")
	require.NotContains(t, err.Error(), "PRIVATE KEY")
	require.True(t, k.Signing().Key.Equal(newCA.Key))

	// 3. Drop the old certificate.
	step("drop", map[string][]byte{corev1.TLSCertKey: newCA.CertPEM, corev1.TLSPrivateKeyKey: caKeyPEM(t, newCA)})
	require.Equal(t, string(newCA.CertPEM), string(r.BundlePEM()))
	require.False(t, strings.Contains(string(r.BundlePEM()), string(oldCA.CertPEM)))
}

// TestCABundleReaderKeepsTheLastGoodBundle checks that a ConfigMap that
// stops holding valid certificates (or holds a key) is not adopted.
func TestCABundleReaderKeepsTheLastGoodBundle(t *testing.T) {
	env := apiserver.Shared(t)
	ns := env.Namespace(t, "ca-reader")
	ctx := context.Background()
	authority := newTestCA(t, "c")
	require.NoError(t, ca.PublishBundle(ctx, env.Kube, ns, ca.DefaultConfigMap, authority.CertPEM))
	r, err := ca.NewBundleReader(ca.Options{Client: env.Kube, Namespace: ns})
	require.NoError(t, err)
	require.NoError(t, r.Refresh(ctx))

	require.ErrorContains(t, ca.PublishBundle(ctx, env.Kube, ns, ca.DefaultConfigMap, append(append([]byte{}, authority.CertPEM...), caKeyPEM(t, authority)...)),
		"PRIVATE KEY", "a key is never published")
	cm, err := env.Kube.CoreV1().ConfigMaps(ns).Get(ctx, ca.DefaultConfigMap, metav1.GetOptions{})
	require.NoError(t, err)
	cm.Data[ca.BundleKey] = string(authority.CertPEM) + string(caKeyPEM(t, authority))
	_, err = env.Kube.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{})
	require.NoError(t, err)
	require.ErrorContains(t, r.Refresh(ctx), "not a CERTIFICATE")
	require.Equal(t, string(authority.CertPEM), string(r.BundlePEM()))
}

// TestCAIsWatchedNotPolled runs a keeper (the proxy role) and a reader (a
// CSI-only node) with their watches: a rotation of the Secret reaches the
// keeper's signing CA and, through the ConfigMap the keeper publishes, the
// reader, with no explicit read; the reader sends no request but its
// watch; a deleted ConfigMap is published again while the reader keeps
// its bundle; and once settled neither sends a request.
func TestCAIsWatchedNotPolled(t *testing.T) {
	env := apiserver.Shared(t)
	ns := env.Namespace(t, "ca-watch")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const name = "connectors-proxy-ca"

	type counts struct{ watches, other atomic.Int64 }
	client := func(c *counts) kubernetes.Interface {
		cfg := apiserver.CountingConfig(env.Config, func(r *http.Request) {
			if r.URL.Query().Get("watch") == "true" {
				c.watches.Add(1)
			} else {
				c.other.Add(1)
			}
		})
		kc, err := kubernetes.NewForConfig(cfg)
		require.NoError(t, err)
		return kc
	}
	var kept, read counts
	k, err := ca.NewKeeper(ctx, ca.Options{Client: client(&kept), Namespace: ns, Secret: name})
	require.NoError(t, err)
	r, err := ca.NewBundleReader(ca.Options{Client: client(&read), Namespace: ns})
	require.NoError(t, err)
	go k.Run(ctx)
	go r.Run(ctx)
	require.Eventually(t, func() bool { return kept.watches.Load() >= 2 && read.watches.Load() >= 1 && r.Loaded() },
		30*time.Second, 20*time.Millisecond, "the watches never opened")
	oldCA, newCA := k.Signing(), newTestCA(t, "connectors-proxy-ca-2")
	require.Equal(t, string(oldCA.CertPEM), string(r.BundlePEM()))

	// Switch to the new key, the old certificate still trusted.
	s, err := env.Kube.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
	require.NoError(t, err)
	s.Data = map[string][]byte{corev1.TLSCertKey: newCA.CertPEM, corev1.TLSPrivateKeyKey: caKeyPEM(t, newCA), ca.BundleKey: oldCA.CertPEM}
	_, err = env.Kube.CoreV1().Secrets(ns).Update(ctx, s, metav1.UpdateOptions{})
	require.NoError(t, err)
	want := string(newCA.CertPEM) + string(oldCA.CertPEM)
	require.Eventually(t, func() bool { return k.Signing().Key.Equal(newCA.Key) && string(r.BundlePEM()) == want },
		30*time.Second, 20*time.Millisecond, "the rotation was never seen")

	// The published ConfigMap is deleted: the keeper publishes it again;
	// the reader keeps its bundle meanwhile.
	require.NoError(t, env.Kube.CoreV1().ConfigMaps(ns).Delete(ctx, ca.DefaultConfigMap, metav1.DeleteOptions{}))
	require.Eventually(t, func() bool {
		cm, err := env.Kube.CoreV1().ConfigMaps(ns).Get(ctx, ca.DefaultConfigMap, metav1.GetOptions{})
		return err == nil && cm.Data[ca.BundleKey] == want
	}, 30*time.Second, 20*time.Millisecond, "the ConfigMap was never published again")
	require.Equal(t, want, string(r.BundlePEM()))
	require.Zero(t, read.other.Load(), "the reader sent a request other than its watch")

	// Settled: the ConfigMap the keeper wrote comes back through both
	// watches and asks for nothing more.
	require.Eventually(t, func() bool { return r.Loaded() && string(r.BundlePEM()) == want }, 30*time.Second, 20*time.Millisecond)
	before := kept.other.Load()
	s, err = env.Kube.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
	require.NoError(t, err)
	s.Labels = map[string]string{"touched": "yes"} // a change that is no rotation
	_, err = env.Kube.CoreV1().Secrets(ns).Update(ctx, s, metav1.UpdateOptions{})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		obj, err := env.Kube.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
		return err == nil && obj.Labels["touched"] == "yes"
	}, 30*time.Second, 20*time.Millisecond)
	require.Equal(t, before, kept.other.Load(), "the keeper read or wrote although nothing was out of date")
	require.Zero(t, read.other.Load())
}
