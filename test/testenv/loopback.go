package testenv

import (
	"context"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"testing"
)

// ListenSecondLoopback listens on 127.0.0.2 (any port), a loopback host
// other than 127.0.0.1. Without the address and without root the test is
// skipped, or failed in CI (see LoopbackDialer).
func ListenSecondLoopback(t testing.TB) net.Listener {
	t.Helper()
	const addr = "127.0.0.2"
	ln, err := listenLoopback(t, addr)
	if err != nil {
		SkipOrFail(t, "no second loopback address %s (as root the test adds it to lo): %v", addr, err)
		return nil
	}
	return ln
}

// LoopbackDialer returns a dialer whose connections come from host, an
// address in 127.0.0.0/8, so that a test can play several clients. Linux
// routes all of 127.0.0.0/8 to lo, but some containers give lo only
// 127.0.0.1/32; then, as root, it adds host/32 to lo for the test and
// removes it after. Without the address and without root the test is
// skipped, or failed in CI.
func LoopbackDialer(t testing.TB, host string) *net.Dialer {
	t.Helper()
	ln, err := listenLoopback(t, host)
	if err != nil {
		SkipOrFail(t, "no loopback address %s (as root the test adds it to lo): %v", host, err)
		return nil
	}
	_ = ln.Close()
	return &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(host)}}
}

// listenLoopback listens on host:0, adding host to lo first when it is
// missing and the test runs as root on Linux.
func listenLoopback(t testing.TB, host string) (net.Listener, error) {
	t.Helper()
	if ip, err := netip.ParseAddr(host); err != nil || !ip.Is4() || !ip.IsLoopback() {
		t.Fatalf("%q is not an address in 127.0.0.0/8", host)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(context.Background(), "tcp", net.JoinHostPort(host, "0"))
	if err != nil && runtime.GOOS == "linux" && os.Geteuid() == 0 {
		if out, aerr := exec.CommandContext(context.Background(), "ip", "addr", "add", host+"/32", "dev", "lo").CombinedOutput(); aerr == nil { //nolint:gosec // G204: an address in 127.0.0.0/8, checked above
			t.Cleanup(func() {
				_ = exec.CommandContext(context.Background(), "ip", "addr", "del", host+"/32", "dev", "lo").Run() //nolint:gosec // G204: as above
			})
			ln, err = lc.Listen(context.Background(), "tcp", net.JoinHostPort(host, "0"))
		} else {
			t.Logf("adding %s to lo: %v: %s", host, aerr, out)
		}
	}
	return ln, err
}
