package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"sync"
)

// syncTransport sends a request and reads its response on the caller's
// goroutine over a pooled HTTP/1.1 connection. It is a benchmark reference
// point only: it knows nothing of HTTP/2, 1xx responses, timeouts or
// cancellation, and retries only a body-less request whose pooled
// connection the upstream had closed.
type syncTransport struct {
	addr string
	mu   sync.Mutex
	idle []*syncConn
}

type syncConn struct {
	net.Conn
	r *bufio.Reader
	w *bufio.Writer
}

func (t *syncTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	c, reused, err := t.conn(req, true)
	if err != nil {
		return nil, err
	}
	resp, err := t.send(c, req)
	if err != nil && reused && (req.Body == nil || req.Body == http.NoBody) {
		if c, _, err = t.conn(req, false); err != nil {
			return nil, err
		}
		resp, err = t.send(c, req)
	}
	return resp, err
}

func (t *syncTransport) send(c *syncConn, req *http.Request) (*http.Response, error) {
	err := req.Write(c.w)
	if err == nil {
		err = c.w.Flush()
	}
	if err != nil {
		_ = c.Close()
		return nil, err
	}
	resp, err := http.ReadResponse(c.r, req)
	if err != nil {
		_ = c.Close()
		return nil, err
	}
	resp.Body = &syncBody{ReadCloser: resp.Body, t: t, c: c, reuse: !resp.Close}
	return resp, nil
}

// conn takes an idle connection when pooled is set and one is there, else
// dials; reused says which.
func (t *syncTransport) conn(req *http.Request, pooled bool) (c *syncConn, reused bool, err error) {
	if pooled {
		t.mu.Lock()
		if n := len(t.idle); n > 0 {
			c = t.idle[n-1]
			t.idle = t.idle[:n-1]
		}
		t.mu.Unlock()
		if c != nil {
			return c, true, nil
		}
	}
	var d net.Dialer
	nc, err := d.DialContext(req.Context(), "tcp", t.addr)
	if err != nil {
		return nil, false, err
	}
	return &syncConn{Conn: nc, r: bufio.NewReader(nc), w: bufio.NewWriter(nc)}, false, nil
}

// syncBody returns its connection to the pool once read to the end, and
// closes it when abandoned earlier.
type syncBody struct {
	io.ReadCloser
	t     *syncTransport
	c     *syncConn
	reuse bool
	done  bool
}

func (b *syncBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF && !b.done {
		b.done = true
		if b.reuse {
			b.t.mu.Lock()
			b.t.idle = append(b.t.idle, b.c)
			b.t.mu.Unlock()
		} else {
			_ = b.c.Close()
		}
	}
	return n, err
}

func (b *syncBody) Close() error {
	if !b.done {
		b.done = true
		_ = b.c.Close()
	}
	return nil
}
