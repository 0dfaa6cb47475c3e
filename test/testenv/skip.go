package testenv

import (
	"fmt"
	"os"
	"testing"
)

// InCI reports whether the tests run in CI: CI=true.
func InCI() bool { return os.Getenv("CI") == "true" }

// SkipOrFail skips t for a missing prerequisite, or fails it in CI, where
// every prerequisite must be present.
func SkipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if InCI() {
		t.Fatalf("required in CI: %s", msg)
		return
	}
	t.Skipf("skipping: %s", msg)
}

// NeedRoot skips t when the process is not root, or fails it in CI, which
// runs as root: what names what needs it (a tmpfs mount, a chown).
func NeedRoot(t testing.TB, what string) {
	t.Helper()
	if os.Geteuid() != 0 {
		SkipOrFail(t, "%s needs root (run make test as root)", what)
	}
}
