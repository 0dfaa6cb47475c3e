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
