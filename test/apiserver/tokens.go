package apiserver

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// ExpiredToken returns a ServiceAccount token signed with the API server's
// own key that expired an hour ago. The TokenRequest API cannot mint one (its
// minimum lifetime is ten minutes).
func (e *Env) ExpiredToken(t testing.TB, ns, sa string, audiences []string) string {
	t.Helper()
	return e.ResignedToken(t, ns, sa, audiences, time.Now().Add(-time.Hour))
}

// ResignedToken mints a real token, sets its expiry to exp (issued an hour
// before), and signs it again with the test API server's signing key.
func (e *Env) ResignedToken(t testing.TB, ns, sa string, audiences []string, exp time.Time) string {
	t.Helper()
	return e.Resign(t, e.Token(t, ns, sa, audiences, time.Hour), exp)
}

// Resign sets the expiry of a real token, such as one bound to a pod, to
// exp (issued an hour before) and signs it again with the test API
// server's signing key.
func (e *Env) Resign(t testing.TB, token string, exp time.Time) string {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("minted token is not a JWT")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatalf("decoding token payload: %v", err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatalf("decoding token claims: %v", err)
	}
	claims["iat"] = exp.Add(-time.Hour).Unix()
	claims["nbf"] = exp.Add(-time.Hour).Unix()
	claims["exp"] = exp.Unix()
	payload, err = json.Marshal(claims)
	if err != nil {
		t.Fatalf("encoding token claims: %v", err)
	}
	signed := parts[0] + "." + base64.RawURLEncoding.EncodeToString(payload)

	keyPEM, err := os.ReadFile(filepath.Join(e.env.ControlPlane.APIServer.CertDir, "sa-signer.key"))
	if err != nil {
		t.Fatalf("reading the service account signing key: %v", err)
	}
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		t.Fatalf("service account signing key is not PEM")
	}
	sig, err := signJWS(block.Bytes, signed)
	if err != nil {
		t.Fatalf("signing token: %v", err)
	}
	return signed + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// signJWS signs a JWS signing input with a PKCS#8, PKCS#1 or SEC 1 key (ES256 or RS256).
func signJWS(der []byte, input string) ([]byte, error) {
	var key any
	var err error
	if key, err = x509.ParsePKCS8PrivateKey(der); err != nil {
		if key, err = x509.ParseECPrivateKey(der); err != nil {
			if key, err = x509.ParsePKCS1PrivateKey(der); err != nil {
				return nil, err
			}
		}
	}
	sum := sha256.Sum256([]byte(input))
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		r, s, err := ecdsa.Sign(rand.Reader, k, sum[:])
		if err != nil {
			return nil, err
		}
		size := (k.Curve.Params().BitSize + 7) / 8
		sig := make([]byte, 2*size)
		r.FillBytes(sig[:size])
		s.FillBytes(sig[size:])
		return sig, nil
	case *rsa.PrivateKey:
		return rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, sum[:])
	default:
		return nil, x509.ErrUnsupportedAlgorithm
	}
}
