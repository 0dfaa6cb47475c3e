package fleet

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/connectors-node/connectors-node/proxy"
	"github.com/connectors-node/connectors-node/test/servers/kubelet"
	"github.com/connectors-node/connectors-node/test/servers/loopback"
)

// Node is a running connectors-node process and a kubelet stand-in
// connected to its CSI socket.
type Node struct {
	Name string
	// Proxy and Ops are the proxy's and the ops endpoints' host:port.
	Proxy, Ops string
	// Kubelet publishes volumes on this node.
	Kubelet *kubelet.Kubelet
	// Root is the node's kubelet root; volumes are mounted below it.
	Root string
	// LogPath is the node's log (standard output and error).
	LogPath string

	cmd *exec.Cmd
	log *os.File
}

// NodeOptions configure StartNode.
type NodeOptions struct {
	// Binary is the connectors-node binary. Required.
	Binary string
	// Name is the node's name (--node-id). Required.
	Name string
	// Kubeconfig authenticates the node. Required.
	Kubeconfig string
	// Env is added to the process's environment (GOGC, GOMEMLIMIT).
	Env []string
	// Args are added to the command line.
	Args []string
}

// WriteNodeKubeconfig writes a kubeconfig with the deploy/ ServiceAccount's
// token into the work directory and returns its path.
func (c *Cluster) WriteNodeKubeconfig(ctx context.Context) (string, error) {
	token, err := c.NodeToken(ctx)
	if err != nil {
		return "", err
	}
	path := filepath.Join(c.Work, "node.kubeconfig")
	return path, c.Env.WriteKubeconfig(path, token)
}

// StartNode starts a node process as a DaemonSet pod would run it (both
// roles, status on), on loopback, and waits until it is ready and its CSI
// socket answers.
func (c *Cluster) StartNode(ctx context.Context, opts NodeOptions) (*Node, error) {
	n := &Node{Name: opts.Name, Root: filepath.Join(c.Work, "kubelet", opts.Name)}
	var err error
	if n.Proxy, err = loopback.FreeAddr(); err != nil {
		return nil, err
	}
	if n.Ops, err = loopback.FreeAddr(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(n.Root, 0o750); err != nil {
		return nil, err
	}
	socket := filepath.Join(c.Work, "csi-"+opts.Name+".sock")
	n.LogPath = filepath.Join(c.Work, opts.Name+".log")
	if n.log, err = os.Create(n.LogPath); err != nil {
		return nil, err
	}
	args := append([]string{
		"--node-id=" + opts.Name,
		"--kubeconfig=" + opts.Kubeconfig,
		"--csi-endpoint=unix://" + socket,
		"--kubelet-root=" + n.Root,
		"--proxy-listen=" + n.Proxy,
		"--ops-listen=" + n.Ops,
		"--public-url=http://" + n.Proxy,
		"--audience=" + Audience,
		"--allow-loopback-upstreams",
		"--audit-log=/dev/null",
		// The bench reads /metrics without a token, on loopback.
		"--metrics-auth=false",
	}, opts.Args...)
	args = append(args, onePlaysManyPods(args)...)
	n.cmd = exec.Command(opts.Binary, args...) //nolint:gosec,noctx // the binary the Makefile built; stopped by Stop
	n.cmd.Env = append(os.Environ(), opts.Env...)
	n.cmd.Stdout, n.cmd.Stderr = n.log, n.log
	if err := n.cmd.Start(); err != nil {
		_ = n.log.Close()
		return nil, err
	}
	if err := n.waitReady(ctx, socket); err != nil {
		n.Stop()
		return nil, err
	}
	return n, nil
}

func (n *Node) waitReady(ctx context.Context, socket string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+n.Ops+"/readyz", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("node %s not ready; its log is %s", n.Name, n.LogPath)
		case <-time.After(200 * time.Millisecond):
		}
	}
	k, err := kubelet.Dial(socket)
	if err != nil {
		return err
	}
	n.Kubelet = k
	return k.WaitReady(ctx)
}

// PID is the node process's id.
func (n *Node) PID() int { return n.cmd.Process.Pid }

// Stop sends SIGTERM and waits for the process to exit.
func (n *Node) Stop() {
	if n.Kubelet != nil {
		_ = n.Kubelet.Close()
	}
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = n.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = n.cmd.Process.Kill()
		<-done
	}
	_ = n.log.Close()
}

// LastLines returns the last n lines of a log file, joined by " | ".
func LastLines(path string, n int) string {
	raw, err := os.ReadFile(path) //nolint:gosec // a node log the benchmark wrote
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], " | ")
}

// onePlaysManyPods lifts the per-source connection limits to
// --max-connections: every load connects from one loopback address in
// place of many pods, each with its own.
func onePlaysManyPods(args []string) []string {
	most := strconv.Itoa(proxy.DefaultMaxConnections)
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--max-connections="); ok {
			most = v
		}
	}
	return []string{"--max-connections-per-source=" + most, "--max-unauthenticated-per-source=" + most}
}
