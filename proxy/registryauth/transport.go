package registryauth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"

	"github.com/connectors-node/connectors-node/grammar/match"
)

const (
	// cacheSize bounds the cached challenges and the cached tokens.
	cacheSize = 4096
	// challengeTTL is how long a registry's ping answer is reused.
	challengeTTL = 5 * time.Minute
	// defaultTimeout bounds a ping or a token fetch when Options.Timeout is
	// not set.
	defaultTimeout = 2 * time.Minute
)

// Options configure New. Zero values take the documented defaults.
type Options struct {
	// Timeout bounds the ping and each token fetch; neither is cut short
	// when the request that started it is canceled, since others may share
	// it. Default 2m.
	Timeout time.Duration
	// Challenge replaces the registry's WWW-Authenticate on a 401 that
	// reaches the client, so the client never learns the registry's realm.
	// Default: the registry's header is removed.
	Challenge string
	// Registerer registers the token fetch counter. Default: not registered.
	Registerer prometheus.Registerer
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Auth holds what all registry requests share: cached challenges and
// tokens, the fetches in flight and the fetch counter. Tokens are cached
// per Connector, credential, realm, service and scope until shortly before
// they expire. Use New; the zero value is not usable.
type Auth struct {
	opts Options

	challenges *expiringCache[challenge]
	tokens     *expiringCache[string]
	group      singleflight.Group
	fetches    *prometheus.CounterVec
}

// New builds an Auth.
func New(opts Options) *Auth {
	if opts.Timeout <= 0 {
		opts.Timeout = defaultTimeout
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	a := &Auth{
		opts:       opts,
		challenges: newExpiringCache[challenge](cacheSize),
		tokens:     newExpiringCache[string](cacheSize),
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

// Flow is the token flow of requests to one registry for one Connector.
type Flow struct {
	// Connector is the Connector's ns/name; it keys the caches and names
	// the Connector in errors and metrics.
	Connector string
	// Addresses are the Connector's addresses; the token realm must match
	// one of them, or the credential is not sent.
	Addresses []match.Candidate
	// Basic is the Authorization: Basic value of the Connector's username
	// and password, sent to the token realm. A registry that does not ask
	// for a token gets the request as the caller built it.
	Basic string
	// Ping is the registry's /v2/ URL.
	Ping string
	// Scopes are the token scopes the request needs (see Scopes).
	Scopes []string
}

// Transport returns a RoundTripper that sends requests through base,
// authenticated to the registry of f as its challenge asks. base carries
// every request of the flow: the ping, the token fetch and the request.
func (a *Auth) Transport(base http.RoundTripper, f *Flow) http.RoundTripper {
	return &transport{auth: a, base: base, flow: f}
}

type transport struct {
	auth *Auth
	base http.RoundTripper
	flow *Flow
}

var _ http.RoundTripper = (*transport)(nil)

// RoundTrip authenticates r with a token for the flow's scopes (fetched
// before the body is sent), or leaves it as it is when the registry does
// not ask for a Bearer token. A body-less request that still gets a Bearer
// challenge is retried once with a fresh token for the scopes the registry
// named; a request with a body is never replayed. A 401 that reaches the
// caller carries Options.Challenge, never the registry's challenge.
func (t *transport) RoundTrip(r *http.Request) (*http.Response, error) {
	a, f := t.auth, t.flow
	ctx := r.Context()
	ch, err := a.challenge(ctx, t.base, f)
	if err != nil {
		return nil, err
	}
	if ch.bearer {
		tok, err := a.token(ctx, t.base, f, ch, f.Scopes, false)
		if err != nil {
			return nil, err
		}
		r.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := t.base.RoundTrip(r)
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		return resp, err
	}
	if nc, ok := bearerChallenge(resp.Header.Values("Www-Authenticate")); ok {
		a.challenges.put(challengeKey(f), challenge{bearer: true, realm: nc.realm, service: nc.service},
			a.opts.Now().Add(challengeTTL))
		if r.Body == nil || r.Body == http.NoBody {
			scopes := f.Scopes
			for _, s := range strings.Fields(nc.scope) {
				if !slices.Contains(scopes, s) {
					scopes = append(slices.Clip(scopes), s)
				}
			}
			discard(resp)
			tok, err := a.token(ctx, t.base, f, nc, scopes, true)
			if err != nil {
				return nil, err
			}
			retry := r.Clone(ctx)
			retry.Header.Set("Authorization", "Bearer "+tok)
			if resp, err = t.base.RoundTrip(retry); err != nil || resp.StatusCode != http.StatusUnauthorized {
				return resp, err
			}
		}
	}
	if a.opts.Challenge != "" {
		resp.Header.Set("Www-Authenticate", a.opts.Challenge)
	} else {
		resp.Header.Del("Www-Authenticate")
	}
	return resp, nil
}

func challengeKey(f *Flow) string { return f.Connector + " " + f.Ping }

// challenge returns how the registry wants to be authenticated, from its
// anonymous ping (cached; concurrent misses share one ping). A registry
// that answers anything but a Bearer challenge is not sent a token.
func (a *Auth) challenge(ctx context.Context, base http.RoundTripper, f *Flow) (challenge, error) {
	key := challengeKey(f)
	if ch, ok := a.challenges.get(key, a.opts.Now()); ok {
		return ch, nil
	}
	v, err, _ := a.group.Do("ping "+key, func() (any, error) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.opts.Timeout)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.Ping, nil)
		if err != nil {
			return nil, &Error{Message: fmt.Sprintf("connector %q: bad registry address", f.Connector)}
		}
		resp, err := base.RoundTrip(req)
		if err != nil {
			return nil, err
		}
		defer discard(resp)
		var ch challenge
		if resp.StatusCode == http.StatusUnauthorized {
			if bc, ok := bearerChallenge(resp.Header.Values("Www-Authenticate")); ok {
				ch = challenge{bearer: true, realm: bc.realm, service: bc.service}
			}
		}
		a.challenges.put(key, ch, a.opts.Now().Add(challengeTTL))
		return ch, nil
	})
	if err != nil {
		return challenge{}, err
	}
	ch, ok := v.(challenge)
	if !ok {
		return challenge{}, errors.New("registry ping: unexpected result")
	}
	return ch, nil
}

// token returns a token for scopes: from the cache unless fresh, else from
// the realm (concurrent misses share one fetch).
func (a *Auth) token(ctx context.Context, base http.RoundTripper, f *Flow, ch challenge, scopes []string, fresh bool) (string, error) {
	key := tokenKey(f, ch, scopes)
	if !fresh {
		if tok, ok := a.tokens.get(key, a.opts.Now()); ok {
			return tok, nil
		}
	}
	v, err, _ := a.group.Do("token "+key, func() (any, error) {
		if !fresh {
			if tok, ok := a.tokens.get(key, a.opts.Now()); ok {
				return tok, nil
			}
		}
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.opts.Timeout)
		defer cancel()
		tok, expires, err := a.fetchToken(ctx, base, f, ch, scopes)
		result := "ok"
		if err != nil {
			result = "error"
		}
		a.fetches.WithLabelValues(f.Connector, result).Inc()
		if err != nil {
			return nil, err
		}
		if expires.After(a.opts.Now()) {
			a.tokens.put(key, tok, expires)
		}
		return tok, nil
	})
	if err != nil {
		return "", err
	}
	tok, ok := v.(string)
	if !ok {
		return "", errors.New("registry token: unexpected result")
	}
	return tok, nil
}
