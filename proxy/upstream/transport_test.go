package upstream

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// countingFallback answers every request it gets with 299 and counts them.
type countingFallback struct{ n atomic.Int32 }

func (f *countingFallback) RoundTrip(r *http.Request) (*http.Response, error) {
	f.n.Add(1)
	return &http.Response{StatusCode: 299, Status: "299 fallback", Header: http.Header{},
		Body: http.NoBody, Request: r}, nil
}

func newTransport(t *testing.T, o Options) *Transport {
	t.Helper()
	if o.Dial == nil {
		var d net.Dialer
		o.Dial = d.DialContext
	}
	tr, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

// rawServer serves each connection with handle, on loopback.
func rawServer(t *testing.T, handle func(c net.Conn, br *bufio.Reader)) (addr string, conns *atomic.Int32) {
	t.Helper()
	var lc net.ListenConfig
	l, err := lc.Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conns = new(atomic.Int32)
	var wg sync.WaitGroup
	t.Cleanup(func() { _ = l.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { _ = c.Close() }()
				handle(c, bufio.NewReader(c))
			}()
		}
	}()
	return l.Addr().String(), conns
}

// readRequestHead reads one request head from br; false at its end.
func readRequestHead(br *bufio.Reader) bool {
	_, err := http.ReadRequest(br)
	return err == nil
}

// answer serves every request on a connection with resp.
func answer(resp string) func(net.Conn, *bufio.Reader) {
	return func(c net.Conn, br *bufio.Reader) {
		for readRequestHead(br) {
			if _, err := io.WriteString(c, resp); err != nil {
				return
			}
		}
	}
}

// answered is a response read whole.
type answered struct {
	StatusCode    int
	Header        http.Header
	ContentLength int64
	Close         bool
}

