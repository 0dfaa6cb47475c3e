package upstream

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"sync"
	"time"
)

// Options configure New. Zero values take the documented defaults.
type Options struct {
	// Dial connects to an upstream address ("host:port"). Required.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// ResponseHeaderTimeout bounds the wait for a response head once the
	// request is written; the error is a net.Error whose Timeout is true.
	// Default: none.
	ResponseHeaderTimeout time.Duration
	// IdleConnTimeout closes a connection idle in the pool that long.
	// Default 90s.
	IdleConnTimeout time.Duration
	// MaxIdleConnsPerHost bounds the idle connections kept per address.
	// Default 64.
	MaxIdleConnsPerHost int
}

// Transport sends eligible requests itself and every other one through a
// fallback. Its zero value is not usable; call New.
type Transport struct {
	opts Options

	mu   sync.Mutex
	idle map[string][]*conn // per address, most recently used last
}

// New builds a Transport.
func New(opts Options) (*Transport, error) {
	if opts.Dial == nil {
		return nil, errors.New("upstream: Dial is required")
	}
	if opts.IdleConnTimeout <= 0 {
		opts.IdleConnTimeout = 90 * time.Second
	}
	if opts.MaxIdleConnsPerHost <= 0 {
		opts.MaxIdleConnsPerHost = 64
	}
	return &Transport{opts: opts, idle: map[string][]*conn{}}, nil
}

// With returns a RoundTripper that sends eligible requests through t and
// all others, and those whose response t hands back, through fallback.
// fallback should be an *http.Transport with DisableCompression set, so
// that both send the same bytes.
func (t *Transport) With(fallback http.RoundTripper) http.RoundTripper {
	return roundTripper{t: t, fallback: fallback}
}

type roundTripper struct {
	t        *Transport
	fallback http.RoundTripper
}

func (rt roundTripper) RoundTrip(r *http.Request) (*http.Response, error) {
	uri, ok := eligible(r)
	if !ok {
		return rt.fallback.RoundTrip(r)
	}
	resp, err := rt.t.roundTrip(r, uri)
	var ue *UnsupportedError
	if errors.As(err, &ue) {
		// Nothing of this response reached the caller: the fallback sends
		// the request again and reads the answer its own way.
		return rt.fallback.RoundTrip(r)
	}
	return resp, err
}

// replayable reports whether a request without a body may be sent again
// after the upstream may have seen it, as net/http decides.
func replayable(r *http.Request) bool {
	switch method(r) {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	_, a := r.Header["Idempotency-Key"]
	_, b := r.Header["X-Idempotency-Key"]
	return a || b
}

// max1xx bounds the informational responses before the final one, as
// net/http does.
const max1xx = 5

// roundTrip sends r on a pooled or new connection and reads the response
// head. A reused connection that the upstream closed before answering is
// replaced once when the request may be repeated.
func (t *Transport) roundTrip(r *http.Request, uri string) (*http.Response, error) {
	ctx := r.Context()
	addr := canonicalAddr(r)
	for attempt := 0; ; attempt++ {
		c, reused, err := t.get(ctx, addr)
		if err != nil {
			return nil, err
		}
		resp, err := c.exchange(ctx, r, uri)
		if err == nil {
			return resp, nil
		}
		c.close()
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, ctxErr
		}
		var se staleError
		stale := errors.As(err, &se)
		if stale {
			err = se.err
		}
		if stale && reused && attempt == 0 && replayable(r) {
			continue
		}
		return nil, err
	}
}

// canonicalAddr is the address net/http dials for r: its URL's host and
// port, port 80 when none is given.
func canonicalAddr(r *http.Request) string {
	host, port := r.URL.Hostname(), r.URL.Port()
	if port == "" {
		port = "80"
	}
	return net.JoinHostPort(host, port)
}

// staleError is a failure on a connection before any byte of the response
// came: the upstream may have closed it while it was idle.
type staleError struct{ err error }

