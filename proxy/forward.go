package proxy

import (
	"errors"
	"net/http"
	"net/url"

	"github.com/connectors-node/connectors-node/grammar/match"
)

// serveForward handles an absolute-form request (GET http://host/path).
func (p *Proxy) serveForward(w http.ResponseWriter, r *http.Request) {
	p.exchange(w, r, p.resolveForward)
}

// resolveForward routes an absolute-form request by its URL and admits
// the caller of its Proxy-Authorization. The decision and the outbound
// Host follow the URL authority; the standard library has already replaced
// a disagreeing Host header by it.
func (p *Proxy) resolveForward(r *http.Request) (*routed, error) {
	t, err := match.ParseURL(r.URL)
	if err != nil {
		msg := "bad request target"
		if errors.Is(err, match.ErrUserinfo) {
			msg = "userinfo in the request target is not allowed"
		}
		return nil, statusErrorf(http.StatusBadRequest, "%s", msg)
	}
	c, err := p.forwardCaller(r, t)
	if err != nil {
		return nil, err
	}
	target := &url.URL{Scheme: t.Scheme, Host: r.URL.Host, Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: r.URL.RawQuery}
	return p.forwardRoute(c, t, target, modeForward)
}

// forwardRoute picks the Connector of a forward target: the most specific
// matching address injects its Connector's credential; a host that only a
// Connector's authority matches (another path) goes without, verified by
// that Connector's CA; any other host is refused unless unmatched tunnels
// are allowed.
func (p *Proxy) forwardRoute(c *caller, t match.Target, target *url.URL, mode string) (*routed, error) {
	pl := &plan{mode: mode, target: target, token: c.token}
	if cand, ok := match.Best(c.cands, t); ok {
		return &routed{plan: pl, conn: c.connectors[cand.Index], addr: cand.Address, injects: true}, nil
	}
	if cand, ok := match.AnyAuthority(c.cands, t); ok {
		return &routed{plan: pl, conn: c.connectors[cand.Index]}, nil
	}
	if !p.opts.AllowUnmatchedTunnels {
		return nil, noConnector(t)
	}
	return &routed{plan: pl}, nil
}

func noConnector(t match.Target) *statusError {
	return statusErrorf(http.StatusForbidden,
		"no listed connector serves %s://%s:%s; add the host to no_proxy to reach it directly",
		t.Scheme, t.Host, t.Port)
}
