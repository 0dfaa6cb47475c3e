package proxy

import (
	"io"
	"net"
	"net/http"
	"time"

	"github.com/connectors-node/connectors-node/grammar/match"
)

// serveConnect handles CONNECT host:port: intercept when a listed
// Connector serves the host (over TLS for https://, in the clear for
// http://), else refuse (or tunnel blindly when allowed).
func (p *Proxy) serveConnect(w http.ResponseWriter, r *http.Request) {
	t, err := match.ParseAuthority(r.Host)
	if err != nil {
		p.fail(w, r, statusErrorf(http.StatusBadRequest, "CONNECT needs host:port"))
		return
	}
	c, err := p.forwardCaller(r, t)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	cand, matched := match.AnyAuthority(c.cands, t)
	if !matched {
		// Some clients (Yarn 2 and later) tunnel plain HTTP too: a
		// Connector whose address is http:// at this host and port gets
		// its requests served in the clear inside the tunnel.
		plain := t
		plain.Scheme = "http"
		if cand, matched = match.AnyAuthority(c.cands, plain); matched {
			t = plain
		}
	}
	if !matched && !p.opts.AllowUnmatchedTunnels {
		p.fail(w, r, noConnector(t))
		return
	}
	// Refuse forbidden targets before answering 200; every later dial is
	// checked again.
	if _, err := p.guard.check(r.Context(), t.Host, t.Port); err != nil {
		p.fail(w, r, classifyUpstream(err))
		return
	}
	if !matched {
		p.blindTunnel(w, r, t)
		return
	}
	entryFrom(r.Context()).connector = c.connectors[cand.Index].Key()
	p.intercept(w, r, c, t)
}

// hijack takes over the client connection and answers 200. Bytes the
// client sent early stay readable.
func (p *Proxy) hijack(w http.ResponseWriter, r *http.Request) (net.Conn, error) {
	if hc := headConnFrom(r.Context()); hc != nil {
		hc.detach()
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return nil, err
	}
	_ = conn.SetDeadline(time.Time{})
	if _, err := io.WriteString(conn, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		_ = conn.Close()
		return nil, err
	}
	entryFrom(r.Context()).status = http.StatusOK
	if n := brw.Reader.Buffered(); n > 0 {
		return &prefixConn{Conn: conn, r: io.MultiReader(io.LimitReader(brw.Reader, int64(n)), conn)}, nil
	}
	return conn, nil
}

// prefixConn reads bytes buffered before a hijack first.
type prefixConn struct {
	net.Conn
	r io.Reader
}

func (c *prefixConn) Read(b []byte) (int, error) { return c.r.Read(b) }

// CloseWrite half-closes the wrapped connection.
func (c *prefixConn) CloseWrite() error {
	closeWrite(c.Conn)
	return nil
}

// blindTunnel copies bytes both ways to an unmatched host; nothing is
// injected and nothing is inspected.
func (p *Proxy) blindTunnel(w http.ResponseWriter, r *http.Request, t match.Target) {
	e := entryFrom(r.Context())
	e.mode = modeTunnel
	up, err := p.guard.DialContext(r.Context(), "tcp", net.JoinHostPort(t.Host, t.Port))
	if err != nil {
		p.fail(w, r, classifyUpstream(err))
		return
	}
	defer func() { _ = up.Close() }()
	conn, err := p.hijack(w, r)
	if err != nil {
		e.err = err
		return
	}
	defer func() { _ = conn.Close() }()
	if !p.tunnels.add(conn) {
		return
	}
	defer p.tunnels.remove(conn)
	p.metrics.tunnels.Inc()
	defer p.metrics.tunnels.Dec()

	idle := p.opts.TunnelIdleTimeout
	done := make(chan int64, 1)
	go func() {
		n, _ := io.Copy(up, idleReader{conn, idle})
		closeWrite(up)
		done <- n
	}()
	n, _ := io.Copy(conn, idleReader{up, idle})
	closeWrite(conn)
	e.bytes.Add(n)
	in := <-done
	e.body = &countingBody{ReadCloser: http.NoBody}
	e.body.n.Store(in)
}

// idleReader ends a read that waits longer than idle, so a blind tunnel
// whose peers went quiet (or half-closed and vanished) does not hold its
// goroutines and connections forever.
type idleReader struct {
	net.Conn
	idle time.Duration
}

func (r idleReader) Read(b []byte) (int, error) {
	_ = r.SetReadDeadline(time.Now().Add(r.idle))
	return r.Conn.Read(b)
}

type closeWriter interface{ CloseWrite() error }

// closeWrite half-closes c when it can, so the peer sees EOF while the
// other direction drains; otherwise it closes c.
func closeWrite(c net.Conn) {
	if cw, ok := c.(closeWriter); ok {
		_ = cw.CloseWrite()
		return
	}
	_ = c.Close()
}
