package registry

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/connectors-node/connectors-node/test/servers/testpki"
)

// TokenService is a token realm for the distribution registry's token
// authentication: it checks HTTP Basic credentials and answers JWTs signed
// with ES256 that carry the signing certificate in the x5c header, granting
// every requested action. It counts token requests per scope set.
type TokenService struct {
	issuer, service string
	user, password  string
	lifetime        time.Duration
	key             *ecdsa.PrivateKey
	certDER         []byte
	// CertPEM is the signing certificate, for the registry's rootcertbundle.
	CertPEM []byte

	mu     sync.Mutex
	counts map[string]int
	denied int
}

// NewTokenService creates a token service for issuer and service that
// accepts user and password and issues tokens valid for lifetime.
func NewTokenService(issuer, service, user, password string, lifetime time.Duration) (*TokenService, error) {
	// The signing certificate is a self-signed CA: the registry trusts it
	// through its rootcertbundle.
	ca, err := testpki.NewCA(issuer)
	if err != nil {
		return nil, fmt.Errorf("token signing certificate: %w", err)
	}
	return &TokenService{
		issuer: issuer, service: service, user: user, password: password, lifetime: lifetime,
		key: ca.Key, certDER: ca.Cert.Raw, CertPEM: ca.PEM, counts: map[string]int{},
	}, nil
}

// Counts returns the number of tokens issued per scope set (scopes sorted
// and joined by spaces; "" for none).
func (s *TokenService) Counts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.counts))
	for k, v := range s.counts {
		out[k] = v
	}
	return out
}

// Denied returns the number of requests with wrong credentials.
func (s *TokenService) Denied() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.denied
}

type access struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

// ServeHTTP answers GET ?service=...&scope=... with a token.
func (s *TokenService) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	user, pass, ok := r.BasicAuth()
	if !ok || subtle.ConstantTimeCompare([]byte(user), []byte(s.user)) != 1 ||
		subtle.ConstantTimeCompare([]byte(pass), []byte(s.password)) != 1 {
		s.mu.Lock()
		s.denied++
		s.mu.Unlock()
		w.Header().Set("Www-Authenticate", `Basic realm="token"`)
		http.Error(w, "bad credentials", http.StatusUnauthorized)
		return
	}
	q := r.URL.Query()
	if svc := q.Get("service"); svc != "" && svc != s.service {
		http.Error(w, "unknown service", http.StatusBadRequest)
		return
	}
	var scopes []string
	for _, v := range q["scope"] {
		scopes = append(scopes, strings.Fields(v)...)
	}
	var grants []access
	for _, sc := range scopes {
		typ, rest, ok1 := strings.Cut(sc, ":")
		i := strings.LastIndexByte(rest, ':')
		if !ok1 || i < 0 {
			http.Error(w, "bad scope", http.StatusBadRequest)
			return
		}
		grants = append(grants, access{Type: typ, Name: rest[:i], Actions: strings.Split(rest[i+1:], ",")})
	}
	tok, err := s.sign(user, grants)
	if err != nil {
		http.Error(w, "signing failed", http.StatusInternalServerError)
		return
	}
	s.mu.Lock()
	s.counts[strings.Join(slices.Sorted(slices.Values(scopes)), " ")]++
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"token": tok, "access_token": tok, "expires_in": int(s.lifetime / time.Second),
		"issued_at": time.Now().UTC().Format(time.RFC3339),
	})
}

// sign builds a JWT per the distribution token spec.
func (s *TokenService) sign(subject string, grants []access) (string, error) {
	now := time.Now()
	jti := make([]byte, 12)
	if _, err := rand.Read(jti); err != nil {
		return "", err
	}
	header, err := json.Marshal(map[string]any{
		"typ": "JWT", "alg": "ES256", "x5c": []string{base64.StdEncoding.EncodeToString(s.certDER)},
	})
	if err != nil {
		return "", err
	}
	if grants == nil {
		grants = []access{}
	}
	claims, err := json.Marshal(map[string]any{
		"iss": s.issuer, "sub": subject, "aud": s.service,
		"exp": now.Add(s.lifetime).Unix(), "nbf": now.Add(-10 * time.Second).Unix(), "iat": now.Unix(),
		"jti": hex.EncodeToString(jti), "access": grants,
	})
	if err != nil {
		return "", err
	}
	enc := base64.RawURLEncoding
	payload := enc.EncodeToString(header) + "." + enc.EncodeToString(claims)
	sum := sha256.Sum256([]byte(payload))
	r, sv, err := ecdsa.Sign(rand.Reader, s.key, sum[:])
	if err != nil {
		return "", err
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	sv.FillBytes(sig[32:])
	return payload + "." + enc.EncodeToString(sig), nil
}
