package proxy

import (
	"errors"
	"net/http"
	"net/url"

	"github.com/connectors-node/connectors-node/proxy/match"
)

// serveForward handles an absolute-form request (GET http://host/path).
// The decision and the outbound Host follow the URL authority; the standard
// library has already replaced a disagreeing Host header by it.
func (p *Proxy) serveForward(w http.ResponseWriter, r *http.Request) {
	t, err := match.ParseURL(r.URL)
	if err != nil {
		msg := "bad request target"
		if errors.Is(err, match.ErrUserinfo) {
			msg = "userinfo in the request target is not allowed"
		}
		p.fail(w, r, statusErrorf(http.StatusBadRequest, "%s", msg))
		return
	}
	c, err := p.forwardCaller(r, t)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	target := &url.URL{Scheme: t.Scheme, Host: r.URL.Host, Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: r.URL.RawQuery}
	pl, err := p.forwardPlan(r, c, t, target, modeForward)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	p.proxy(w, r, pl)
}

// forwardPlan decides injection for a forward target: the most specific
// matching address injects its Connector's credential; a host that only a
// Connector's authority matches (another path) goes without; any other host
// is refused unless unmatched tunnels are allowed.
func (p *Proxy) forwardPlan(r *http.Request, c *caller, t match.Target, target *url.URL, mode string) (*plan, error) {
	pl := &plan{mode: mode, target: target, token: c.token}
	cand, ok := match.Best(c.cands, t)
	if !ok {
		cand, ok = match.AnyAuthority(c.cands, t)
		if !ok {
			if !p.opts.AllowUnmatchedTunnels {
				return nil, noConnector(t)
			}
			return pl, nil
		}
		// Same host, outside every prefix: no credential, but the
		// Connector's CA still verifies the host.
		conn := c.connectors[cand.Index]
		pl.connector = conn.Key()
		var err error
		pl.caPEM, err = p.connectorCA(r.Context(), conn)
		return pl, err
	}
	conn := c.connectors[cand.Index]
	pl.connector = conn.Key()
	var err error
	if err = p.planCredential(r.Context(), pl, conn); err != nil {
		return nil, err
	}
	if pl.caPEM, err = p.connectorCA(r.Context(), conn); err != nil {
		return nil, err
	}
	p.registryPlan(pl, conn, cand.Address, r.Method, target.EscapedPath(), target.RawQuery)
	return pl, nil
}

func noConnector(t match.Target) *statusError {
	return statusErrorf(http.StatusForbidden,
		"no listed connector serves %s://%s:%s; add the host to no_proxy to reach it directly",
		t.Scheme, t.Host, t.Port)
}
