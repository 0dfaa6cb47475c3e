package node

import (
	"context"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The DaemonSet's pod on every node, from the image, serves the CSI socket
// its kubelet calls: the driver registered through the registrar stand-in,
// and the pod's container runs the image make image built, on the pod
// network.
func TestDaemonSetPodFromTheImageServes(t *testing.T) {
	n := suite(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pods, err := n.env.Kube.CoreV1().Pods("connectors-system").List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=connectors-node"})
	if err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) != len(n.nodes) {
		t.Fatalf("%d DaemonSet pods, want one per node (%d)", len(pods.Items), len(n.nodes))
	}
	onNode := map[string]bool{}
	for _, p := range pods.Items {
		onNode[p.Spec.NodeName] = true
		if len(p.OwnerReferences) == 0 || p.OwnerReferences[0].Kind != "DaemonSet" {
			t.Errorf("pod %s is not owned by the DaemonSet", p.Name)
		}
		if p.Spec.HostNetwork || p.Status.PodIP == "" || p.Status.PodIP == p.Status.HostIP {
			t.Errorf("pod %s has hostNetwork %v, IP %q on a node at %q: want the pod network", p.Name, p.Spec.HostNetwork, p.Status.PodIP, p.Status.HostIP)
		}
		for _, cs := range p.Status.ContainerStatuses {
			if cs.Name == "connectors-node" && !strings.Contains(cs.Image, "connectors-node:dev") {
				t.Errorf("container image %s, want connectors-node:dev", cs.Image)
			}
		}
	}
	for _, w := range n.nodes {
		if !onNode[w.name] {
			t.Errorf("no DaemonSet pod on %s", w.name)
		}
		if ok, err := n.driverRegistered(ctx, w.name); !ok {
			t.Errorf("the CSINode of %s does not list the driver (%v)", w.name, err)
		}
	}
}