func (e staleError) Error() string { return e.err.Error() }
func (e staleError) Unwrap() error { return e.err }

// conn is one upstream connection.
type conn struct {
	t     *Transport
	addr  string
	nc    net.Conn
	br    *bufio.Reader
	bw    *bufio.Writer
	timer *time.Timer // closes the connection when idle too long
	// stop ends the watch of the current request's context, which closes
	// the connection when the context ends; it reports whether the watch
	// had not fired.
	stop func() bool
}

// exchange writes r and reads the final response head, passing
// informational responses to the request's client trace as net/http does.
func (c *conn) exchange(ctx context.Context, r *http.Request, uri string) (*http.Response, error) {
	if ctx.Done() != nil {
		nc := c.nc
		c.stop = context.AfterFunc(ctx, func() { _ = nc.Close() })
	}
	if err := writeRequest(c.bw, r, uri); err != nil {
		return nil, staleError{err: err}
	}
	if err := c.bw.Flush(); err != nil {
		return nil, staleError{err: err}
	}
	if d := c.t.opts.ResponseHeaderTimeout; d > 0 {
		_ = c.nc.SetReadDeadline(time.Now().Add(d))
	}
	if _, err := c.br.Peek(1); err != nil {
		if isTimeout(err) {
			return nil, errHeaderTimeout
		}
		return nil, staleError{err: err}
	}
	m := method(r)
	trace := httptrace.ContextClientTrace(ctx)
	for n1xx := 0; ; {
		h, err := readHead(c.br, m)
		if err != nil {
			if isTimeout(err) {
				return nil, errHeaderTimeout
			}
			return nil, err
		}
		code := h.resp.StatusCode
		if code == http.StatusSwitchingProtocols {
			return nil, errors.New("upstream fast path: 101 Switching Protocols to a request that asked for no upgrade")
		}
		if code < 200 {
			n1xx++
			if n1xx > max1xx {
				return nil, errors.New("net/http: too many 1xx informational responses")
			}
			if trace != nil && trace.Got1xxResponse != nil {
				if err := trace.Got1xxResponse(code, textproto.MIMEHeader(h.resp.Header)); err != nil {
					return nil, err
				}
			}
			continue
		}
		if c.t.opts.ResponseHeaderTimeout > 0 {
			_ = c.nc.SetReadDeadline(time.Time{})
		}
		resp := h.resp
		resp.Request = r
		resp.Body = c.body(h)
		return resp, nil
	}
}

// errHeaderTimeout is net/http's error when no response head came in time.
var errHeaderTimeout = &timeoutError{"net/http: timeout awaiting response headers"}

type timeoutError struct{ msg string }

func (e *timeoutError) Error() string { return e.msg }
func (e *timeoutError) Timeout() bool { return true }
func (e *timeoutError) Temporary() bool {
	return true
}

var _ net.Error = (*timeoutError)(nil)

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// body returns the response body reader for h, and puts the connection
// back in the pool at once when there is none.
func (c *conn) body(h *head) io.ReadCloser {
	if h.framing == framedNone {
		c.release(h.resp.Close)
		return http.NoBody
	}
	b := newBody(c.br, h)
	b.c = c
	return b
}

func newBody(br *bufio.Reader, h *head) *body {
	b := &body{br: br, framing: h.framing, left: h.length, closeAfter: h.resp.Close}
	if h.framing == framedChunked {
		b.chunks = newChunkedReader(br)
	}
	return b
}

// body reads a response body from its connection and hands the connection
// back once the body is read to its end.
type body struct {
	mu         sync.Mutex
	br         *bufio.Reader
	c          *conn // nil once done, or when read without a connection
	framing    framing
	left       int64 // framedLength: bytes still to read
	chunks     io.Reader
	closeAfter bool
	err        error // sticky
}

