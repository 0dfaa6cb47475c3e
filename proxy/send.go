package proxy

import (
	"fmt"
	"net/http"
	"net/http/httputil"
	"strings"
)

// The send stage: the client's token leaves the request, a class generator
// places the credential, and httputil.ReverseProxy sends the request with
// rewrite (outbound headers), roundTripper (the plan's transport, the
// registry token flow, the upstream timing) and modifyResponse.

// send sends r upstream as planned.
func (p *Proxy) send(w http.ResponseWriter, r *http.Request, pl *plan) {
	f := inflightFrom(r.Context())
	f.entry.connector = pl.connector
	f.entry.injected = pl.injects()
	// The client's token leaves the request in whatever parameter it came.
	removeTokenQuery(pl.target, pl.token)
	if pl.generation != nil {
		out, err := p.generate(r, pl)
		if err != nil {
			p.fail(w, r, err)
			return
		}
		r = out
	}
	// Every value injected is removed from the response headers that echo
	// it (scrub.go), whoever writes them.
	f.scrub.addSecrets(pl.injectedSecrets()...)
	f.plan = pl
	if r.ContentLength != 0 && r.ProtoMajor == 1 {
		// The transport may still be reading the client's body when the
		// upstream's answer arrives: an upstream that answers before it
		// read the whole body, or the transport's last read for EOF after
		// the last byte went out. Without full duplex, net/http's server
		// consumes and closes the body as the response's head is written:
		// the head waits for the rest of the body, or that last read fails
		// and the transport drops the upstream connection mid-response.
		if err := http.NewResponseController(w).EnableFullDuplex(); err != nil {
			p.log.V(1).Info("request body stays half duplex", "error", err.Error())
		}
	}
	p.rp.ServeHTTP(w, r)
}

// rewrite builds the outbound request. httputil.ReverseProxy has already
// removed hop-by-hop headers (and those named in Connection) and the
// X-Forwarded-For/Host/Proto and Forwarded headers, so the credential set
// here cannot be stripped by the client.
func (p *Proxy) rewrite(pr *httputil.ProxyRequest) {
	pl := planFrom(pr.In.Context())
	u := *pl.target
	pr.Out.URL = &u
	pr.Out.Host = ""
	h := pr.Out.Header
	h.Del("Proxy-Authorization")
	h.Del("X-Real-Ip")
	for k := range h {
		if strings.HasPrefix(k, "X-Forwarded-") {
			delete(h, k)
		}
	}
	if pl.dropAuthorization {
		h.Del("Authorization")
	}
	for _, k := range pl.dropHeaders {
		h.Del(k)
	}
	removeTokenHeaders(h, pl.token)
	if pl.credential != "" {
		h.Set("Authorization", pl.credential)
	}
	for _, v := range pl.headers {
		h.Set(v.Key, v.Value)
	}
}

// roundTripper sends a planned request with the transport its plan needs
// and measures the time to response headers.
type roundTripper struct{ p *Proxy }

func (rt roundTripper) RoundTrip(r *http.Request) (*http.Response, error) {
	pl := planFrom(r.Context())
	if pl == nil {
		return nil, fmt.Errorf("request without a plan")
	}
	ts, err := rt.p.upstreams.transport(pl.caPEM)
	if err != nil {
		return nil, &statusError{status: http.StatusInternalServerError,
			msg: fmt.Sprintf("connector %q: bad CA secret", pl.connector), err: err}
	}
	t := ts.pick(pl.mode)
	var base http.RoundTripper = t
	if r.Header.Get("Upgrade") != "" {
		// The rules let only websocket and SPDY/3.1 this far.
		base = http1Only(t)
	} else if fast := rt.p.upstreams.fast; fast != nil {
		// Bodiless requests to plain http:// upstreams take the lean
		// client; it hands every other request to t.
		base = fast.With(t)
	}
	if pl.credential != "" {
		// Every Authorization sent upstream for an injecting plan (the
		// credential, or a registry token fetched with it) is looked for
		// in the response headers.
		base = recordingTransport{base: base, scrub: scrubberFrom(r.Context())}
	}
	start := rt.p.opts.Now()
	resp, err := rt.p.roundTrip(base, r, pl)
	rt.p.metrics.upstreamSeries(pl.mode).Observe(rt.p.opts.Now().Sub(start).Seconds())
	return resp, err
}

// roundTrip sends a planned request upstream, through the registry token flow
// when the plan has one.
func (p *Proxy) roundTrip(t http.RoundTripper, r *http.Request, pl *plan) (*http.Response, error) {
	if pl.registry == nil {
		return t.RoundTrip(r)
	}
	resp, err := p.registryAuth.Transport(t, pl.registry).RoundTrip(r)
	if err != nil {
		return nil, registryError(err)
	}
	return resp, nil
}

// modifyResponse fixes up the upstream's answer before it goes back: a
// 101 only to the protocol asked for, Location and Link pointed back at the
// proxy, and no session cookie for an injected credential.
func (p *Proxy) modifyResponse(resp *http.Response) error {
	if resp.StatusCode == http.StatusSwitchingProtocols {
		// The request's protocol was checked; httputil.ReverseProxy makes
		// the answer name the same one. This holds it even so.
		if proto, refused := refusedUpgrade(resp.Header); refused {
			return &statusError{status: http.StatusBadGateway,
				msg: fmt.Sprintf("upstream switched to %q, which is not proxied", printable(proto))}
		}
		// httputil.ReverseProxy writes the 101 on the hijacked connection,
		// past the recorder: the audit line takes it from here.
		if e := entryFrom(resp.Request.Context()); e != nil {
			e.status = http.StatusSwitchingProtocols
		}
	}
	pl := planFrom(resp.Request.Context())
	if pl != nil && pl.location != nil {
		pl.location.apply(resp)
	}
	if pl != nil && pl.injects() {
		// A session the upstream opens for the injected credential would be
		// a credential of its own in the workload's hands, usable without
		// the proxy and beyond the pod token's life.
		resp.Header.Del("Set-Cookie")
		p.refused(pl, resp.StatusCode)
	}
	return nil
}
