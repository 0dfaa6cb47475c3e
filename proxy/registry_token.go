package proxy

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

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"

	"github.com/connectors-node/connectors-node/proxy/match"
)

const (
	// registryCacheSize bounds the cached challenges and the cached tokens.
	registryCacheSize = 4096
	// registryChallengeTTL is how long a registry's ping answer is reused.
	registryChallengeTTL = 5 * time.Minute
	// defaultTokenLifetime applies when a token response has no expires_in
	// (distribution token spec).
	defaultTokenLifetime = 60 * time.Second
	// maxTokenResponse bounds a token response body.
	maxTokenResponse = 1 << 20
	// maxDrain bounds what is read from a response that is thrown away, so
	// its connection can be reused.
	maxDrain = 64 << 10
)

// registryFlow is the registry token flow of one planned request.
type registryFlow struct {
	// connector is the Connector's ns/name.
	connector string
	// cands are the Connector's addresses; the token realm must match one.
	cands []match.Candidate
	// basic is the Authorization: Basic value of the Connector's username
	// and password, sent to the token realm (and to Basic registries).
	basic string
	// ping is the registry's /v2/ URL.
	ping string
	// scopes are the token scopes the request needs.
	scopes []string
}

// registryAuth discovers registry challenges and fetches, caches and
// shares registry tokens. Tokens are cached per Connector, credential,
// realm, service and scope until shortly before they expire.
type registryAuth struct {
	now     func() time.Time
	timeout time.Duration

	challenges *expiringCache[registryChallenge]
	tokens     *expiringCache[string]
	group      singleflight.Group
	fetches    *prometheus.CounterVec
}

func newRegistryAuth(opts *Options) *registryAuth {
	a := &registryAuth{
		now:        opts.Now,
		timeout:    opts.ResponseHeaderTimeout,
		challenges: newExpiringCache[registryChallenge](registryCacheSize),
		tokens:     newExpiringCache[string](registryCacheSize),
		fetches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "connectors_proxy_registry_token_fetches_total",
			Help: "Registry token requests to token realms, by connector (ns/name) and result (ok or error).",
		}, []string{"connector", "result"}),
	}
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(a.fetches)
	}
	return a
}

// send sends a planned request upstream, through the registry token flow
// when the plan has one.
func (p *Proxy) send(t http.RoundTripper, r *http.Request, pl *plan) (*http.Response, error) {
	if pl.registry == nil {
		return t.RoundTrip(r)
	}
	return p.registryAuth.roundTrip(t, r, pl.registry)
}

// roundTrip authenticates r to the registry as its challenge asks: with a
// token for the request's scopes (fetched before the body is sent), or
// with the Basic credential the rewrite step already set. A body-less
// request that still gets a Bearer challenge is retried once with a fresh
// token for the scopes the registry named. A 401 reaching the client
// carries the proxy's own challenge, never the registry's.
func (a *registryAuth) roundTrip(t http.RoundTripper, r *http.Request, f *registryFlow) (*http.Response, error) {
	ctx := r.Context()
	ch, err := a.challenge(ctx, t, f)
	if err != nil {
		return nil, err
	}
	if ch.bearer {
		tok, err := a.token(ctx, t, f, ch, f.scopes, false)
		if err != nil {
			return nil, err
		}
		r.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := t.RoundTrip(r)
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		return resp, err
	}
	if nc, ok := bearerChallenge(resp.Header.Values("Www-Authenticate")); ok {
		a.challenges.put(challengeKey(f), registryChallenge{bearer: true, realm: nc.realm, service: nc.service},
			a.now().Add(registryChallengeTTL))
		if r.Body == nil || r.Body == http.NoBody {
			scopes := f.scopes
			for _, s := range strings.Fields(nc.scope) {
				if !slices.Contains(scopes, s) {
					scopes = append(slices.Clip(scopes), s)
				}
			}
			discard(resp)
			tok, err := a.token(ctx, t, f, nc, scopes, true)
			if err != nil {
				return nil, err
			}
			retry := r.Clone(ctx)
			retry.Header.Set("Authorization", "Bearer "+tok)
			if resp, err = t.RoundTrip(retry); err != nil || resp.StatusCode != http.StatusUnauthorized {
				return resp, err
			}
		}
	}
	resp.Header.Set("Www-Authenticate", `Basic realm="`+Realm+`"`)
	return resp, nil
}

func challengeKey(f *registryFlow) string { return f.connector + " " + f.ping }

