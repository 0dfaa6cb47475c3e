package apiserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Outages of the API server, for tests of how clients ride them out. Each
// acts on the real kube-apiserver process; etcd keeps running, so a restart
// serves the same objects, certificates and token signing key. Use them on an
// Env of the test's own (Start), never on the Shared one.

// Pause stops the API server with SIGSTOP: it keeps its port and accepts
// connections but answers nothing, like a hung server. Resume undoes it.
func (e *Env) Pause() error {
	if err := e.signal(syscall.SIGSTOP); err != nil {
		return err
	}
	e.paused = true
	return nil
}

// Resume continues a paused API server with SIGCONT.
func (e *Env) Resume() error {
	if err := e.signal(syscall.SIGCONT); err != nil {
		return err
	}
	e.paused = false
	return nil
}

// Kill ends the API server with SIGKILL and waits until it is gone, so its
// port refuses connections. Restart starts it again.
func (e *Env) Kill() error {
	pid, err := e.apiServerPID()
	if err != nil {
		return err
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		return fmt.Errorf("killing kube-apiserver: %w", err)
	}
	if e.restarted != nil {
		<-e.restartedDone
		e.restarted = nil
	}
	for range 600 {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d/cmdline", pid)); err != nil {
			return nil
		}
		if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); bytes.Contains(b, []byte(") Z ")) {
			return nil // a zombie holds no port
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("kube-apiserver did not exit after SIGKILL")
}

// Restart starts a killed API server again with the same command line and
// waits until it is healthy.
func (e *Env) Restart(ctx context.Context) error {
	if e.apiArgs == nil {
		return errors.New("restart: the API server was not killed with Kill")
	}
	cmd := exec.Command(e.apiArgs[0], e.apiArgs[1:]...) //nolint:gosec,noctx // the command line of the API server this Env started; it outlives ctx, which bounds only the wait
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr := &lockedBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("restarting kube-apiserver: %w", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	e.restarted, e.restartedDone = cmd, exited
	if err := e.waitHealthy(ctx, exited); err != nil {
		tail := stderr.String()
		if len(tail) > 2000 {
			tail = tail[len(tail)-2000:]
		}
		return fmt.Errorf("%w; its log ends: %s", err, tail)
	}
	return nil
}

// stopRestarted stops an API server Restart started; Stop calls it first.
func (e *Env) stopRestarted() {
	if e.paused {
		_ = e.Resume() // a stopped process cannot handle the SIGTERM of Stop
	}
	if e.restarted == nil {
		return
	}
	_ = e.restarted.Process.Signal(syscall.SIGCONT)
	_ = e.restarted.Process.Kill()
	<-e.restartedDone
	e.restarted = nil
}

func (e *Env) signal(sig syscall.Signal) error {
	pid, err := e.apiServerPID()
	if err != nil {
		return err
	}
	if err := syscall.Kill(pid, sig); err != nil {
		return fmt.Errorf("signalling kube-apiserver: %w", err)
	}
	return nil
}

// apiServerPID finds the kube-apiserver process serving e.Config.Host and,
// the first time, remembers its command line for Restart.
func (e *Env) apiServerPID() (int, error) {
	if e.restarted != nil {
		return e.restarted.Process.Pid, nil
	}
	u, err := url.Parse(e.Config.Host)
	if err != nil {
		return 0, err
	}
	flag := "--secure-port=" + u.Port()
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p) //nolint:gosec // /proc entries
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if filepath.Base(args[0]) != "kube-apiserver" || !containsArg(args, flag) {
			continue
		}
		pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		if err != nil {
			continue
		}
		if e.apiArgs == nil {
			e.apiArgs = args
		}
		return pid, nil
	}
	return 0, fmt.Errorf("no kube-apiserver process with %s", flag)
}

func containsArg(args []string, want string) bool {
	for _, a := range args {
		if a == want {
			return true
		}
	}
	return false
}

// waitHealthy polls /readyz, as the admin user, until the API server
// answers ok, it exits, or ctx ends.
func (e *Env) waitHealthy(ctx context.Context, exited <-chan struct{}) error {
	for {
		tryCtx, cancel := context.WithTimeout(ctx, time.Second)
		err := e.Kube.Discovery().RESTClient().Get().AbsPath("/readyz").Do(tryCtx).Error()
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the restarted kube-apiserver: %w (last: %w)", ctx.Err(), err)
		case <-exited:
			return errors.New("the restarted kube-apiserver exited")
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// lockedBuffer is a bytes.Buffer safe for a writer and a reader.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
