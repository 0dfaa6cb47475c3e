package main

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"
)

// proxyProc is the proxy running as a child process.
type proxyProc struct {
	cmd    *exec.Cmd
	addr   string
	caFile string
	done   chan struct{}
}

// startProxy runs this binary's proxy subcommand and waits for its
// address.
func startProxy(ctx context.Context, work string, spec proxySpec) (*proxyProc, error) {
	dir := filepath.Join(work, "proxy")
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, err
	}
	b, err := json.Marshal(spec) //nolint:gosec // G117: a throw-away loopback credential handed to the child proxy
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "spec.json"), b, 0o600); err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(dir, "proxy.log")) //nolint:gosec // G304: this run's own work directory
	if err != nil {
		return nil, err
	}
	p := &proxyProc{caFile: filepath.Join(dir, "ca.crt"), done: make(chan struct{})}
	p.cmd = exec.CommandContext(ctx, self, "proxy", "-dir", dir) //nolint:gosec // G204: runs this binary
	p.cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "BENCH_CPUPROFILE=" + os.Getenv("BENCH_CPUPROFILE")}
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if err := p.cmd.Start(); err != nil {
		_ = logf.Close()
		return nil, err
	}
	go func() {
		_ = p.cmd.Wait()
		_ = logf.Close()
		close(p.done)
	}()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			return nil, errors.New("proxy exited; see " + logf.Name())
		case <-time.After(50 * time.Millisecond):
		}
		if b, err := os.ReadFile(filepath.Join(dir, "addr")); err == nil && len(b) > 0 { //nolint:gosec // G304: this run's own work directory
			var d net.Dialer
			c, err := d.DialContext(ctx, "tcp", string(b))
			if err == nil {
				_ = c.Close()
				p.addr = string(b)
				return p, nil
			}
		}
	}
	p.stop()
	return nil, errors.New("proxy did not start within 20s")
}

func (p *proxyProc) rss() (int64, error) { return readRSS(p.cmd.Process.Pid) }

// stop ends the proxy: SIGTERM, then kill after 5s.
func (p *proxyProc) stop() {
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// rssSampler records the peak VmRSS of a process every 20ms.
type rssSampler struct {
	once sync.Once
	quit chan struct{}
	wg   sync.WaitGroup
	mu   sync.Mutex
	peak int64
}

func newRSSSampler(pid int) *rssSampler {
	s := &rssSampler{quit: make(chan struct{})}
	s.wg.Go(func() {
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			if kb, err := readRSS(pid); err == nil {
				s.mu.Lock()
				s.peak = max(s.peak, kb)
				s.mu.Unlock()
			}
			select {
			case <-s.quit:
				return
			case <-t.C:
			}
		}
	})
	return s
}

// stop ends sampling and returns the peak in KiB.
func (s *rssSampler) stop() int64 {
	s.once.Do(func() { close(s.quit) })
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peak
}
