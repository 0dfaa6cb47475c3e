package proxy

import (
	"net"
	"sync"
	"time"

	"github.com/go-logr/logr"
)

// refusedResponse is written to a connection beyond MaxConnections.
const refusedResponse = "HTTP/1.1 503 Service Unavailable\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\n" +
	"Connection: close\r\n" +
	"Retry-After: 1\r\n" +
	"Content-Length: 46\r\n\r\n" +
	"too many connections to the proxy, try again\r\n"

// limitListener accepts at most max open connections; beyond that it
// answers 503 and closes the new one. A connection counts until it is
// closed, also after a hijack (CONNECT tunnels).
type limitListener struct {
	net.Listener
	slots   chan struct{}
	metrics *metrics
	log     logr.Logger
}

func newLimitListener(ln net.Listener, maxConns int, m *metrics, log logr.Logger) *limitListener {
	return &limitListener{Listener: ln, slots: make(chan struct{}, maxConns), metrics: m, log: log}
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		select {
		case l.slots <- struct{}{}:
			l.metrics.connsOpen.Inc()
			return &limitConn{Conn: c, release: l.release}, nil
		default:
			l.metrics.connsRefused.Inc()
			l.log.V(1).Info("connection refused: too many open", "limit", cap(l.slots), "remote", c.RemoteAddr().String())
			go refuse(c)
		}
	}
}

func (l *limitListener) release() {
	<-l.slots
	l.metrics.connsOpen.Dec()
}

// refuse writes the 503 without waiting on a slow client for long.
func refuse(c net.Conn) {
	_ = c.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = c.Write([]byte(refusedResponse))
	_ = c.Close()
}

// limitConn gives its slot back once, on the first Close.
type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
