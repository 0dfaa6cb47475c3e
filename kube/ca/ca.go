package ca

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/connectors-node/connectors-node/kube"
)

// CA is the proxy's certificate authority. It signs the leaf certificates of
// intercepted TLS connections; pods trust it through the mounted ca.crt.
type CA struct {
	Cert    *x509.Certificate
	Key     *ecdsa.PrivateKey
	CertPEM []byte
	// BundlePEM is every certificate pods are to trust: CertPEM, then the
	// certificates the CA Secret keeps trusted beside it during a rotation
	// (its ca.crt key). Empty means CertPEM alone; read it with Bundle.
	BundlePEM []byte
}

// caValidity is how long a new CA certificate is valid.
const caValidity = 10 * 365 * 24 * time.Hour

// NewCA creates a self-signed ECDSA P-256 CA.
func NewCA(commonName string, now time.Time) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating CA key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("generating CA serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName, Organization: []string{"connectors-node"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("signing CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Key: key, CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, nil
}

// ParseCA reads a CA from PEM certificate and key.
func ParseCA(certPEM, keyPEM []byte) (*CA, error) {
	cb, _ := pem.Decode(certPEM)
	if cb == nil || cb.Type != "CERTIFICATE" {
		return nil, errors.New("tls.crt holds no PEM certificate")
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("tls.crt: %w", err)
	}
	if !cert.IsCA {
		return nil, errors.New("tls.crt is not a CA certificate")
	}
	kb, _ := pem.Decode(keyPEM)
	if kb == nil {
		return nil, errors.New("tls.key holds no PEM key")
	}
	var key *ecdsa.PrivateKey
	switch kb.Type {
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(kb.Bytes)
	case "PRIVATE KEY":
		var k any
		k, err = x509.ParsePKCS8PrivateKey(kb.Bytes)
		if err == nil {
			var ok bool
			if key, ok = k.(*ecdsa.PrivateKey); !ok {
				err = errors.New("not an ECDSA key")
			}
		}
	default:
		err = fmt.Errorf("unexpected PEM block %q", kb.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("tls.key: %w", err)
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, errors.New("tls.key does not match tls.crt")
	}
	return &CA{Cert: cert, Key: key, CertPEM: pem.EncodeToMemory(cb)}, nil
}

func (ca *CA) secretData() (map[string][]byte, error) {
	der, err := x509.MarshalECPrivateKey(ca.Key)
	if err != nil {
		return nil, err
	}
	return map[string][]byte{
		corev1.TLSCertKey:       ca.CertPEM,
		corev1.TLSPrivateKeyKey: pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}),
	}, nil
}

// LoadOrCreateCA reads the proxy CA from the Secret namespace/name, creating
// it when absent. When several nodes start at once, the first Create wins and
// every other node reads the winner's CA, so all nodes sign with one CA. A
// Secret that exists but holds no valid CA is an error; it is never
// overwritten.
func LoadOrCreateCA(ctx context.Context, client kubernetes.Interface, namespace, name string) (*CA, error) {
	secrets := client.CoreV1().Secrets(namespace)
	for attempt := 0; attempt < 3; attempt++ {
		s, err := secrets.Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			ca, err := caFromSecret(s)
			if err != nil {
				return nil, fmt.Errorf("proxy CA secret %s/%s: %w", namespace, name, err)
			}
			return ca, nil
		}
		if !apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("reading proxy CA secret %s/%s: %w", namespace, name, kube.Classify(err))
		}
		ca, err := NewCA("connectors-proxy-ca", time.Now())
		if err != nil {
			return nil, err
		}
		data, err := ca.secretData()
		if err != nil {
			return nil, err
		}
		secret := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{
				Namespace: namespace,
				Name:      name,
				Labels:    map[string]string{"app.kubernetes.io/name": "connectors-node"},
			},
			Type: corev1.SecretTypeTLS,
			Data: data,
		}
		_, err = secrets.Create(ctx, secret, metav1.CreateOptions{})
		if err == nil {
			return ca, nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return nil, fmt.Errorf("creating proxy CA secret %s/%s: %w", namespace, name, kube.Classify(err))
		}
		// Another node created it first: read theirs.
	}
	return nil, fmt.Errorf("proxy CA secret %s/%s: gave up after concurrent updates", namespace, name)
}
