package proxy

import (
	"container/list"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/connectors-node/connectors-node/kube/ca"
	"github.com/connectors-node/connectors-node/proxy/upstream"
)

// maxTransports bounds the transports kept for distinct Connector CAs.
const maxTransports = 64

// upstreams holds the HTTP transports to upstreams: one with the trusted
// roots, and one per distinct Connector CA bundle on top of them. All dial
// through the SSRF guard and never use an environment proxy. When the roots
// change (a global CA Secret came or went) every transport is rebuilt and
// the old ones' idle connections closed, so no connection verified against
// the old roots is reused. Each pool of roots has two transports: one that
// speaks HTTP/2 to an upstream that offers it, and one that speaks HTTP/1.1
// only, for the requests of intercepted tunnels (see transports.pick).
// With Options.UpstreamFastPath, fast sends the
// bodiless requests to plain http:// upstreams (package upstream), dialing
// through the same guard.
type upstreams struct {
	opts  *Options
	guard *guard
	src   ca.Roots
	fast  *upstream.Transport // nil: every request takes the transports

	mu    sync.Mutex
	gen   uint64
	roots *x509.CertPool
	def   *transports
	order *list.List // of [32]byte, front = most recent
	byCA  map[[32]byte]*list.Element
	trs   map[[32]byte]*transports
}

// transports are the two transports that trust one pool of roots.
type transports struct {
	// auto negotiates HTTP/2 with an upstream that offers it (ALPN).
	auto *http.Transport
	// h1 speaks HTTP/1.1 only.
	h1 *http.Transport
}

// pick returns the transport for a request of the given mode. A request
// inside an intercepted tunnel came as HTTP/1.1 (the tunnel's TLS offers
// only http/1.1) and leaves as HTTP/1.1, as the client would send it
// without the proxy: translating it to HTTP/2 cost the upstream and the
// proxy about twice the CPU per MiB of body (frames, flow control, a
// WINDOW_UPDATE per few KiB read, a TLS record per DATA frame header).
func (t *transports) pick(mode string) *http.Transport {
	if mode == modeMITM {
		return t.h1
	}
	return t.auto
}

func (t *transports) closeIdle() {
	t.auto.CloseIdleConnections()
	t.h1.CloseIdleConnections()
}

func newUpstreams(opts *Options, g *guard) (*upstreams, error) {
	src := opts.Roots
	if src == nil {
		roots, err := x509.SystemCertPool()
		if err != nil || roots == nil {
			roots = x509.NewCertPool()
		}
		src = ca.StaticRoots{Pool: roots}
	}
	u := &upstreams{opts: opts, guard: g, src: src}
	if opts.UpstreamFastPath {
		fast, err := upstream.New(upstream.Options{
			Dial:                  g.DialContext,
			ResponseHeaderTimeout: opts.ResponseHeaderTimeout,
			IdleConnTimeout:       opts.IdleConnTimeout,
			MaxIdleConnsPerHost:   opts.MaxIdleConnsPerHost,
		})
		if err != nil {
			return nil, err
		}
		u.fast = fast
	}
	pool, gen := src.Roots()
	u.reset(pool, gen)
	return u, nil
}

// reset builds the transports for a new pool of roots. u.mu is held, or
// u is not shared yet.
func (u *upstreams) reset(pool *x509.CertPool, gen uint64) {
	if pool == nil {
		pool = x509.NewCertPool()
	}
	roots := pool.Clone()
	for _, c := range u.opts.UpstreamRoots {
		roots.AddCert(c)
	}
	if u.def != nil {
		u.def.closeIdle()
	}
	for _, t := range u.trs {
		t.closeIdle()
	}
	u.gen, u.roots = gen, roots
	u.def = u.newTransports(roots)
	u.order, u.byCA, u.trs = list.New(), map[[32]byte]*list.Element{}, map[[32]byte]*transports{}
}

func (u *upstreams) newTransports(roots *x509.CertPool) *transports {
	auto := u.newTransport(roots)
	return &transports{auto: auto, h1: http1(auto)}
}

func (u *upstreams) newTransport(roots *x509.CertPool) *http.Transport {
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           u.guard.DialContext,
		TLSClientConfig:       &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:   u.opts.TLSHandshakeTimeout,
		ResponseHeaderTimeout: u.opts.ResponseHeaderTimeout,
		IdleConnTimeout:       u.opts.IdleConnTimeout,
		MaxIdleConns:          u.opts.MaxIdleConnsPerHost * 16,
		MaxIdleConnsPerHost:   u.opts.MaxIdleConnsPerHost,
		ExpectContinueTimeout: time.Second,
		ForceAttemptHTTP2:     true,
		// Bodies pass through as they are; the client asked for its encoding.
		DisableCompression: true,
		// A chunked body is read one chunk at a time unless the next chunk's
		// head is already buffered: with 4 KiB (the default), each read of
		// a streamed body ends at the upstream's chunk (git http-backend's
		// are up to 32 KiB); with copyBufferSize, one read fills the copy
		// buffer.
		ReadBufferSize: copyBufferSize,
	}
}

// transport returns the transports that trust the current roots plus caPEM.
func (u *upstreams) transport(caPEM []byte) (*transports, error) {
	pool, gen := u.src.Roots()
	u.mu.Lock()
	defer u.mu.Unlock()
	if gen != u.gen {
		u.reset(pool, gen)
	}
	if len(caPEM) == 0 {
		return u.def, nil
	}
	key := sha256.Sum256(caPEM)
	if el, ok := u.byCA[key]; ok {
		u.order.MoveToFront(el)
		return u.trs[key], nil
	}
	pool = u.roots.Clone()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("CA secret holds no PEM certificate")
	}
	t := u.newTransports(pool)
	u.byCA[key] = u.order.PushFront(key)
	u.trs[key] = t
	for u.order.Len() > maxTransports {
		old := u.order.Back()
		k := old.Value.([32]byte)
		u.order.Remove(old)
		delete(u.byCA, k)
		u.trs[k].closeIdle()
		delete(u.trs, k)
	}
	return t, nil
}

// http1Only returns a transport like t that speaks only HTTP/1.1 and keeps
// no connection, for a request that asks to switch protocols: Upgrade
// exists only in HTTP/1.1, and Go's HTTP/2 transport refuses such a
// request ("invalid Upgrade request header") when the upstream offers h2,
// as every kube-apiserver does. (Go falls back to HTTP/1.1 for websocket
// by itself, not for SPDY/3.1, which kubectl exec, attach and port-forward
// use.) A switched connection is never reused, so the transport keeps none.
func http1Only(t *http.Transport) *http.Transport {
	c := http1(t)
	c.DisableKeepAlives = true
	return c
}

// http1 returns a transport like t that speaks only HTTP/1.1: a non-nil,
// empty TLSNextProto turns HTTP/2 off, and ALPN offers only http/1.1, so
// an upstream that checks ALPN agrees.
func http1(t *http.Transport) *http.Transport {
	c := t.Clone()
	c.ForceAttemptHTTP2 = false
	c.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	c.TLSClientConfig.NextProtos = []string{"http/1.1"}
	return c
}

// closeIdle closes idle upstream connections of every transport.
func (u *upstreams) closeIdle() {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.def.closeIdle()
	for _, t := range u.trs {
		t.closeIdle()
	}
	if u.fast != nil {
		u.fast.CloseIdleConnections()
	}
}
