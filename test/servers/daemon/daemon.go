package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// stopGrace is how long Stop waits after SIGTERM before SIGKILL.
const stopGrace = 10 * time.Second

// Process is a started server program.
type Process struct {
	name string
	log  string
	cmd  *exec.Cmd
	done chan struct{}
}

// Start starts cmd with its standard output and error in the file logPath
// (created or truncated). name names the program in errors.
func Start(name string, cmd *exec.Cmd, logPath string) (*Process, error) {
	out, err := os.Create(logPath) //nolint:gosec // the test's own directory
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		_ = out.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &Process{name: name, log: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		_ = out.Close()
		close(p.done)
	}()
	return p, nil
}

// WaitReady sends GET url every 100 ms until ready accepts a response
// (any response when ready is nil). It fails with the program's log if the
// program exits first, and after timeout.
func (p *Process) WaitReady(url string, timeout time.Duration, ready func(*http.Response) bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		if resp, err := http.DefaultClient.Do(req); err == nil {
			_ = resp.Body.Close()
			if ready == nil || ready(resp) {
				return nil
			}
		}
		select {
		case <-p.done:
			b, _ := os.ReadFile(p.log)
			return fmt.Errorf("%s exited at start: %s", p.name, b)
		case <-ctx.Done():
			return errors.New(p.name + " not answering within " + timeout.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// PID is the program's process id.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Stop sends SIGTERM, waits for the program to exit, and kills it if it
// has not within 10 s. Stop on a nil Process does nothing.
func (p *Process) Stop() { p.StopWithin(stopGrace) }

// StopWithin is Stop with a grace period of its own, for a program that
// drains for longer on SIGTERM.
func (p *Process) StopWithin(grace time.Duration) {
	if p == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}
