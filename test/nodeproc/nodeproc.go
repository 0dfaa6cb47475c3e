// Package nodeproc starts the connectors-node binary as a process against a
// test API server, as a DaemonSet pod runs it: it builds or takes the
// binary, writes the node's kubeconfig, picks loopback addresses, captures
// the process's output in a log file, waits until /readyz and the CSI Probe
// say ready, and stops the process. The end-to-end suite, the demo and the
// benchmarks start their nodes with it. It does not import testing.
package nodeproc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/connectors-node/connectors-node/test/apiserver"
	"github.com/connectors-node/connectors-node/test/servers/daemon"
	"github.com/connectors-node/connectors-node/test/servers/kubelet"
	"github.com/connectors-node/connectors-node/test/servers/loopback"
)

const (
	// Namespace is the namespace of deploy/'s identity of the node.
	Namespace = "connectors-system"
	// ServiceAccount is deploy/'s ServiceAccount of the node.
	ServiceAccount = "connectors-node"

	// DefaultReadyTimeout bounds the wait for a started node to be ready.
	DefaultReadyTimeout = 60 * time.Second
	// stopGrace is how long Stop waits after SIGTERM before it kills.
	stopGrace = 30 * time.Second
)

// MainPackage is the main package of the connectors-node binary.
const MainPackage = "./cmd/connectors-node"

// Build compiles a main package of this repository, such as MainPackage, into
// out, as `make build` does.
func Build(ctx context.Context, pkg, out string) error {
	gobin, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("building %s: %w", pkg, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, gobin, "build", "-o", out, pkg) //nolint:gosec // the go tool building this repository
	cmd.Dir = apiserver.RepoRoot()
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
	}
	return nil
}

// WriteKubeconfig mints a token of deploy/'s node ServiceAccount, valid for
// lifetime, and writes a kubeconfig with it to path. A node started with it
// has exactly the rights deploy/base/rbac.yaml gives, so every run also
// proves that they are enough.
func WriteKubeconfig(ctx context.Context, env *apiserver.Env, path string, lifetime time.Duration) error {
	secs := int64(lifetime / time.Second)
	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &secs}}
	resp, err := env.Kube.CoreV1().ServiceAccounts(Namespace).CreateToken(ctx, ServiceAccount, req, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("minting a token for %s/%s: %w", Namespace, ServiceAccount, err)
	}
	return env.WriteKubeconfig(path, resp.Status.Token)
}

// Options configure Start.
type Options struct {
	// Binary is the connectors-node binary. Required.
	Binary string
	// Name is the node's name (--node-id). Required.
	Name string
	// Kubeconfig authenticates the node (--kubeconfig). Required.
	Kubeconfig string
	// Work is the directory the node's socket, log and, by default, kubelet
	// root are made in. Required.
	Work string
	// Root is the kubelet root (--kubelet-root); volumes are mounted below
	// it. Default: Work.
	Root string
	// Socket is the CSI socket's path. Default: Work/csi/csi.sock.
	Socket string
	// LogPath receives the process's standard output and error. Default:
	// Work/connectors-node.log.
	LogPath string
	// PublicHost is the host of the proxy's public URL (--public-url), with
	// the proxy's port. Default: the proxy's loopback address.
	PublicHost string
	// Env sets variables of the process's environment over the caller's:
	// "PATH=" runs it with an empty PATH.
	Env []string
	// Args are added to the command line after the ones Start sets.
	Args []string
	// ReadyTimeout bounds the wait for readiness. Default: DefaultReadyTimeout.
	ReadyTimeout time.Duration
}

// Node is a running connectors-node process and a kubelet stand-in
// connected to its CSI socket.
type Node struct {
	Name string
	// Proxy and Ops are the proxy's and the ops endpoints' host:port.
	Proxy, Ops string
	// PublicURL is the proxy's public URL, how pods reach it.
	PublicURL string
	// Root is the kubelet root; Socket the CSI socket; LogPath the log.
	Root, Socket, LogPath string
	// Args is the command line after the binary.
	Args []string
	// Kubelet publishes volumes on this node.
	Kubelet *kubelet.Kubelet

	proc *daemon.Process
}

