package fleet

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/connectors-node/connectors-node/test/servers/kubelet"
)

// Pod is a benchmark pod on a node: its object, its bound token and the
// Connectors it uses.
type Pod struct {
	Pod        kubelet.Pod
	Token      string
	Connectors []ConnectorRef
}

// RunPod creates a pod of ServiceAccount PodServiceAccount in ns on node,
// with the loopback address as its IP (the source address of the
// benchmark's connections), and mints its bound token.
func (c *Cluster) RunPod(ctx context.Context, node, ns, name string) (Pod, error) {
	p, err := kubelet.RunPod(ctx, c.Kube, kubelet.Pod{Namespace: ns, Name: name, ServiceAccount: PodServiceAccount}, node, "127.0.0.1")
	if err != nil {
		return Pod{}, err
	}
	tok, err := kubelet.MintToken(ctx, c.Kube, p, Audience, 2*time.Hour)
	if err != nil {
		return Pod{}, err
	}
	return Pod{Pod: p, Token: tok.Token}, nil
}

// Publish publishes one volume of pod naming the connectors (all in the
// pod's namespace) on node n, with the git configuration, as kubelet
// would; the target is created under the node's kubelet root.
func (n *Node) Publish(ctx context.Context, pod *Pod, volume string, connectors []ConnectorRef) (target string, err error) {
	target = filepath.Join(n.Root, "pods", pod.Pod.UID, "volumes", "kubernetes.io~csi", volume, "mount")
	if err := os.MkdirAll(target, 0o750); err != nil {
		return "", err
	}
	names := make([]string, len(connectors))
	for i, c := range connectors {
		names[i] = c.Name
	}
	attrs := map[string]string{"connectors": strings.Join(names, ","), "configuration.names": "gitconfig"}
	tokens := map[string]kubelet.Token{Audience: {Token: pod.Token, ExpirationTimestamp: time.Now().Add(2 * time.Hour)}}
	if err := n.Kubelet.Publish(ctx, volume+"-"+pod.Pod.UID, target, pod.Pod, attrs, tokens); err != nil {
		return "", fmt.Errorf("publishing %s of pod %s/%s on %s: %w", volume, pod.Pod.Namespace, pod.Pod.Name, n.Name, err)
	}
	pod.Connectors = append(pod.Connectors, connectors...)
	return target, nil
}

// Unpublish unpublishes a volume Publish published.
func (n *Node) Unpublish(ctx context.Context, pod Pod, volume, target string) error {
	return n.Kubelet.Unpublish(ctx, volume+"-"+pod.Pod.UID, target)
}
