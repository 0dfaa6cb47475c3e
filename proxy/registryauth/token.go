package registryauth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/connectors-node/connectors-node/grammar/match"
)

const (
	// defaultTokenLifetime applies when a token response has no expires_in
	// (distribution token spec).
	defaultTokenLifetime = 60 * time.Second
	// maxTokenResponse bounds a token response body.
	maxTokenResponse = 1 << 20
	// maxDrain bounds what is read from a response that is thrown away, so
	// its connection can be reused.
	maxDrain = 64 << 10
)

// tokenKey identifies a cached token; it hashes the credential so that a
// rotated Secret never reuses an old token.
func tokenKey(f *Flow, ch challenge, scopes []string) string {
	h := sha256.New()
	for _, s := range []string{f.Connector, f.Basic, ch.realm, ch.service} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	sorted := slices.Sorted(slices.Values(scopes))
	h.Write([]byte(strings.Join(sorted, " ")))
	return hex.EncodeToString(h.Sum(nil))
}

// tokenResponse is the body a token realm answers (distribution token
// spec; access_token is the OAuth2 spelling).
type tokenResponse struct {
	Token       string `json:"token"`
	AccessToken string `json:"access_token"`
	ExpiresIn   int64  `json:"expires_in"`
}

// CheckRealm returns the realm URL when it is absolute and matches one of
// addrs, the Connector's addresses. It is the rule that keeps the
// Connector's credential from being sent anywhere else.
func CheckRealm(connector string, addrs []match.Candidate, realm string) (*url.URL, error) {
	u, err := url.Parse(realm)
	if err != nil || !u.IsAbs() || u.Host == "" {
		return nil, &Error{Message: fmt.Sprintf("registry of connector %q names an invalid token realm", connector)}
	}
	target, err := match.ParseURL(u)
	if _, ok := match.Best(addrs, target); err != nil || !ok {
		return nil, &Error{Message: fmt.Sprintf(
			"registry token realm %s://%s is not an address of connector %q; credential not sent (add it to spec.addressExtensions)",
			u.Scheme, u.Host, connector)}
	}
	return u, nil
}

// fetchToken asks the realm for a token with the Connector's credential.
// The realm must be one of the Connector's addresses; otherwise nothing is
// sent.
func (a *Auth) fetchToken(ctx context.Context, base http.RoundTripper, f *Flow, ch challenge, scopes []string) (string, time.Time, error) {
	realm, err := CheckRealm(f.Connector, f.Addresses, ch.realm)
	if err != nil {
		return "", time.Time{}, err
	}
	q := realm.Query()
	if ch.service != "" {
		q.Set("service", ch.service)
	}
	for _, s := range scopes {
		q.Add("scope", s)
	}
	realm.RawQuery = q.Encode()
	realm.Fragment = ""
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, realm.String(), nil)
	if err != nil {
		return "", time.Time{}, &Error{Message: fmt.Sprintf("connector %q: bad token realm", f.Connector)}
	}
	req.Header.Set("Authorization", f.Basic)
	req.Header.Set("Accept", "application/json")
	start := a.opts.Now()
	resp, err := base.RoundTrip(req)
	if err != nil {
		return "", time.Time{}, &TokenServiceError{Err: err}
	}
	defer discard(resp)
	if resp.StatusCode != http.StatusOK {
		if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
			return "", time.Time{}, &Error{
				Message: fmt.Sprintf("registry token service rejected the credential of connector %q (%d)", f.Connector, resp.StatusCode),
				Err:     ErrCredentialRejected,
			}
		}
		return "", time.Time{}, &Error{Message: fmt.Sprintf("registry token service of connector %q answered %d", f.Connector, resp.StatusCode)}
	}
	var tr tokenResponse
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxTokenResponse)).Decode(&tr); err != nil {
		// The decoder's error may quote the body, which can hold a token.
		return "", time.Time{}, &Error{Message: "registry token service answered malformed JSON",
			Err: errors.New("decoding token response")}
	}
	tok := tr.Token
	if tok == "" {
		tok = tr.AccessToken
	}
	if tok == "" || strings.ContainsAny(tok, "\r\n") {
		return "", time.Time{}, &Error{Message: "registry token service answered without a usable token"}
	}
	return tok, start.Add(tokenCacheLifetime(tr.ExpiresIn)), nil
}

// tokenCacheLifetime is how long a token with the given expires_in is
// reused: its lifetime minus a tenth of it (at least 1s, at most 30s), so
// it is never sent in its last moments.
func tokenCacheLifetime(expiresIn int64) time.Duration {
	life := defaultTokenLifetime
	if expiresIn > 0 {
		life = time.Duration(min(expiresIn, int64(24*time.Hour/time.Second))) * time.Second
	}
	margin := min(max(life/10, time.Second), 30*time.Second)
	return life - margin
}

// discard drains a little of a response body and closes it.
func discard(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
	_ = resp.Body.Close()
}