// get sends one request through rt and reads the whole response.
func get(t *testing.T, rt http.RoundTripper, method, url string) (answered, string, error) {
	t.Helper()
	r, err := http.NewRequestWithContext(t.Context(), method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := rt.RoundTrip(r)
	if err != nil {
		return answered{}, "", err
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	return answered{resp.StatusCode, resp.Header, resp.ContentLength, resp.Close}, string(b), err
}

func TestKeepAliveReusesOneConnection(t *testing.T) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/chunked" {
			_, _ = io.WriteString(w, "part one,")
			w.(http.Flusher).Flush()
			_, _ = io.WriteString(w, "part two")
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "hello")
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	fb := &countingFallback{}
	rt := newTransport(t, Options{}).With(fb)
	for i, path := range []string{"/a?1", "/chunked", "/b?2", "/chunked", "/c?3"} {
		resp, body, err := get(t, rt, http.MethodGet, srv.URL+path)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		want := "hello"
		if path == "/chunked" {
			want = "part one,part two"
		}
		if resp.StatusCode != http.StatusOK || body != want {
			t.Fatalf("request %d: %d %q, want 200 %q", i, resp.StatusCode, body, want)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections for five sequential requests, want 1", n)
	}
	if n := fb.n.Load(); n != 0 {
		t.Errorf("%d requests went to the fallback, want 0", n)
	}
}

// TestFallbackTakesWhatTheFastPathDoesNot pins the requests that go to the
// standard transport: bodies, upgrades, Expect, TE, Connection, https.
func TestFallbackTakesWhatTheFastPathDoesNot(t *testing.T) {
	addr, conns := rawServer(t, answer("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))
	for name, mut := range map[string]func(r *http.Request){
		"https":          func(r *http.Request) { r.URL.Scheme = "https" },
		"body":           func(r *http.Request) { r.Body = io.NopCloser(strings.NewReader("x")); r.ContentLength = 1 },
		"unknown body":   func(r *http.Request) { r.Body = io.NopCloser(strings.NewReader("x")); r.ContentLength = -1 },
		"upgrade":        func(r *http.Request) { r.Header.Set("Upgrade", "websocket"); r.Header.Set("Connection", "Upgrade") },
		"expect":         func(r *http.Request) { r.Header.Set("Expect", "100-continue") },
		"te trailers":    func(r *http.Request) { r.Header.Set("Te", "trailers") },
		"trailer":        func(r *http.Request) { r.Trailer = http.Header{"X": nil} },
		"close":          func(r *http.Request) { r.Close = true },
		"bad value":      func(r *http.Request) { r.Header["X-Bad"] = []string{"a\r\nInjected: 1"} },
		"bad name":       func(r *http.Request) { r.Header["X Bad"] = []string{"a"} },
		"lower name":     func(r *http.Request) { r.Header["content-length"] = []string{"5"} },
		"control in url": func(r *http.Request) { r.URL.RawQuery = "a=\x01" },
		"connect":        func(r *http.Request) { r.Method = http.MethodConnect },
		"unicode host":   func(r *http.Request) { r.Host = "bücher.example" },
		"user info":      func(r *http.Request) { r.URL.User = url.User("u") },
		"post":           func(r *http.Request) { r.Method = http.MethodPost },
		"delete":         func(r *http.Request) { r.Method = http.MethodDelete },
		"patch":          func(r *http.Request) { r.Method = http.MethodPatch },
	} {
		t.Run(name, func(t *testing.T) {
			fb := &countingFallback{}
			rt := newTransport(t, Options{}).With(fb)
			r, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+addr+"/", nil)
			if err != nil {
				t.Fatal(err)
			}
			mut(r)
			before := conns.Load()
			resp, err := rt.RoundTrip(r)
			if err != nil {
				t.Fatal(err)
			}
			_ = resp.Body.Close()
			if resp.StatusCode != 299 || fb.n.Load() != 1 || conns.Load() != before {
				t.Errorf("status %d, fallback %d, new connections %d: want the fallback only",
					resp.StatusCode, fb.n.Load(), conns.Load()-before)
			}
		})
	}
}

// TestSmugglingShapedResponsesAreNeverRead pins the response heads the
// parser refuses: the request goes again through the fallback, and no
// response is read from those bytes.
func TestSmugglingShapedResponsesAreNeverRead(t *testing.T) {
	for name, resp := range map[string]string{
		"CL and TE":           "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"duplicate CL":        "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
		"CL list":             "HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\n\r\nabc",
		"signed CL":           "HTTP/1.1 200 OK\r\nContent-Length: +3\r\n\r\nabc",
		"TE gzip, chunked":    "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
		"TE twice":            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"TE with Kelvin sign": "HTTP/1.1 200 OK\r\nTransfer-Encoding: chun\u212aed\r\n\r\n0\r\n\r\n",
		"obs-fold":            "HTTP/1.1 200 OK\r\nX-A: a\r\n Content-Length: 3\r\nContent-Length: 0\r\n\r\n",
		"bare LF":             "HTTP/1.1 200 OK\nContent-Length: 0\n\n",
		"bare CR":             "HTTP/1.1 200 OK\r\nX-A: a\rContent-Length: 3\r\nContent-Length: 0\r\n\r\n",
		"space before colon":  "HTTP/1.1 200 OK\r\nContent-Length : 3\r\n\r\nabc",
		"NUL in value":        "HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 0\r\n\r\n",
		"trailer field":       "HTTP/1.1 200 OK\r\nTrailer: X\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: 1\r\n\r\n",
		"HTTP/1.0":            "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n",
		"HTTP/2.0 line":       "HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n",
		"two-digit status":    "HTTP/1.1 20 OK\r\nContent-Length: 0\r\n\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			addr, conns := rawServer(t, answer(resp))
			fb := &countingFallback{}
			rt := newTransport(t, Options{}).With(fb)
			got, _, err := get(t, rt, http.MethodGet, "http://"+addr+"/")
			if err != nil {
				t.Fatalf("GET: %v, want the fallback's answer", err)
			}
			if got.StatusCode != 299 || fb.n.Load() != 1 || conns.Load() != 1 {
				t.Errorf("GET: %d, fallback %d, connections %d: want the fast path's try, then the fallback's answer",
					got.StatusCode, fb.n.Load(), conns.Load())
			}
		})
	}
}

