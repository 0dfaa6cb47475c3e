package node

import (
	"context"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The DaemonSet pod from the image serves the CSI socket kubelet calls: the
// driver registered through the registrar stand-in, and the pod's
// container runs the image make image built.
func TestDaemonSetPodFromTheImageServes(t *testing.T) {
	n := suite(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pods, err := n.env.Kube.CoreV1().Pods("connectors-system").List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=connectors-node"})
	if err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) != 1 {
		t.Fatalf("%d DaemonSet pods, want 1", len(pods.Items))
	}
	p := pods.Items[0]
	if len(p.OwnerReferences) == 0 || p.OwnerReferences[0].Kind != "DaemonSet" {
		t.Errorf("pod %s is not owned by the DaemonSet", p.Name)
	}
	for _, cs := range p.Status.ContainerStatuses {
		if cs.Name == "connectors-node" && !strings.Contains(cs.Image, "connectors-node:dev") {
			t.Errorf("container image %s, want connectors-node:dev", cs.Image)
		}
	}
}
