package ca

import (
	"bytes"
	"crypto/x509"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/connectors-node/connectors-node/test/servers/testpki"
)

func TestCACertsFromSecret(t *testing.T) {
	var cas []*testpki.CA
	for _, name := range []string{"a", "b", "c", "d"} {
		ca, err := testpki.NewCA(name)
		if err != nil {
			t.Fatal(err)
		}
		cas = append(cas, ca)
	}
	a, b, c, d := cas[0], cas[1], cas[2], cas[3]
	_, keyPEM, err := a.Issue("x.example.test")
	if err != nil {
		t.Fatal(err)
	}
	const token = "not-a-certificate-but-a-secret-token"
	s := &corev1.Secret{Data: map[string][]byte{
		"ca.crt":     a.PEM,
		"bundle.pem": append(append([]byte{}, keyPEM...), b.PEM...),
		"anything":   c.PEM, // a PEM block under any key
		"d.pem":      d.PEM,
		"token":      []byte(token),
		"notes.crt":  []byte("plain text, no PEM"),
		"tls.key":    keyPEM,
	}}
	got := CertsFromSecret(s)
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(got) {
		t.Fatal("no certificate loaded")
	}
	for _, ca := range cas {
		if !bytes.Contains(got, ca.PEM) {
			t.Errorf("certificate %s not loaded", ca.Cert.Subject.CommonName)
		}
	}
	if strings.Contains(string(got), "PRIVATE KEY") || strings.Contains(string(got), token) {
		t.Error("a private key or a non-certificate value was loaded")
	}
	if len(CertsFromSecret(&corev1.Secret{Data: map[string][]byte{"token": []byte(token)}})) != 0 {
		t.Error("a Secret without certificates gave some")
	}
}
