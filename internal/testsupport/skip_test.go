package testsupport

import "testing"

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