// Start starts a node process with both roles on free loopback addresses
// and waits until /readyz answers 200 and the CSI Probe says ready. On
// failure it stops what it started; the error names the log, and holds it
// when the process exited at start.
func Start(ctx context.Context, opts Options) (*Node, error) {
	if opts.Binary == "" || opts.Name == "" || opts.Kubeconfig == "" || opts.Work == "" {
		return nil, errors.New("nodeproc: Binary, Name, Kubeconfig and Work are required")
	}
	bin, err := filepath.Abs(opts.Binary)
	if err != nil {
		return nil, err
	}
	n := &Node{
		Name:    opts.Name,
		Root:    orDefault(opts.Root, opts.Work),
		Socket:  orDefault(opts.Socket, filepath.Join(opts.Work, "csi", "csi.sock")),
		LogPath: orDefault(opts.LogPath, filepath.Join(opts.Work, "connectors-node.log")),
	}
	if n.Proxy, err = loopback.FreeAddr(); err != nil {
		return nil, err
	}
	if n.Ops, err = loopback.FreeAddr(); err != nil {
		return nil, err
	}
	n.PublicURL = "http://" + n.Proxy
	if opts.PublicHost != "" {
		_, port, _ := net.SplitHostPort(n.Proxy)
		n.PublicURL = "http://" + net.JoinHostPort(opts.PublicHost, port)
	}
	if err := os.MkdirAll(n.Root, 0o750); err != nil {
		return nil, err
	}
	n.Args = append([]string{
		"--node-id=" + opts.Name,
		"--kubeconfig=" + opts.Kubeconfig,
		"--csi-endpoint=unix://" + n.Socket,
		"--kubelet-root=" + n.Root,
		"--proxy-listen=" + n.Proxy,
		"--ops-listen=" + n.Ops,
		"--public-url=" + n.PublicURL,
		"--allow-loopback-upstreams",
	}, opts.Args...)
	cmd := exec.Command(bin, n.Args...) //nolint:gosec,noctx // the binary the caller built; stopped by Stop
	cmd.Env = withEnv(os.Environ(), opts.Env)
	if n.proc, err = daemon.Start("node "+n.Name, cmd, n.LogPath); err != nil {
		return nil, err
	}
	timeout := opts.ReadyTimeout
	if timeout <= 0 {
		timeout = DefaultReadyTimeout
	}
	if err := n.waitReady(ctx, timeout); err != nil {
		n.Stop()
		return nil, fmt.Errorf("%w; its log is %s", err, n.LogPath)
	}
	return n, nil
}

// waitReady waits until /readyz answers 200, then until the CSI Probe says
// ready.
func (n *Node) waitReady(ctx context.Context, timeout time.Duration) error {
	ok := func(resp *http.Response) bool { return resp.StatusCode == http.StatusOK }
	if err := n.proc.WaitReady("http://"+n.Ops+"/readyz", timeout, ok); err != nil {
		return err
	}
	k, err := kubelet.Dial(n.Socket)
	if err != nil {
		return err
	}
	n.Kubelet = k
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return k.WaitReady(ctx)
}

// PID is the node process's id.
func (n *Node) PID() int { return n.proc.PID() }

// Stop closes the kubelet stand-in, sends SIGTERM and waits for the process
// to exit, killing it after 30 s (the binary drains for up to its
// --shutdown-timeout, 20 s). A second Stop does nothing.
func (n *Node) Stop() {
	if n.Kubelet != nil {
		_ = n.Kubelet.Close()
		n.Kubelet = nil
	}
	n.proc.StopWithin(stopGrace)
}

// Tail returns the last n lines of a log file, for set-up errors.
func Tail(path string, n int) string {
	b, err := os.ReadFile(path) //nolint:gosec // a node log this package wrote
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// withEnv returns env with the variables of set put over it.
func withEnv(env, set []string) []string {
	out := make([]string, 0, len(env)+len(set))
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		if !setsVar(set, name) {
			out = append(out, kv)
		}
	}
	return append(out, set...)
}

func setsVar(set []string, name string) bool {
	for _, kv := range set {
		if strings.HasPrefix(kv, name+"=") {
			return true
		}
	}
	return false
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
