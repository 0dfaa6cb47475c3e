package fleet

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/connectors-node/connectors-node/proxy"
	"github.com/connectors-node/connectors-node/test/nodeproc"
)

// Node is a running connectors-node process and a kubelet stand-in
// connected to its CSI socket, with the benchmarks' methods.
type Node struct {
	*nodeproc.Node
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
	path := filepath.Join(c.Work, "node.kubeconfig")
	return path, nodeproc.WriteKubeconfig(ctx, c.Env, path, 2*time.Hour)
}

// StartNode starts a node process as a DaemonSet pod would run it (both
// roles, status on), on loopback, and waits until it is ready and its CSI
// socket answers.
func (c *Cluster) StartNode(ctx context.Context, opts NodeOptions) (*Node, error) {
	args := append([]string{
		"--audience=" + Audience,
		"--audit-log=/dev/null",
		// The bench reads /metrics without a token, on loopback.
		"--metrics-auth=false",
	}, opts.Args...)
	args = append(args, onePlaysManyPods(args)...)
	n, err := nodeproc.Start(ctx, nodeproc.Options{
		Binary:       opts.Binary,
		Name:         opts.Name,
		Kubeconfig:   opts.Kubeconfig,
		Work:         c.Work,
		Root:         filepath.Join(c.Work, "kubelet", opts.Name),
		Socket:       filepath.Join(c.Work, "csi-"+opts.Name+".sock"),
		LogPath:      filepath.Join(c.Work, opts.Name+".log"),
		Env:          opts.Env,
		Args:         args,
		ReadyTimeout: 2 * time.Minute,
	})
	if err != nil {
		return nil, err
	}
	return &Node{Node: n}, nil
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
