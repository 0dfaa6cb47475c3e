package proxy

import (
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httputil"
	"runtime/debug"
	"strings"
	"sync"

	"github.com/go-logr/logr"

	"github.com/connectors-node/connectors-node/grammar/match"
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
		metrics: newMetrics(opts.Registerer)}
	p.tunnels = newTunnels(p.newInnerServer())
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
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(caExpiryGauge(p.opts.SigningCA), p.audit.pendingGauge())
	}
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
		w.Header().Set("Connection", "close")
		if e.mode == modeAPI {
			writeStatus(w, &statusError{status: http.StatusInternalServerError, msg: "internal error"})
		} else {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = io.WriteString(w, "internal error\n")
		}
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

// copyBufferSize is the size of the copy buffers of streamed bodies. A
// response without Content-Length (a git clone's pack, a watch) is flushed
// after every read, so each read costs a chunk's writes to the client: 64
// KiB takes half the syscalls of 32 KiB per byte. The buffers return to
// the pool after each body, so idle connections hold none.
const copyBufferSize = 64 << 10

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
