// Package certs makes the benchmark upstream's throw-away CA and server
// certificate.
package certs

import (
	"crypto/tls"

	"github.com/connectors-node/connectors-node/test/servers/testpki"
)

// Server returns a certificate for name signed by a new CA, and the CA
// certificate as PEM.
func Server(name string) (tls.Certificate, []byte, error) {
	ca, err := testpki.NewCA("bench upstream CA")
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	cert, err := ca.TLSCertificate(name)
	return cert, ca.PEM, err
}
