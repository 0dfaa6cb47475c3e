package proxy

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"

	"k8s.io/apimachinery/pkg/types"

	"github.com/connectors-node/connectors-node/grammar/match"
	"github.com/connectors-node/connectors-node/kube"
	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
	"github.com/connectors-node/connectors-node/proxy/policy"
)

// caller is an authenticated client and the Connectors it may use.
type caller struct {
	user       kube.User
	token      string
	keys       []types.NamespacedName
	connectors []*v1alpha1.Connector
	// cands are the addresses of connectors; Index points into connectors.
	cands []match.Candidate
}

// challenge is how a failed authentication is answered.
type challenge struct {
	status int
	header string // Proxy-Authenticate or WWW-Authenticate; "" for none
	scheme string // the challenge's scheme; "" is Basic
}

var (
	proxyChallenge   = challenge{status: http.StatusProxyAuthRequired, header: "Proxy-Authenticate"}
	reverseChallenge = challenge{status: http.StatusUnauthorized, header: "WWW-Authenticate"}
	// tunnelChallenge answers a token that expired inside an intercepted
	// tunnel, where a 407 means nothing to the client.
	tunnelChallenge = challenge{status: http.StatusForbidden}
)

func (ch challenge) fail(msg string, err error) *statusError {
	se := &statusError{status: ch.status, msg: msg, err: err}
	if ch.header != "" {
		scheme := ch.scheme
		if scheme == "" {
			scheme = "Basic"
		}
		se.header = http.Header{ch.header: {scheme + ` realm="` + Realm + `"`}}
	}
	return se
}

// credentialError maps a missing or malformed client credential.
func (ch challenge) credentialError(err error) *statusError {
	if errors.Is(err, errNoCredentials) {
		return ch.fail("credentials required", nil)
	}
	// err names only connector keys, never the token.
	return ch.fail(err.Error(), nil)
}

// admit authenticates token, authorizes every key and loads the Connectors.
func (p *Proxy) admit(ctx context.Context, token string, keys []types.NamespacedName, ch challenge) (*caller, error) {
	user, err := p.authenticate(ctx, p.opts.Auth, token, ch)
	if err != nil {
		return nil, err
	}
	e := entryFrom(ctx)
	if err := p.checkBinding(ctx, e, user, ch); err != nil {
		return nil, err
	}
	// The connection has carried a reviewed token from its own pod: it is
	// no longer held to the unauthenticated limits.
	markAuthenticated(ctx)
	c := &caller{user: user, token: token, keys: keys, connectors: make([]*v1alpha1.Connector, 0, len(keys))}
	for _, k := range keys {
		conn, err := p.authorizedConnector(ctx, p.opts.Auth, user, k)
		if err != nil {
			return nil, err
		}
		c.cands = append(c.cands, p.memos.candidates(len(c.connectors), conn)...)
		c.connectors = append(c.connectors, conn)
	}
	return c, nil
}

// authenticate reviews token with auth and records its user in the audit
// entry; a rejected token is answered with ch.
func (p *Proxy) authenticate(ctx context.Context, auth Authenticator, token string, ch challenge) (kube.User, error) {
	user, err := auth.Authenticate(ctx, token)
	switch {
	case errors.Is(err, kube.ErrUnavailable):
		return kube.User{}, apiUnavailable(err)
	case errors.Is(err, kube.ErrUnauthenticated):
		return kube.User{}, ch.fail("token rejected", nil)
	case err != nil:
		return kube.User{}, &statusError{status: http.StatusInternalServerError, msg: "token review failed", err: err}
	}
	if e := entryFrom(ctx); e != nil {
		e.user = user.Name
	}
	return user, nil
}

// authorizedConnector checks with auth that user may use the Connector k
// names and that this proxy serves it, and loads it.
func (p *Proxy) authorizedConnector(ctx context.Context, auth Authenticator, user kube.User, k types.NamespacedName) (*v1alpha1.Connector, error) {
	if err := auth.Authorize(ctx, user, k.Namespace, k.Name); err != nil {
		if errors.Is(err, kube.ErrUnavailable) {
			return nil, apiUnavailable(err)
		}
		if errors.Is(err, kube.ErrForbidden) {
			return nil, &statusError{status: http.StatusForbidden,
				msg: fmt.Sprintf("access to connector %q denied", k.String()), err: err}
		}
		return nil, &statusError{status: http.StatusInternalServerError, msg: "access review failed", err: err}
	}
	conn, err := p.opts.Objects.Connector(ctx, k.Namespace, k.Name)
	if err != nil {
		if errors.Is(err, kube.ErrNotFound) {
			return nil, &statusError{status: http.StatusNotFound, msg: fmt.Sprintf("connector %q not found", k.String())}
		}
		return nil, objectError(k.String(), "connector", err)
	}
	if err := p.checkServedHere(ctx, conn); err != nil {
		return nil, err
	}
	return conn, nil
}

