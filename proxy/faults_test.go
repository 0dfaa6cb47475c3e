package proxy

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"

	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
)

// panickyObjects panics when the Connector "boom" is read.
type panickyObjects struct{ *fakeObjects }

func (o panickyObjects) Connector(ctx context.Context, ns, name string) (*v1alpha1.Connector, error) {
	if name == "boom" {
		panic("a value that must not be logged")
	}
	return o.fakeObjects.Connector(ctx, ns, name)
}

// auditLine waits for the audit line whose path has suffix and decodes it.
func auditLine(t *testing.T, logs *logBuffer, suffix string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, line := range strings.Split(logs.String(), "\n") {
			var rec map[string]any
			if json.Unmarshal([]byte(line), &rec) != nil || rec["msg"] != "request" {
				continue
			}
			if p, _ := rec["path"].(string); strings.HasSuffix(p, suffix) {
				return rec
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no audit line for %s in:\n%s", suffix, logs.String())
	return nil
}

// TestHandlerPanicIs500AndAudited pins the recover in serve: before it, a
// panic gave the client EOF, wrote nothing to the node log and left an audit
// line with status 0. The server keeps serving afterwards.
func TestHandlerPanicIs500AndAudited(t *testing.T) {
	o := newFakeObjects()
	o.connector("team-a", "boom", "https://api.example.test:1", "")
	e := startEnv(t, o, nil, func(opts *Options) { opts.Objects = panickyObjects{o} })
	req := newRequest(t, http.MethodGet, e.url+"/namespaces/team-a/connectors/boom/x", nil)
	req.Header.Set("Authorization", "Bearer "+tokA)
	code, _, body := do(t, e.reverseClient(), req, nil)
	if code != http.StatusInternalServerError {
		t.Fatalf("panic answered %d %q, want 500", code, body)
	}
	rec := auditLine(t, e.logs, "/connectors/boom/x")
	if rec["status"] != float64(500) || rec["error"] == nil {
		t.Errorf("audit line %v, want status 500 with an error", rec)
	}
	logs := e.logs.String()
	if !strings.Contains(logs, "proxy handler panicked") || !strings.Contains(logs, "goroutine") {
		t.Errorf("the node log has no stack of the panic:\n%s", logs)
	}
	if strings.Contains(logs, "must not be logged") {
		t.Errorf("the panic value was logged")
	}
	// Still serving.
	req = newRequest(t, http.MethodGet, e.url+"/namespaces/team-a/connectors/none/", nil)
	req.Header.Set("Authorization", "Bearer "+tokA)
	if code, _, _ := do(t, e.reverseClient(), req, nil); code != http.StatusNotFound {
		t.Errorf("after the panic: %d, want 404", code)
	}
}

// TestUpstreamResetMidBodyIsAuditedAsAborted pins that a response the
// upstream cuts off is audited with the error "response aborted" instead of
// as a clean 200, and that net/http's ErrorLog reaches the node log.
func TestUpstreamResetMidBodyIsAuditedAsAborted(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Length", "100000")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, strings.Repeat("x", 1000))
		_ = http.NewResponseController(w).Flush()
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			if tc, ok := conn.(*net.TCPConn); ok {
				_ = tc.SetLinger(0) // a reset, not a clean close
			}
			_ = conn.Close()
		}
	}))
	t.Cleanup(up.Close)
	o := newFakeObjects()
	o.secret("team-a", "basic", corev1.SecretTypeBasicAuth, map[string]string{"username": "u", "password": "p"})
	o.connector("team-a", "cut", "http://cut.example.test:"+port(t, up), "basic")
	e := startEnv(t, o, nil)
	req := newRequest(t, http.MethodGet, e.url+"/namespaces/team-a/connectors/cut/big", nil)
	req.Header.Set("Authorization", "Bearer "+tokA)
	resp, err := e.reverseClient().Do(req)
	if err == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
	}
	if err == nil {
		t.Errorf("the client read a whole body from a cut-off response")
	}
	rec := auditLine(t, e.logs, "/connectors/cut/big")
	if rec["error"] != "response aborted" {
		t.Errorf("audit line %v, want error \"response aborted\"", rec)
	}
	if !strings.Contains(e.logs.String(), "net/http") {
		t.Errorf("the body copy error did not reach the node log:\n%s", e.logs.String())
	}
}

// TestConnectionsBeyondTheLimitGet503 pins MaxConnections: connections
// beyond it are answered 503 and counted; a freed slot serves again.
func TestConnectionsBeyondTheLimitGet503(t *testing.T) {
	e := startEnvServer(t, newFakeObjects(), nil, ServerOptions{MaxConnections: 2})
	held := []net.Conn{dial(t, e.addr), dial(t, e.addr)}
	waitFor(t, func() bool { return testutil.ToFloat64(e.proxy.metrics.connsOpen) == 2 })
	c := dial(t, e.addr)
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	b, _ := io.ReadAll(c)
	if !strings.HasPrefix(string(b), "HTTP/1.1 503 ") {
		t.Fatalf("third connection got %q, want a 503", b)
	}
	if n := testutil.ToFloat64(e.proxy.metrics.connsRefused.WithLabelValues(reasonTotal)); n != 1 {
		t.Errorf("refused connections counted %v, want 1", n)
	}
	_ = held[0].Close()
	waitFor(t, func() bool { return testutil.ToFloat64(e.proxy.metrics.connsOpen) == 1 })
	req := newRequest(t, http.MethodGet, e.url+"/healthz-none", nil)
	if code, _, _ := do(t, e.reverseClient(), req, nil); code == http.StatusServiceUnavailable {
		t.Errorf("a freed slot still refuses")
	}
	_ = held[1].Close()
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
