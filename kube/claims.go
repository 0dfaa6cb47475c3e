package kube

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"time"
)

// Claims are the time claims of a ServiceAccount token (a JWT), read
// without verifying its signature: only the API server's TokenReview
// decides whether a token is good. They size caches and warnings.
type Claims struct {
	// IssuedAt and Expiry are zero when the token does not carry them.
	IssuedAt, Expiry time.Time
}

// Lifetime is Expiry - IssuedAt, or 0 when either is missing or the token
// expires before it was issued.
func (c Claims) Lifetime() time.Duration {
	if c.IssuedAt.IsZero() || c.Expiry.IsZero() || !c.Expiry.After(c.IssuedAt) {
		return 0
	}
	return c.Expiry.Sub(c.IssuedAt)
}

// TokenClaims decodes the payload of a JWT. It reports false when token is
// not three dot-separated parts with a base64url JSON object in the middle.
// It is the one decoder of token claims in the module.
func TokenClaims(token string) (Claims, bool) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return Claims{}, false
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return Claims{}, false
	}
	var raw struct {
		Exp int64 `json:"exp"`
		Iat int64 `json:"iat"`
	}
	if err := json.Unmarshal(payload, &raw); err != nil {
		return Claims{}, false
	}
	var c Claims
	if raw.Exp > 0 {
		c.Expiry = time.Unix(raw.Exp, 0)
	}
	if raw.Iat > 0 {
		c.IssuedAt = time.Unix(raw.Iat, 0)
	}
	return c, true
}