// checkServedHere refuses a Connector whose class has a proxy of its own
// (spec.proxy naming another proxy than this one): its credential is that
// proxy's to inject, and its clients were given that proxy's address. A
// class that does not exist has no proxy of its own.
func (p *Proxy) checkServedHere(ctx context.Context, conn *v1alpha1.Connector) error {
	if conn.Spec.ConnectorClassName == "" {
		return nil
	}
	class, err := p.opts.Objects.ConnectorClass(ctx, conn.Spec.ConnectorClassName)
	if errors.Is(err, kube.ErrNotFound) {
		return nil
	}
	if err != nil {
		return objectError(conn.Key(), "connectorclass", err)
	}
	if own := class.OwnProxy(p.opts.PublicURL.String()); own != "" {
		return &statusError{status: http.StatusForbidden,
			msg: fmt.Sprintf("connector %q is served by the proxy of its connectorclass %q, %s, not by this proxy",
				conn.Key(), class.Name, own)}
	}
	return nil
}

// checkBinding refuses a token that is not used by its own pod, from its
// own address (Options.Binding); the answer names the binding that failed
// and the audit line records it.
func (p *Proxy) checkBinding(ctx context.Context, e *entry, user kube.User, ch challenge) error {
	if p.opts.Binding == nil {
		return nil
	}
	var source netip.Addr
	if e != nil {
		source = e.source
	}
	err := p.opts.Binding.Check(ctx, user, source)
	var be *kube.BindingError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &be):
		if e != nil {
			e.binding = be.Binding
		}
		se := ch.fail("token rejected: "+be.Error(), nil)
		se.err = be
		return se
	case errors.Is(err, kube.ErrUnavailable):
		return apiUnavailable(err)
	default:
		return &statusError{status: http.StatusInternalServerError, msg: "pod binding check failed", err: err}
	}
}

// forwardCaller authenticates a forward-proxy client (407 on failure) and
// refuses a target that is the proxy itself (403).
func (p *Proxy) forwardCaller(r *http.Request, t match.Target) (*caller, error) {
	keys, token, err := forwardCredentials(r)
	if err != nil {
		return nil, proxyChallenge.credentialError(err)
	}
	c, err := p.admit(r.Context(), token, keys, proxyChallenge)
	if err != nil {
		return nil, err
	}
	if p.isSelf(t) {
		return nil, &statusError{status: http.StatusForbidden, msg: "the proxy does not proxy to itself"}
	}
	return c, nil
}

// reverseClientToken finds the client's token of a reverse request: with
// the class's authExtractor when it has one and it yields a token, else in
// Authorization. A broken extractor answers 401 naming the class and rule.
func (p *Proxy) reverseClientToken(r *http.Request, key types.NamespacedName) (string, error) {
	x, err := p.extractor(r.Context(), key)
	if err != nil {
		return "", err
	}
	if x != nil {
		req := &policy.Request{Method: r.Method, Path: r.URL.Path, Host: r.Host, Header: r.Header, Query: r.URL.Query()}
		if x.ReadsBody() {
			if req.Body, err = bufferBody(r, p.opts.PolicyBodyLimit, "the class's authExtractor reads the request body"); err != nil {
				return "", err
			}
		}
		tok, err := x.Extract(r.Context(), req)
		if err != nil {
			return "", reverseChallenge.fail(err.Error(), nil)
		}
		if tok != "" {
			if x.ReadsBody() {
				if err := removeFromBody(r, tok); err != nil {
					return "", err
				}
			}
			return tok, nil
		}
	}
	tok, err := reverseToken(r)
	if err != nil {
		return "", reverseChallenge.credentialError(err)
	}
	return tok, nil
}
