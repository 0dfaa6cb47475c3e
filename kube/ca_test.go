package kube_test

import (
	"context"
	"crypto/x509"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/connectors-node/connectors-node/kube"
	"github.com/connectors-node/connectors-node/test/apiserver"
)

func TestLoadOrCreateCAConcurrentNodesShareOneCA(t *testing.T) {
	env := apiserver.Shared(t)
	ns := env.Namespace(t, "ca")
	const nodes = 8
	cas := make([]*kube.CA, nodes)
	errs := make([]error, nodes)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			cas[i], errs[i] = kube.LoadOrCreateCA(context.Background(), env.Kube, ns, "connectors-proxy-ca")
		}()
	}
	close(start)
	wg.Wait()
	for i := range nodes {
		require.NoError(t, errs[i])
		require.Equal(t, string(cas[0].CertPEM), string(cas[i].CertPEM), "node %d signs with another CA", i)
		require.True(t, cas[0].Key.Equal(cas[i].Key))
	}
	ca := cas[0]
	require.True(t, ca.Cert.IsCA)
	require.Equal(t, x509.ECDSA, ca.Cert.PublicKeyAlgorithm)

	// A restart reads the same CA.
	again, err := kube.LoadOrCreateCA(context.Background(), env.Kube, ns, "connectors-proxy-ca")
	require.NoError(t, err)
	require.Equal(t, string(ca.CertPEM), string(again.CertPEM))

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
	_, err = kube.LoadOrCreateCA(ctx, env.Kube, ns, "connectors-proxy-ca")
	require.ErrorContains(t, err, ns+"/connectors-proxy-ca")
	require.ErrorContains(t, err, "tls.crt")
	s, err := env.Kube.CoreV1().Secrets(ns).Get(ctx, "connectors-proxy-ca", metav1.GetOptions{})
	require.NoError(t, err)
	require.Equal(t, "junk", string(s.Data["tls.crt"]))
}

func TestParseCA(t *testing.T) {
	ca, err := kube.NewCA("test", time.Now())
	require.NoError(t, err)
	other, err := kube.NewCA("other", time.Now())
	require.NoError(t, err)
	keyPEM := func(c *kube.CA) []byte {
		der, err := x509.MarshalPKCS8PrivateKey(c.Key)
		require.NoError(t, err)
		return pemBlock("PRIVATE KEY", der)
	}
	got, err := kube.ParseCA(ca.CertPEM, keyPEM(ca))
	require.NoError(t, err)
	require.True(t, got.Key.Equal(ca.Key))

	for name, tc := range map[string]struct {
		cert, key []byte
		want      string
	}{
		"no cert":        {nil, keyPEM(ca), "tls.crt"},
		"no key":         {ca.CertPEM, nil, "tls.key"},
		"mismatched key": {ca.CertPEM, keyPEM(other), "does not match"},
		"garbage key":    {ca.CertPEM, pemBlock("EC PRIVATE KEY", []byte("x")), "tls.key"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := kube.ParseCA(tc.cert, tc.key)
			require.ErrorContains(t, err, tc.want)
		})
	}
}
