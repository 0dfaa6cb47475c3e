package ca_test

import (
	"context"
	"crypto/x509"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/connectors-node/connectors-node/kube/ca"
	"github.com/connectors-node/connectors-node/test/apiserver"
)

func TestLoadOrCreateCAConcurrentNodesShareOneCA(t *testing.T) {
	env := apiserver.Shared(t)
	ns := env.Namespace(t, "ca")
	const nodes = 8
	cas := make([]*ca.CA, nodes)
	errs := make([]error, nodes)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			cas[i], errs[i] = ca.LoadOrCreateCA(context.Background(), env.Kube, ns, "connectors-proxy-ca")
		}()
	}
	close(start)
	wg.Wait()
	for i := range nodes {
		require.NoError(t, errs[i])
		require.Equal(t, string(cas[0].CertPEM), string(cas[i].CertPEM), "node %d signs with another CA", i)
		require.True(t, cas[0].Key.Equal(cas[i].Key))
	}
	authority := cas[0]
	require.True(t, authority.Cert.IsCA)
	require.Equal(t, x509.ECDSA, authority.Cert.PublicKeyAlgorithm)

	// A restart reads the same CA.
	again, err := ca.LoadOrCreateCA(context.Background(), env.Kube, ns, "connectors-proxy-ca")
	require.NoError(t, err)
	require.Equal(t, string(authority.CertPEM), string(again.CertPEM))

	s, err := env.Kube.CoreV1().Secrets(ns).Get(context.Background(), "connectors-proxy-ca", metav1.GetOptions{})
	require.NoError(t, err)
	require.Equal(t, corev1.SecretTypeTLS, s.Type)
}

func TestLoadOrCreateCANeverOverwritesABadSecret(t *testing.T) {
	env := apiserver.Shared(t)
	ns := env.Namespace(t, "ca-bad")
	ctx := context.Background()
	bad := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "connectors-proxy-ca"},
		Data:       map[string][]byte{"tls.crt": []byte("junk")},
	}
	_, err := env.Kube.CoreV1().Secrets(ns).Create(ctx, bad, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = ca.LoadOrCreateCA(ctx, env.Kube, ns, "connectors-proxy-ca")
	require.ErrorContains(t, err, ns+"/connectors-proxy-ca")
	require.ErrorContains(t, err, "tls.crt")
	s, err := env.Kube.CoreV1().Secrets(ns).Get(ctx, "connectors-proxy-ca", metav1.GetOptions{})
	require.NoError(t, err)
	require.Equal(t, "junk", string(s.Data["tls.crt"]))
}

func TestParseCA(t *testing.T) {
	authority, err := ca.NewCA("test", time.Now())
	require.NoError(t, err)
	other, err := ca.NewCA("other", time.Now())
	require.NoError(t, err)
	keyPEM := func(c *ca.CA) []byte {
		der, err := x509.MarshalPKCS8PrivateKey(c.Key)
		require.NoError(t, err)
		return pemBlock("PRIVATE KEY", der)
	}
	got, err := ca.ParseCA(authority.CertPEM, keyPEM(authority))
	require.NoError(t, err)
	require.True(t, got.Key.Equal(authority.Key))

	for name, tc := range map[string]struct {
		cert, key []byte
		want      string
	}{
		"no cert":        {nil, keyPEM(authority), "tls.crt"},
		"no key":         {authority.CertPEM, nil, "tls.key"},
		"mismatched key": {authority.CertPEM, keyPEM(other), "does not match"},
		"garbage key":    {authority.CertPEM, pemBlock("EC PRIVATE KEY", []byte("x")), "tls.key"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ca.ParseCA(tc.cert, tc.key)
			require.ErrorContains(t, err, tc.want)
		})
	}
}
