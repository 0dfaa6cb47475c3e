package proxy

import (
	"context"
	"net/http"
	"net/netip"

	"github.com/connectors-node/connectors-node/grammar/match"
	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
)

// The request pipeline, stage by stage (the package documentation maps each
// stage to its file): ServeHTTP picks the mode; serve opens the audit
// entry and the scrubber, checks framing and rules, and on the way out
// scrubs the trailers and writes the audit line; exchange runs the mode's
// resolver (route, identify, admit), then plan and send, which every mode
// shares. CONNECT resolves a tunnel instead (connect.go) and runs each
// request inside it through serve and exchange again (mitm.go).

// ServeHTTP dispatches CONNECT and absolute-form requests to the forward
// proxy and origin-form requests to the reverse proxy.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	mode := modeReverse
	switch {
	case r.Method == http.MethodConnect:
		mode = modeConnect
	case r.URL.IsAbs() || r.URL.Host != "":
		mode = modeForward
	}
	p.serve(w, r, mode, func(w http.ResponseWriter, r *http.Request) {
		switch mode {
		case modeConnect:
			p.serveConnect(w, r)
		case modeForward:
			p.serveForward(w, r)
		default:
			p.serveReverse(w, r)
		}
	})
}

// serve wraps one request: audit entry, status recorder, body counter, the
// framing check and the method and upgrade rules (rules.go), then h. Every
// request passes here, in every mode and inside intercepted tunnels.
func (p *Proxy) serve(w http.ResponseWriter, r *http.Request, mode string, h http.HandlerFunc) {
	e := &entry{start: p.opts.Now(), mode: mode, method: r.Method, host: r.Host, path: r.URL.Path}
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		e.source = ap.Addr().Unmap()
	}
	if mode == modeConnect {
		e.path = ""
	}
	sc := &scrubber{}
	f := &inflight{entry: e, scrub: sc}
	defer func() {
		if !f.handedOff {
			p.finish(e)
		}
	}()
	rec := &recorder{ResponseWriter: w, e: e, scrub: sc}
	defer p.recoverPanic(rec, e)
	r = r.WithContext(context.WithValue(r.Context(), inflightKey{}, f))
	if hc := headConnFrom(r.Context()); hc != nil {
		mixed := hc.take(r)
		defer hc.resume()
		if mixed {
			p.fail(rec, r, statusErrorf(http.StatusBadRequest, "request has both Content-Length and Transfer-Encoding"))
			return
		}
	}
	if err := checkRules(r); err != nil {
		p.fail(rec, r, err)
		return
	}
	if r.Body != nil && r.Body != http.NoBody {
		e.body = &countingBody{ReadCloser: r.Body}
		r.Body = e.body
	}
	h(rec, r)
	// Trailers are in the header map until the handler returns.
	sc.header(rec.Header())
}

// A resolver is a mode's route, identify and admit stages: it names the
// Connector the request goes to and the plan so far, or the error that
// answers the request.
type resolver func(r *http.Request) (*routed, error)

// routed is a request its mode has resolved.
type routed struct {
	// plan holds the target, the client's token and what the mode drops.
	plan *plan
	// conn is the Connector whose address the target falls under; nil when
	// none does (an unmatched tunnel, when allowed) or when the resolver
	// planned the request whole (the Connectors API's class API service).
	conn *v1alpha1.Connector
	// addr is the address of conn the target matched.
	addr match.Address
	// injects is false when the target is only on conn's host, outside its
	// addresses: conn's CA verifies the host, and nothing is injected.
	injects bool
}

// exchange runs one request through the stages after serve: the mode's
// resolver, the plan and the send. Every error answers the request.
func (p *Proxy) exchange(w http.ResponseWriter, r *http.Request, resolve resolver) {
	rt, err := resolve(r)
	if err == nil {
		err = p.planConnector(r.Context(), rt, r.Method)
	}
	if err != nil {
		p.fail(w, r, err)
		return
	}
	p.send(w, r, rt.plan)
}

// inflight is what the stages of one request share through its context,
// the only way into httputil.ReverseProxy's hooks: the audit entry and the
// scrubber, which serve sets, and the plan, which send sets.
type inflight struct {
	entry *entry
	scrub *scrubber
	plan  *plan
	// handedOff is set by a handler that returns while a goroutine of its
	// own still serves the hijacked connection (an intercepted tunnel);
	// that goroutine finishes the entry when the connection closes.
	handedOff bool
}

type inflightKey struct{}

func inflightFrom(ctx context.Context) *inflight {
	f, _ := ctx.Value(inflightKey{}).(*inflight)
	return f
}

// entryFrom returns the request's audit entry, or nil outside serve.
func entryFrom(ctx context.Context) *entry {
	if f := inflightFrom(ctx); f != nil {
		return f.entry
	}
	return nil
}

// scrubberFrom returns the request's scrubber, or nil outside serve.
func scrubberFrom(ctx context.Context) *scrubber {
	if f := inflightFrom(ctx); f != nil {
		return f.scrub
	}
	return nil
}

// planFrom returns the request's plan, or nil before send.
func planFrom(ctx context.Context) *plan {
	if f := inflightFrom(ctx); f != nil {
		return f.plan
	}
	return nil
}