// TestTrailerAfterChunkedBodyFailsTheBody pins a trailer section that no
// Trailer field announced: the body read fails rather than drop it.
func TestTrailerAfterChunkedBodyFailsTheBody(t *testing.T) {
	addr, _ := rawServer(t, answer("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\nX-T: 1\r\n\r\n"))
	_, _, err := get(t, newTransport(t, Options{}).With(&countingFallback{}), http.MethodGet, "http://"+addr+"/")
	if !errors.Is(err, errTrailer) {
		t.Fatalf("body error %v, want %v", err, errTrailer)
	}
}

// TestUnsolicitedBytesAreNeverTheNextAnswer pins a connection on which the
// upstream wrote past its response: it is closed, not reused, so those
// bytes cannot answer another client's request.
func TestUnsolicitedBytesAreNeverTheNextAnswer(t *testing.T) {
	const smuggled = "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled"
	for name, later := range map[string]bool{"in the same write": false, "while idle": true} {
		t.Run(name, func(t *testing.T) {
			first := make(chan struct{}, 1)
			addr, conns := rawServer(t, func(c net.Conn, br *bufio.Reader) {
				if !readRequestHead(br) {
					return
				}
				ok := "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
				select {
				case first <- struct{}{}:
					if later {
						_, _ = io.WriteString(c, ok)
						time.Sleep(50 * time.Millisecond)
						_, _ = io.WriteString(c, smuggled)
					} else {
						_, _ = io.WriteString(c, ok+smuggled)
					}
				default:
					_, _ = io.WriteString(c, ok)
				}
				for readRequestHead(br) {
					_, _ = io.WriteString(c, ok)
				}
			})
			rt := newTransport(t, Options{}).With(&countingFallback{})
			for i := range 2 {
				_, body, err := get(t, rt, http.MethodGet, "http://"+addr+"/")
				if err != nil || body != "ok" {
					t.Fatalf("request %d: %q, %v; want ok", i, body, err)
				}
				if i == 0 && later {
					time.Sleep(150 * time.Millisecond)
				}
			}
			if n := conns.Load(); n != 2 {
				t.Errorf("%d connections, want 2: the first is not reused", n)
			}
		})
	}
}

