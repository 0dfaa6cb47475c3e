package proxy

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"
)

// TestIdleHeadConnHoldsNoBuffer pins that a connection between requests
// holds no recording buffer: it takes one when the next request's bytes
// arrive and gives it back when the handler starts, so an idle keep-alive
// connection or intercepted tunnel keeps none.
func TestIdleHeadConnHoldsNoBuffer(t *testing.T) {
	client, server := net.Pipe()
	defer func() { _ = client.Close() }()
	hc := &headConn{Conn: server, on: true}
	defer func() { _ = hc.Close() }()
	go func() {
		_, _ = io.WriteString(client, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
	}()
	req, err := http.ReadRequest(bufio.NewReader(hc))
	if err != nil {
		t.Fatal(err)
	}
	if hc.buf == nil || len(*hc.buf) == 0 {
		t.Fatal("the request's head was not recorded")
	}
	if hc.take(req) {
		t.Fatal("a plain GET counted as mixed framing")
	}
	hc.resume()
	if hc.buf != nil {
		t.Errorf("an idle connection holds a recording buffer of %d bytes", cap(*hc.buf))
	}
}

// ticketCount counts the session tickets a TLS client receives.
type ticketCount struct {
	mu   sync.Mutex
	puts int
}

func (c *ticketCount) Get(string) (*tls.ClientSessionState, bool) { return nil, false }

func (c *ticketCount) Put(_ string, cs *tls.ClientSessionState) {
	if cs == nil {
		return
	}
	c.mu.Lock()
	c.puts++
	c.mu.Unlock()
}

// TestInterceptedTunnelsShareTheLeafsTLSConfig pins that a tunnel keeps no
// TLS configuration of its own: every tunnel to a host answers with the
// leaf's one configuration, which sends no session tickets (a tunnel's
// own configuration would have sent tickets under keys no other tunnel
// knows), and the server name is still checked per tunnel.
func TestInterceptedTunnelsShareTheLeafsTLSConfig(t *testing.T) {
	e := newFixture(t)
	authority := "api.example.test:" + e.pa

	tickets := &ticketCount{}
	for range 3 {
		c := e.forwardClient("team-a/api", tokA)
		c.Transport.(*http.Transport).TLSClientConfig.ClientSessionCache = tickets
		if err := getOK(c, func() *http.Request { return newRequest(t, http.MethodGet, "https://"+authority+"/", nil) }); err != nil {
			t.Fatal(err)
		}
		c.CloseIdleConnections()
	}
	if tickets.puts != 0 {
		t.Errorf("the proxy sent %d session tickets over 3 tunnels, want none", tickets.puts)
	}
	a, err := e.proxy.leaves.serverConfig("api.example.test")
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := e.proxy.leaves.serverConfig("api.example.test"); a != b {
		t.Error("two tunnels to one host got two TLS configurations")
	}

	// The server name is still checked per tunnel: a tunnel to the same
	// host with another name gets 421 for every request inside.
	tc, br := e.tunnel(t, authority, "other.example.test", "team-a/api", tokA, true)
	_ = tc.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(tc, "GET / HTTP/1.1\r\nHost: "+authority+"\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if code := readStatus(t, br, nil); code != http.StatusMisdirectedRequest {
		t.Errorf("a tunnel with another server name got %d, want 421", code)
	}
}
