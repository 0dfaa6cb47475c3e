package proxy

import (
	"context"
	"net/http"
	"net/http/httputil"
	"net/url"
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
	return t.Host == p.publicHost || serviceBase(t.Host, p.opts.ClusterDomain) == serviceBase(p.publicHost, p.opts.ClusterDomain)
}

// serviceBase strips the .svc and .svc.<domain> suffixes of a Service name;
// a host without them has no base.
func serviceBase(host, domain string) string {
	for _, suffix := range []string{".svc." + domain, ".svc"} {
		if base, ok := strings.CutSuffix(host, suffix); ok {
			return base
		}
	}
	if strings.Count(host, ".") == 1 {
		return host // <svc>.<ns>, found through the search path
	}
	return "\x00" + host
}

// New builds a Proxy.
func New(opts Options) (*Proxy, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	p := &Proxy{opts: opts, log: opts.Log, audit: newAuditLog(opts.AuditLog),
		metrics: newMetrics(opts.Registerer), tunnels: newTunnels()}
	pub, _ := url.Parse(opts.PublicURL)
	p.publicHost = match.NormalizeHost(pub.Hostname())
	p.publicPort = pub.Port()
	if p.publicPort == "" {
		p.publicPort = match.DefaultPort(pub.Scheme)
	}
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
	p.leaves = newLeafCache(opts.CA, opts.LeafCacheSize, opts.LeafValidity, opts.Now, p.metrics)
	p.rp = &httputil.ReverseProxy{
		Rewrite:        p.rewrite,
		Transport:      roundTripper{p},
		ModifyResponse: p.modifyResponse,
		ErrorHandler:   p.upstreamError,
		BufferPool:     newBufferPool(),
		ErrorLog:       discardLogger(),
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

// serve wraps one request: audit entry, status recorder, body counter and
// the framing check, then h.
func (p *Proxy) serve(w http.ResponseWriter, r *http.Request, mode string, h http.HandlerFunc) {
	e := &entry{start: p.opts.Now(), mode: mode, method: r.Method, host: r.Host, path: r.URL.Path}
	if mode == modeConnect {
		e.path = ""
	}
	defer p.finish(e)
	rec := &recorder{ResponseWriter: w, e: e}
	r = r.WithContext(withEntry(r.Context(), e))
	if hc := headConnFrom(r.Context()); hc != nil {
		mixed := hc.take(r)
		defer hc.resume()
		if mixed {
			p.fail(rec, r, statusErrorf(http.StatusBadRequest, "request has both Content-Length and Transfer-Encoding"))
			return
		}
	}
	if r.Body != nil && r.Body != http.NoBody {
		e.body = &countingBody{ReadCloser: r.Body}
		r.Body = e.body
	}
	h(rec, r)
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
// the Authorization value and a generator's values. A response header that
// echoes one of them is removed.
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

// carriesToken reports whether an Authorization value holds token, as
// Bearer or as a Basic password.
func carriesToken(values []string, token string) bool {
	for _, v := range values {
		scheme, rest, _ := strings.Cut(v, " ")
		if strings.EqualFold(scheme, "Bearer") && strings.TrimSpace(rest) == token {
			return true
		}
		if _, pass, ok := parseBasic(v); ok && pass == token {
			return true
		}
	}
	return false
}

func (p *Proxy) modifyResponse(resp *http.Response) error {
	pl := planFrom(resp.Request.Context())
	if pl != nil && pl.location != nil {
		pl.location.apply(resp)
	}
	if pl != nil {
		scrubEchoes(resp.Header, pl.injectedSecrets())
	}
	if pl != nil && pl.injects() {
		// A session the upstream opens for the injected credential would be
		// a credential of its own in the workload's hands, usable without
		// the proxy and beyond the pod token's life.
		resp.Header.Del("Set-Cookie")
	}
	return nil
}

// scrubEchoes removes response header values that hold an injected
// credential value: an upstream that echoes it would hand it to the client.
func scrubEchoes(h http.Header, secrets []string) {
	if len(secrets) == 0 {
		return
	}
	for k, vs := range h {
		for _, v := range vs {
			if holdsAny(v, secrets) {
				delete(h, k)
				break
			}
		}
	}
}

func holdsAny(v string, secrets []string) bool {
	for _, s := range secrets {
		if s != "" && strings.Contains(v, s) {
			return true
		}
	}
	return false
}

// bufferPool recycles the 32 KiB copy buffers of streamed bodies.
type bufferPool struct{ pool sync.Pool }

func newBufferPool() *bufferPool {
	return &bufferPool{pool: sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}}
}

func (b *bufferPool) Get() []byte  { return *(b.pool.Get().(*[]byte)) }
func (b *bufferPool) Put(v []byte) { b.pool.Put(&v) }
