package node

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
)

// statusLease is the status writers' Lease; statusLeaseDuration is its
// shipped duration (status.Options' default).
const (
	statusLease         = "connectors-node-status"
	statusLeaseDuration = 15 * time.Second
)

// The node holding the status Lease stops (its kubelet, and the DaemonSet
// pod's containers are killed): the other node's DaemonSet pod takes the
// Lease once it expires, and a Connector created right after the stop gets
// its status from the new holder. The node then comes back.
func TestStatusLeaseMovesWhenTheHolderNodeStops(t *testing.T) {
	n := suite(t)
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	srv, _, password := gitServer(t, "lease-repo")
	n.gitConnector(ctx, t, srv.URL, password, "lease-repo.git")
	public, err := n.publicURL(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n.waitConnectorStatus(ctx, t, "default", "git", "True", public+v1alpha1.PathPrefix("default", "git"))
	lease, err := n.env.Kube.CoordinationV1().Leases(systemNamespace).Get(ctx, statusLease, metav1.GetOptions{})
	if err != nil || lease.Spec.HolderIdentity == nil {
		t.Fatalf("the status Lease: %v (%+v)", err, lease)
	}
	holder := n.node(*lease.Spec.HolderIdentity)
	if holder == nil {
		t.Fatalf("the status Lease is held by %q, no node of the suite", *lease.Spec.HolderIdentity)
	}
	plugin, err := n.pluginPod(ctx, holder.name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.restartNode(t, holder) })

	// The node stops: its kubelet first (so nothing restarts the pod),
	// then the DaemonSet pod's containers.
	stopped := time.Now()
	if err := holder.kubelet.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-holder.kubelet.exited
	for _, cs := range plugin.Status.ContainerStatuses {
		id, ok := strings.CutPrefix(cs.ContainerID, "containerd://")
		if !ok {
			t.Fatalf("container %s has the ID %q", cs.Name, cs.ContainerID)
		}
		if _, err := run(ctx, "ctr", "--address", holder.socket, "-n", "k8s.io", "task", "kill", "--signal", "SIGKILL", id); err != nil {
			t.Fatal(err)
		}
	}
	var newHolder string
	if err := poll(ctx, 4*statusLeaseDuration, "another node holding the status Lease", func(ctx context.Context) (bool, error) {
		l, err := n.env.Kube.CoordinationV1().Leases(systemNamespace).Get(ctx, statusLease, metav1.GetOptions{})
		if err != nil || l.Spec.HolderIdentity == nil {
			return false, err
		}
		newHolder = *l.Spec.HolderIdentity
		return newHolder != holder.name && newHolder != "", nil
	}); err != nil {
		t.Fatal(err)
	}
	moved := time.Since(stopped)
	t.Logf("the status Lease moved from %s to %s %s after the stop", holder.name, newHolder, moved.Round(100*time.Millisecond))
	if moved > 2*statusLeaseDuration {
		t.Errorf("the Lease moved %s after the stop, want within twice its duration (%s)", moved, 2*statusLeaseDuration)
	}

	// A Connector created after the stop: the new holder writes its status.
	if _, err := n.kubectl(ctx, fmt.Sprintf(`apiVersion: connectors.alauda.io/v1alpha1
kind: Connector
metadata: {name: git-after-stop, namespace: default}
spec:
  connectorClassName: git
  address: %s
  auth: {name: basicAuth, secretRef: {name: %s}, params: [{name: repository, value: lease-repo.git}]}
`, srv.URL, gitSecret(password)), "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = n.kubectl(context.Background(), "", "delete", "connector", "-n", "default", "git-after-stop", "--ignore-not-found")
	})
	n.waitConnectorStatus(ctx, t, "default", "git-after-stop", "True", public+v1alpha1.PathPrefix("default", "git-after-stop"))
	written := time.Since(stopped)
	t.Logf("a Connector created after the stop had its status %s after the stop", written.Round(100*time.Millisecond))
	if written > 3*statusLeaseDuration {
		t.Errorf("status was written %s after the stop, want within %s", written, 3*statusLeaseDuration)
	}
}

// restartNode starts the node's kubelet again and waits until the node is
// Ready and its DaemonSet pod serves again.
func (n *cluster) restartNode(t *testing.T, w *worker) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	if err := n.kubelet(w, fmt.Sprintf("kubelet-restarted-%d", time.Now().UnixNano())); err != nil {
		t.Fatal(err)
	}
	if err := n.waitReady(ctx, w); err != nil {
		t.Fatal(err)
	}
	if err := n.waitPlugin(ctx, "", nodeServiceAccount); err != nil {
		t.Fatal(err)
	}
}