func (b *body) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err != nil {
		return 0, b.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	c, br := b.c, b.br
	var n int
	var err error
	switch b.framing {
	case framedLength:
		if int64(len(p)) > b.left {
			p = p[:b.left]
		}
		n, err = br.Read(p)
		b.left -= int64(n)
		if b.left == 0 {
			err = io.EOF
		} else if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
	case framedChunked:
		n, err = b.chunks.Read(p)
		if errors.Is(err, io.EOF) {
			if endErr := readChunkedEnd(br); endErr != nil {
				err = endErr
			}
		}
	case framedClose:
		n, err = br.Read(p)
	}
	if err == nil {
		return n, nil
	}
	b.err = err
	b.c = nil
	if c == nil {
		return n, err
	}
	if errors.Is(err, io.EOF) {
		// The whole body came; the connection is clean for the next request
		// unless the response or its framing ends it.
		c.release(b.closeAfter)
	} else {
		c.close()
	}
	return n, err
}

// Close ends the body. A body not read to its end closes its connection,
// as net/http's does.
func (b *body) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.c != nil {
		b.c.close()
		b.c = nil
	}
	if b.err == nil {
		b.err = errBodyClosed
	}
	return nil
}

var errBodyClosed = errors.New("http: read on closed response body")

// release hands the connection back after a whole response: to the pool,
// unless it must close or something came past the response.
func (c *conn) release(closing bool) {
	stopped := true
	if c.stop != nil {
		stopped = c.stop()
		c.stop = nil
	}
	if closing || !stopped || c.br.Buffered() > 0 {
		c.close()
		return
	}
	c.t.put(c)
}

func (c *conn) close() {
	if c.stop != nil {
		c.stop()
		c.stop = nil
	}
	_ = c.nc.Close()
}

// get returns an idle connection to addr that the upstream has neither
// closed nor written to, or dials a new one.
func (t *Transport) get(ctx context.Context, addr string) (*conn, bool, error) {
	for {
		c := t.takeIdle(addr)
		if c == nil {
			break
		}
		if idleClean(c.nc) {
			return c, true, nil
		}
		_ = c.nc.Close()
	}
	nc, err := t.opts.Dial(ctx, "tcp", addr)
	if err != nil {
		return nil, false, err
	}
	return &conn{t: t, addr: addr, nc: nc, br: bufio.NewReader(nc), bw: bufio.NewWriter(nc)}, false, nil
}

func (t *Transport) takeIdle(addr string) *conn {
	t.mu.Lock()
	defer t.mu.Unlock()
	list := t.idle[addr]
	if len(list) == 0 {
		return nil
	}
	c := list[len(list)-1]
	list[len(list)-1] = nil
	if len(list) == 1 {
		delete(t.idle, addr)
	} else {
		t.idle[addr] = list[:len(list)-1]
	}
	c.timer.Stop()
	return c
}

func (t *Transport) put(c *conn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	list := t.idle[c.addr]
	if len(list) >= t.opts.MaxIdleConnsPerHost {
		_ = c.nc.Close()
		return
	}
	t.idle[c.addr] = append(list, c)
	if c.timer == nil {
		c.timer = time.AfterFunc(t.opts.IdleConnTimeout, func() { t.expire(c) })
	} else {
		c.timer.Reset(t.opts.IdleConnTimeout)
	}
}

// expire closes c if it is still idle.
func (t *Transport) expire(c *conn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	list := t.idle[c.addr]
	for i, x := range list {
		if x == c {
			list = append(list[:i], list[i+1:]...)
			if len(list) == 0 {
				delete(t.idle, c.addr)
			} else {
				t.idle[c.addr] = list
			}
			_ = c.nc.Close()
			return
		}
	}
}

// CloseIdleConnections closes the connections in the pool.
func (t *Transport) CloseIdleConnections() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for addr, list := range t.idle {
		for _, c := range list {
			c.timer.Stop()
			_ = c.nc.Close()
		}
		delete(t.idle, addr)
	}
}
