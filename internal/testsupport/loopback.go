package testsupport

import (
	"context"
	"net"
	"os"
	"os/exec"
	"runtime"
	"testing"
)

// ListenSecondLoopback listens on 127.0.0.2 (any port), a loopback host
// other than 127.0.0.1. Linux routes all of 127.0.0.0/8 to lo, but some
// containers give lo only 127.0.0.1/32; then, as root, it adds
// 127.0.0.2/32 to lo for the test and removes it after. Without the
// address and without root the test is skipped, or failed in CI.
func ListenSecondLoopback(t testing.TB) net.Listener {
	t.Helper()
	const addr = "127.0.0.2"
	var lc net.ListenConfig
	ln, err := lc.Listen(context.Background(), "tcp", addr+":0")
	if err != nil && runtime.GOOS == "linux" && os.Geteuid() == 0 {
		if out, aerr := exec.CommandContext(context.Background(), "ip", "addr", "add", addr+"/32", "dev", "lo").CombinedOutput(); aerr == nil {
			t.Cleanup(func() {
				_ = exec.CommandContext(context.Background(), "ip", "addr", "del", addr+"/32", "dev", "lo").Run()
			})
			ln, err = lc.Listen(context.Background(), "tcp", addr+":0")
		} else {
			t.Logf("adding %s to lo: %v: %s", addr, aerr, out)
		}
	}
	if err != nil {
		SkipOrFail(t, "no second loopback address %s (as root the test adds it to lo): %v", addr, err)
		return nil
	}
	return ln
}
