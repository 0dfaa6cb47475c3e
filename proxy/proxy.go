package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"runtime/debug"
	"strings"
	"sync"

	"github.com/go-logr/logr"

	"github.com/connectors-node/connectors-node/proxy/match"
	"github.com/connectors-node/connectors-node/proxy/policy"
	"github.com/connectors-node/connectors-node/proxy/registryauth"
)

// Proxy is the Connectors proxy handler. Serve it with NewServer, which adds
// the listener's own address to the SSRF guard and detects request
// smuggling shapes the standard library would silently repair.
type Proxy struct {
	opts       Options
	log        logr.Logger
	audit      *auditLog
	metrics    *metrics
	guard      *guard
	upstreams  *upstreams
	leaves     *leafCache
	rp         *httputil.ReverseProxy
	tunnels    *tunnels
	memos      memos
	publicHost string
	publicPort string
	// registryAuth runs the registry token flow.
	registryAuth *registryauth.Auth
}

var _ http.Handler = (*Proxy)(nil)

// isSelf reports whether a forward target is the proxy's own public address,
// also under the other names of a Service (<svc>.<ns>, <svc>.<ns>.svc,
// <svc>.<ns>.svc.<cluster-domain>). Another port on the same host is another
// service.
func (p *Proxy) isSelf(t match.Target) bool {
	if t.Port != p.publicPort {
		return false
	}
	return match.SameService(t.Host, p.publicHost, p.opts.ClusterDomain)
}

// New builds a Proxy.
func New(opts Options) (*Proxy, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	p := &Proxy{opts: opts, log: opts.Log, audit: newAuditLog(opts.AuditLog),
		metrics: newMetrics(opts.Registerer), tunnels: newTunnels()}
	p.publicHost = match.NormalizeHost(opts.PublicURL.Hostname())
	p.publicPort = opts.PublicURL.Port()
	p.guard = newGuard(&p.opts)
	var err error
	if p.upstreams, err = newUpstreams(&p.opts, p.guard); err != nil {
		return nil, err
	}
	p.registryAuth = registryauth.New(registryauth.Options{
		Timeout:    opts.ResponseHeaderTimeout,
		Challenge:  `Basic realm="` + Realm + `"`,
		Registerer: opts.Registerer,
		Now:        opts.Now,
	})
	p.leaves = newLeafCache(p.opts.SigningCA, opts.LeafCacheSize, opts.LeafValidity, opts.Now, p.metrics)
	p.rp = &httputil.ReverseProxy{
		Rewrite:        p.rewrite,
		Transport:      roundTripper{p},
		ModifyResponse: p.modifyResponse,
		ErrorHandler:   p.upstreamError,
		BufferPool:     newBufferPool(),
		ErrorLog:       p.errorLog("reverse proxy"),
	}
	return p, nil
}

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
	defer p.finish(e)
	sc := &scrubber{}
	rec := &recorder{ResponseWriter: w, e: e, scrub: sc}
	defer p.recoverPanic(rec, e)
	r = r.WithContext(withScrubber(withEntry(r.Context(), e), sc))
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

// errResponseAborted is the audit error of a response cut off mid-way: the
// upstream failed during the body (httputil.ReverseProxy then aborts the
// handler) or the client went away.
var errResponseAborted = errors.New("response aborted")

// recoverPanic ends a request whose handler panicked. http.ErrAbortHandler
// (a response cut off on purpose) is audited as "response aborted" and
// passed on, so net/http closes the connection quietly. Any other panic is
// logged with its stack, answered 500 when no header was sent yet, audited,
// and then passed on as http.ErrAbortHandler: the connection closes and the
// server keeps serving, as net/http does for a panic, without a second log.
func (p *Proxy) recoverPanic(w *recorder, e *entry) {
	v := recover()
	if v == nil {
		return
	}
	if v == http.ErrAbortHandler { //nolint:errorlint // recover returns the value panicked with, never wrapped
		if e.err == nil {
			e.err = errResponseAborted
		}
		panic(v)
	}
	// The value is not logged: it could hold request data.
	p.log.Error(fmt.Errorf("panic of type %T", v), "proxy handler panicked", "mode", e.mode, "stack", string(debug.Stack()))
	e.err = errors.New("internal error")
	if !w.wroteHeader {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Connection", "close")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = io.WriteString(w, "internal error\n")
		_ = http.NewResponseController(w.ResponseWriter).Flush()
	}
	panic(http.ErrAbortHandler)
}

