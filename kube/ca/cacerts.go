package ca

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// CertsFromSecret returns the CA certificates of a Secret as PEM, as
// upstream loads them: every key ending in .crt or .pem, and any value
// holding a PEM block. Only CERTIFICATE blocks that parse are kept, so a
// private key or token in the same Secret is never returned; other keys
// are ignored. Keys are read in sorted order, so the result is stable.
func CertsFromSecret(s *corev1.Secret) []byte {
	keys := make([]string, 0, len(s.Data))
	for k := range s.Data {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var out []byte
	for _, k := range keys {
		v := s.Data[k]
		if !strings.HasSuffix(k, ".crt") && !strings.HasSuffix(k, ".pem") && !bytes.Contains(v, []byte("-----BEGIN ")) {
			continue
		}
		out = append(out, certificateBlocks(v)...)
	}
	return out
}

// certificateBlocks re-encodes the CERTIFICATE blocks of data that parse
// as X.509 certificates and drops everything else.
func certificateBlocks(data []byte) []byte {
	var out []byte
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return out
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		if _, err := x509.ParseCertificate(b.Bytes); err != nil {
			continue
		}
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: b.Type, Bytes: b.Bytes})...)
	}
}
