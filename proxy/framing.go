package proxy

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"sync"
)

// headRecordMax bounds the bytes a headConn keeps between two requests.
const headRecordMax = defaultMaxHeaderBytes + 32<<10

// maxPooledHead is the largest recording buffer that goes back to headBufs.
const maxPooledHead = 4 << 10

// headBufs are the recording buffers of headConns: a connection takes one
// when the next request's bytes arrive and gives it back when its handler
// starts, so an idle connection holds none.
var headBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// headConn records the bytes read between the end of one handler and the
// start of the next, which hold the next request's head. net/http drops a
// Content-Length that comes with Transfer-Encoding and carries on; the
// proxy answers such requests 400 instead, as a smuggling attempt. While a
// handler runs nothing is recorded, so bodies cost nothing.
type headConn struct {
	net.Conn
	mu       sync.Mutex
	on       bool
	detached bool
	// buf is nil while nothing is recorded.
	buf *[]byte
}

func (c *headConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		c.mu.Lock()
		if c.on {
			if c.buf == nil {
				c.buf = headBufs.Get().(*[]byte)
			}
			buf := append(*c.buf, b[:n]...)
			if over := len(buf) - headRecordMax; over > 0 {
				buf = append(buf[:0], buf[over:]...)
			}
			*c.buf = buf
		}
		c.mu.Unlock()
	}
	return n, err
}

// release gives the recording buffer back. c.mu is held.
func (c *headConn) release() {
	if c.buf == nil {
		return
	}
	if cap(*c.buf) <= maxPooledHead {
		*c.buf = (*c.buf)[:0]
		headBufs.Put(c.buf)
	}
	c.buf = nil
}

// CloseWrite half-closes the wrapped connection.
func (c *headConn) CloseWrite() error {
	closeWrite(c.Conn)
	return nil
}

// take stops recording and reports whether r's head, as recorded, had both
// Content-Length and Transfer-Encoding, or Transfer-Encoding at all in
// HTTP/1.0 (of any version, such a request gets 400). A request with
// Transfer-Encoding whose head was not recorded (it was read together with
// an earlier, pipelined request) counts as mixed too: its framing cannot be
// checked, so it is refused rather than trusted; so does an unrecorded
// HTTP/1.0 request with a body, whose Transfer-Encoding net/http hides.
func (c *headConn) take(r *http.Request) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.on = false
	var buf []byte
	if c.buf != nil {
		buf = *c.buf
	}
	defer c.release()
	// net/http drops Transfer-Encoding from HTTP/1.0 requests without a
	// trace, so for those the recorded head is the only witness.
	old := !r.ProtoAtLeast(1, 1)
	if len(r.TransferEncoding) == 0 && !old {
		return false
	}
	found, cl, te := framingFields(buf, r)
	switch {
	case !found:
		// An HTTP/1.0 request without a body has nothing to smuggle.
		return !old || r.ContentLength != 0
	case old:
		// RFC 9112 §6.1: Transfer-Encoding in HTTP/1.0 is faulty framing.
		return te
	default:
		return cl && te
	}
}

// resume records again, for the next request on the connection.
func (c *headConn) resume() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.detached {
		c.on = true
		c.release()
	}
}

// detach stops recording for good (the connection was hijacked).
func (c *headConn) detach() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.on, c.detached = false, true
	c.release()
}

// framingFields finds r's request line in buf and reports whether it was
// found and whether the head that follows has a Content-Length and a
// Transfer-Encoding field.
func framingFields(buf []byte, r *http.Request) (found, cl, te bool) {
	line := []byte(r.Method + " " + r.RequestURI + " ")
	i := bytes.LastIndex(buf, line)
	if i < 0 {
		return false, false, false
	}
	head := buf[i:]
	if end := bytes.Index(head, []byte("\n\r\n")); end >= 0 {
		head = head[:end+1]
	} else if end := bytes.Index(head, []byte("\n\n")); end >= 0 {
		head = head[:end+1]
	}
	for _, l := range bytes.Split(head, []byte("\n"))[1:] {
		name, _, ok := bytes.Cut(l, []byte(":"))
		if !ok {
			continue
		}
		name = bytes.TrimSpace(name)
		cl = cl || bytes.EqualFold(name, []byte("Content-Length"))
		te = te || bytes.EqualFold(name, []byte("Transfer-Encoding"))
	}
	return true, cl, te
}

type headConnKey struct{}

func headConnFrom(ctx context.Context) *headConn {
	c, _ := ctx.Value(headConnKey{}).(*headConn)
	return c
}

// headListener wraps accepted connections in headConns.
type headListener struct{ net.Listener }

func (l headListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &headConn{Conn: c, on: true}, nil
}
