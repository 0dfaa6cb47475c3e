package testenv

import (
	"net"
	"testing"
)

// recordingTB records how SkipOrFail ended a test.
type recordingTB struct {
	testing.TB
	skipped, failed bool
}

func (r *recordingTB) Helper()               {}
func (r *recordingTB) Skipf(string, ...any)  { r.skipped = true }
func (r *recordingTB) Fatalf(string, ...any) { r.failed = true }

func TestSkipOrFail(t *testing.T) {
	t.Setenv("CI", "")
	r := &recordingTB{TB: t}
	SkipOrFail(r, "tool %s missing", "x")
	if !r.skipped || r.failed {
		t.Errorf("outside CI: skipped %v failed %v", r.skipped, r.failed)
	}
	t.Setenv("CI", "true")
	r = &recordingTB{TB: t}
	SkipOrFail(r, "tool %s missing", "x")
	if r.skipped || !r.failed {
		t.Errorf("in CI: skipped %v failed %v", r.skipped, r.failed)
	}
}

func TestListenSecondLoopback(t *testing.T) {
	ln := ListenSecondLoopback(t)
	defer func() { _ = ln.Close() }()
	if host, _, _ := net.SplitHostPort(ln.Addr().String()); host != "127.0.0.2" {
		t.Errorf("listening on %s", ln.Addr())
	}
}
