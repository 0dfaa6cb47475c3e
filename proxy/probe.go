package proxy

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/connectors-node/connectors-node/grammar/match"
	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
)

// ErrNotConnectorAddress is returned by SendAs for a URL outside every
// address of the Connector: the request is not sent.
var ErrNotConnectorAddress = errors.New("not one of the connector's addresses")

// modeProbe labels requests SendAs makes.
const modeProbe = "probe"

// SendAs sends r upstream as the forward proxy would for Connector c, for
// checks made on the Connector's behalf (the status reconciler's probes).
// r must have an absolute http(s) URL that falls under c's spec.address or
// one of its address extensions (the same matching as injection); any other
// URL, and the proxy's own address, is refused with an error wrapping
// ErrNotConnectorAddress before anything is sent. The request gets c's
// credential as the proxy injects it (the class's Rego generator when its
// auth type has one, the registry token flow), is verified with c's CA and
// the proxy's roots, and dials through the SSRF guard. Client Authorization
// headers are dropped; redirects are returned, never followed. Errors never
// carry the credential.
func (p *Proxy) SendAs(ctx context.Context, c *v1alpha1.Connector, r *http.Request) (*http.Response, error) {
	t, err := match.ParseURL(r.URL)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotConnectorAddress, err)
	}
	cand, ok := match.Best(p.memos.candidates(0, c), t)
	if !ok || p.isSelf(t) {
		return nil, fmt.Errorf("%s://%s:%s: %w", t.Scheme, t.Host, t.Port, ErrNotConnectorAddress)
	}
	target := *r.URL
	pl := &plan{mode: modeProbe, target: &target}
	if err := p.planConnector(ctx, &routed{plan: pl, conn: c, addr: cand.Address, injects: true}, r.Method); err != nil {
		return nil, err
	}
	tr, err := p.upstreams.transport(pl.caPEM)
	if err != nil {
		return nil, err
	}
	out := r.Clone(ctx)
	out.URL = pl.target
	out.Header.Del("Authorization")
	out.Header.Del("Proxy-Authorization")
	if pl.generation != nil {
		// The class's generator places the credential, as for proxied
		// requests: a header, a query parameter or a body field.
		if out, err = p.generate(out, pl); err != nil {
			return nil, err
		}
		for _, v := range pl.headers {
			out.Header.Set(v.Key, v.Value)
		}
	}
	if pl.credential != "" {
		out.Header.Set("Authorization", pl.credential)
	}
	return p.roundTrip(tr.auto, out, pl)
}