// challenge returns how the registry wants to be authenticated, from its
// anonymous ping (cached; concurrent misses share one ping). A registry
// that answers anything but a Bearer challenge gets the Basic credential.
func (a *registryAuth) challenge(ctx context.Context, t http.RoundTripper, f *registryFlow) (registryChallenge, error) {
	key := challengeKey(f)
	if ch, ok := a.challenges.get(key, a.now()); ok {
		return ch, nil
	}
	v, err, _ := a.group.Do("ping "+key, func() (any, error) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.timeout)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.ping, nil)
		if err != nil {
			return nil, statusErrorf(http.StatusBadGateway, "connector %q: bad registry address", f.connector)
		}
		resp, err := t.RoundTrip(req)
		if err != nil {
			return nil, err
		}
		defer discard(resp)
		var ch registryChallenge
		if resp.StatusCode == http.StatusUnauthorized {
			if bc, ok := bearerChallenge(resp.Header.Values("Www-Authenticate")); ok {
				ch = registryChallenge{bearer: true, realm: bc.realm, service: bc.service}
			}
		}
		a.challenges.put(key, ch, a.now().Add(registryChallengeTTL))
		return ch, nil
	})
	if err != nil {
		return registryChallenge{}, err
	}
	return v.(registryChallenge), nil
}

// token returns a token for scopes: from the cache unless fresh, else from
// the realm (concurrent misses share one fetch).
func (a *registryAuth) token(ctx context.Context, t http.RoundTripper, f *registryFlow, ch registryChallenge, scopes []string, fresh bool) (string, error) {
	key := tokenKey(f, ch, scopes)
	if !fresh {
		if tok, ok := a.tokens.get(key, a.now()); ok {
			return tok, nil
		}
	}
	v, err, _ := a.group.Do("token "+key, func() (any, error) {
		if !fresh {
			if tok, ok := a.tokens.get(key, a.now()); ok {
				return tok, nil
			}
		}
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.timeout)
		defer cancel()
		tok, expires, err := a.fetchToken(ctx, t, f, ch, scopes)
		result := "ok"
		if err != nil {
			result = "error"
		}
		a.fetches.WithLabelValues(f.connector, result).Inc()
		if err != nil {
			return nil, err
		}
		if expires.After(a.now()) {
			a.tokens.put(key, tok, expires)
		}
		return tok, nil
	})
	if err != nil {
		return "", err
	}
	return v.(string), nil
}

// tokenKey identifies a cached token; it hashes the credential so that a
// rotated Secret never reuses an old token.
func tokenKey(f *registryFlow, ch registryChallenge, scopes []string) string {
	h := sha256.New()
	for _, s := range []string{f.connector, f.basic, ch.realm, ch.service} {
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

// fetchToken asks the realm for a token with the Connector's credential.
// The realm must be one of the Connector's addresses; otherwise nothing is
// sent.
func (a *registryAuth) fetchToken(ctx context.Context, t http.RoundTripper, f *registryFlow, ch registryChallenge, scopes []string) (string, time.Time, error) {
	realm, err := url.Parse(ch.realm)
	if err != nil || !realm.IsAbs() {
		return "", time.Time{}, statusErrorf(http.StatusBadGateway,
			"registry of connector %q names an invalid token realm", f.connector)
	}
	target, err := match.ParseURL(realm)
	if _, ok := match.Best(f.cands, target); err != nil || !ok {
		return "", time.Time{}, statusErrorf(http.StatusBadGateway,
			"registry token realm %s://%s is not an address of connector %q; credential not sent (add it to spec.addressExtensions)",
			realm.Scheme, realm.Host, f.connector)
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
		return "", time.Time{}, statusErrorf(http.StatusBadGateway, "connector %q: bad token realm", f.connector)
	}
	req.Header.Set("Authorization", f.basic)
	req.Header.Set("Accept", "application/json")
	start := a.now()
	resp, err := t.RoundTrip(req)
	if err != nil {
		se := classifyUpstream(err)
		se.msg = "registry token service: " + se.msg
		return "", time.Time{}, se
	}
	defer discard(resp)
	if resp.StatusCode != http.StatusOK {
		msg := fmt.Sprintf("registry token service of connector %q answered %d", f.connector, resp.StatusCode)
		if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
			msg = fmt.Sprintf("registry token service rejected the credential of connector %q (%d)", f.connector, resp.StatusCode)
		}
		return "", time.Time{}, &statusError{status: http.StatusBadGateway, msg: msg}
	}
	var tr tokenResponse
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxTokenResponse)).Decode(&tr); err != nil {
		return "", time.Time{}, &statusError{status: http.StatusBadGateway,
			msg: "registry token service answered malformed JSON", err: errors.New("decoding token response")}
	}
	tok := tr.Token
	if tok == "" {
		tok = tr.AccessToken
	}
	if tok == "" || strings.ContainsAny(tok, "\r\n") {
		return "", time.Time{}, statusErrorf(http.StatusBadGateway, "registry token service answered without a usable token")
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