// errorLog is an http.Server or ReverseProxy ErrorLog that writes to the
// node log at verbosity 2: TLS handshake failures, body copy errors and the
// like, one line each, bounded in length.
func (p *Proxy) errorLog(source string) *log.Logger {
	return log.New(errorLogWriter{log: p.log.V(2), source: source}, "", 0)
}

type errorLogWriter struct {
	log    logr.Logger
	source string
}

func (w errorLogWriter) Write(b []byte) (int, error) {
	msg := strings.TrimSpace(string(b))
	if len(msg) > 1024 {
		msg = msg[:1024] + "…"
	}
	w.log.Info("net/http", "source", w.source, "message", msg)
	return len(b), nil
}

// plan is what the rewrite step needs to send one request upstream.
type plan struct {
	mode      string
	connector string
	// target is the upstream URL: scheme, host, path and query.
	target *url.URL
	// credential is the Authorization value to inject ("" for none).
	credential string
	// dropAuthorization removes the client's Authorization (reverse mode,
	// where it carries the client's token).
	dropAuthorization bool
	// token is the client's token; an Authorization header carrying it is
	// removed (forward modes).
	token string
	// caPEM are extra roots for the upstream's certificate.
	caPEM []byte
	// location rewrites backend Location headers (reverse mode).
	location *locationRewrite
	// registry, when set, authenticates to a registry with its token flow
	// (package registryauth) instead of sending credential as it is.
	registry *registryauth.Flow
	// generation, when set, is the class generator that injects the
	// credential instead of credential (hooks.go).
	generation *generation
	// headers are set on the outbound request: a generator's header values.
	headers []policy.Value
	// secrets are the injected values besides credential (a generator's
	// values in any position).
	secrets []string
}

// injects reports whether the plan injects a credential.
func (pl *plan) injects() bool { return pl.credential != "" || pl.generation != nil }

// injectedSecrets are the credential values this request carries upstream:
// the Authorization value and a generator's values. The scrubber removes
// a response header value that echoes one of them.
func (pl *plan) injectedSecrets() []string {
	if pl.credential == "" {
		return pl.secrets
	}
	return append([]string{pl.credential}, pl.secrets...)
}

type planKey struct{}

func planFrom(ctx context.Context) *plan {
	pl, _ := ctx.Value(planKey{}).(*plan)
	return pl
}

// proxy sends r upstream as planned.
func (p *Proxy) proxy(w http.ResponseWriter, r *http.Request, pl *plan) {
	if e := entryFrom(r.Context()); e != nil {
		e.connector = pl.connector
		e.injected = pl.injects()
	}
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
	scrubberFrom(r.Context()).addSecrets(pl.injectedSecrets()...)
	p.rp.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), planKey{}, pl)))
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
	removeTokenHeaders(h, pl.token)
	if pl.credential != "" {
		h.Set("Authorization", pl.credential)
	}
	for _, v := range pl.headers {
		h.Set(v.Key, v.Value)
	}
}

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
	}
	return nil
}

// copyBufferSize is the size of the copy buffers of streamed bodies.
const copyBufferSize = 32 << 10

// bufferPool recycles the copy buffers of streamed bodies. It pools
// pointers to arrays, which a buffer converts to and from without an
// allocation (a pointer to a slice header would cost one per Put).
type bufferPool struct{ pool sync.Pool }

func newBufferPool() *bufferPool {
	return &bufferPool{pool: sync.Pool{New: func() any { return new([copyBufferSize]byte) }}}
}

func (b *bufferPool) Get() []byte { return b.pool.Get().(*[copyBufferSize]byte)[:] }

func (b *bufferPool) Put(v []byte) {
	if cap(v) >= copyBufferSize {
		b.pool.Put((*[copyBufferSize]byte)(v[:copyBufferSize]))
	}
}
