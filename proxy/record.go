package proxy

import (
	"io"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Modes of a request, used in metrics and audit lines.
const (
	modeReverse = "reverse"
	modeForward = "forward"
	modeConnect = "connect"
	modeTunnel  = "tunnel"
	modeMITM    = "mitm"
	// modeAPI is the Connectors API gateway (gateway.go).
	modeAPI = "api"
)

// entry collects what the audit line and the metrics report for one request.
type entry struct {
	start     time.Time
	mode      string
	user      string
	connector string
	method    string
	host      string
	path      string
	status    int
	bytes     atomic.Int64
	injected  bool
	// source is the client's address, for the pod binding.
	source netip.Addr
	// binding names the token binding that failed, if one did.
	binding string
	body    *countingBody
	err     error
}

func (e *entry) modeOr(def string) string {
	if e == nil {
		return def
	}
	return e.mode
}

// finish writes the audit line and updates the metrics.
func (p *Proxy) finish(e *entry) {
	d := p.opts.Now().Sub(e.start)
	var in int64
	if e.body != nil {
		in = e.body.n.Load()
	}
	out := e.bytes.Load()
	p.metrics.observe(e, in, out)
	p.audit.write(e, d, in, out)
}

// recorder captures the status and the size of a response. It unwraps for
// http.ResponseController (flush, hijack, deadlines).
type recorder struct {
	http.ResponseWriter
	e *entry
	// scrub removes injected credentials from every header block written,
	// informational ones included.
	scrub       *scrubber
	wroteHeader bool
}

func (w *recorder) WriteHeader(code int) {
	w.scrub.header(w.Header())
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		w.ResponseWriter.WriteHeader(code)
		return
	}
	if !w.wroteHeader {
		w.wroteHeader = true
		w.e.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *recorder) Write(b []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	n, err := w.ResponseWriter.Write(b)
	w.e.bytes.Add(int64(n))
	return n, err
}

// ReadFrom keeps io.Copy's fast path of the underlying writer.
func (w *recorder) ReadFrom(r io.Reader) (int64, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	n, err := io.Copy(w.ResponseWriter, r)
	w.e.bytes.Add(n)
	return n, err
}

func (w *recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush is here because httputil.ReverseProxy checks for http.Flusher on
// some paths.
func (w *recorder) Flush() {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// countingBody counts request body bytes and remembers a read error, which
// tells a malformed client body (400) from an upstream failure (502). The
// upstream transport reads it from its own goroutine.
type countingBody struct {
	io.ReadCloser
	n   atomic.Int64
	mu  sync.Mutex
	err error
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	if err != nil && err != io.EOF {
		b.mu.Lock()
		if b.err == nil {
			b.err = err
		}
		b.mu.Unlock()
	}
	return n, err
}

func (b *countingBody) readErr() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}