// TestClosedIdleConnectionIsReplaced pins an upstream that closes its end
// after each response: the next request dials again.
func TestClosedIdleConnectionIsReplaced(t *testing.T) {
	addr, conns := rawServer(t, func(c net.Conn, br *bufio.Reader) {
		if readRequestHead(br) {
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		}
	})
	rt := newTransport(t, Options{}).With(&countingFallback{})
	for i := range 3 {
		_, body, err := get(t, rt, http.MethodGet, "http://"+addr+"/")
		if err != nil || body != "ok" {
			t.Fatalf("request %d: %q, %v", i, body, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := conns.Load(); n != 3 {
		t.Errorf("%d connections, want 3", n)
	}
}

func TestConnectionCloseIsNotReused(t *testing.T) {
	addr, conns := rawServer(t, answer("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"))
	rt := newTransport(t, Options{}).With(&countingFallback{})
	for i := range 2 {
		resp, body, err := get(t, rt, http.MethodGet, "http://"+addr+"/")
		if err != nil || body != "ok" || !resp.Close || resp.Header.Get("Connection") != "" {
			t.Fatalf("request %d: %q, %v", i, body, err)
		}
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
}

func TestBodyToTheEndOfTheConnection(t *testing.T) {
	addr, _ := rawServer(t, func(c net.Conn, br *bufio.Reader) {
		if readRequestHead(br) {
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\n\r\nuntil the end")
		}
	})
	resp, body, err := get(t, newTransport(t, Options{}).With(&countingFallback{}), http.MethodGet, "http://"+addr+"/")
	if err != nil || body != "until the end" || resp.ContentLength != -1 || !resp.Close {
		t.Fatalf("%q, %v, %+v", body, err, resp)
	}
}

func TestUnreadBodyClosesTheConnection(t *testing.T) {
	addr, conns := rawServer(t, answer("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"))
	rt := newTransport(t, Options{}).With(&countingFallback{})
	r, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+addr+"/", nil)
	resp, err := rt.RoundTrip(r)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if _, err := resp.Body.Read(make([]byte, 1)); err == nil {
		t.Error("read after Close succeeded")
	}
	if _, _, err := get(t, rt, http.MethodGet, "http://"+addr+"/"); err != nil {
		t.Fatal(err)
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
}

func TestInformationalResponsesReachTheTrace(t *testing.T) {
	addr, _ := rawServer(t, answer("HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"+
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
	var got []int
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		if h.Get("Link") != "</a>" {
			t.Errorf("1xx header %v", h)
		}
		got = append(got, code)
		return nil
	}}
	r, _ := http.NewRequestWithContext(httptrace.WithClientTrace(t.Context(), trace), http.MethodGet, "http://"+addr+"/", nil)
	resp, err := newTransport(t, Options{}).With(&countingFallback{}).RoundTrip(r)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != 200 || len(got) != 1 || got[0] != 103 {
		t.Fatalf("status %d, 1xx %v", resp.StatusCode, got)
	}
}

func TestSwitchingProtocolsWithoutUpgradeFails(t *testing.T) {
	addr, _ := rawServer(t, answer("HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: Upgrade\r\n\r\n"))
	if _, _, err := get(t, newTransport(t, Options{}).With(&countingFallback{}), http.MethodGet, "http://"+addr+"/"); err == nil {
		t.Fatal("101 to a plain request was read")
	}
}

func TestResponseHeaderTimeout(t *testing.T) {
	addr, _ := rawServer(t, func(_ net.Conn, br *bufio.Reader) {
		readRequestHead(br)
		time.Sleep(time.Second)
	})
	rt := newTransport(t, Options{ResponseHeaderTimeout: 50 * time.Millisecond}).With(&countingFallback{})
	_, _, err := get(t, rt, http.MethodGet, "http://"+addr+"/")
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("error %v, want a timeout", err)
	}
}

func TestCanceledRequestEndsAtOnce(t *testing.T) {
	addr, _ := rawServer(t, func(_ net.Conn, br *bufio.Reader) {
		readRequestHead(br)
		time.Sleep(2 * time.Second)
	})
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	r, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/", nil)
	start := time.Now()
	resp, err := newTransport(t, Options{}).With(&countingFallback{}).RoundTrip(r)
	if err == nil {
		_ = resp.Body.Close()
	}
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > time.Second {
		t.Fatalf("error %v after %v, want the context's at once", err, time.Since(start))
	}
}

func TestIdleConnectionsExpire(t *testing.T) {
	addr, conns := rawServer(t, answer("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
	tr := newTransport(t, Options{IdleConnTimeout: 30 * time.Millisecond})
	rt := tr.With(&countingFallback{})
	for i := range 2 {
		if _, _, err := get(t, rt, http.MethodGet, "http://"+addr+"/"); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			time.Sleep(100 * time.Millisecond)
			tr.mu.Lock()
			n := len(tr.idle)
			tr.mu.Unlock()
			if n != 0 {
				t.Errorf("%d idle addresses after the timeout, want 0", n)
			}
		}
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
}

func TestNewRequiresDial(t *testing.T) {
	if _, err := New(Options{}); err == nil {
		t.Fatal("New without Dial succeeded")
	}
}
