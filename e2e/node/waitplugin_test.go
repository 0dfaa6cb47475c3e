package node

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// A pod on a node whose plugin is not running yet (the DaemonSet's pod
// left the node when the node lost the label the DaemonSet selects, as on
// a node that joins before the label is set) waits in ContainerCreating,
// and kubectl describe shows a FailedMount event naming the driver that is
// not registered; once the node has the label again, the DaemonSet's pod
// starts, registers the driver and the pod starts and reads its files.
func TestPodWaitsForThePluginOnItsNode(t *testing.T) {
	n := suite(t)
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	password := randomHex(t)
	n.gitConnector(ctx, t, "http://127.0.0.1:1", password, "repo.git")
	w := n.nodes[1]
	setOSLabel := func(ctx context.Context, value string) error {
		patch := `{"metadata":{"labels":{"kubernetes.io/os":null}}}`
		if value != "" {
			patch = `{"metadata":{"labels":{"kubernetes.io/os":"` + value + `"}}}`
		}
		_, err := n.env.Kube.CoreV1().Nodes().Patch(ctx, w.name, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
		return err
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		if err := setOSLabel(ctx, "linux"); err != nil {
			t.Error(err)
		}
		if err := n.waitPlugin(ctx, "", nodeServiceAccount); err != nil {
			t.Error(err)
		}
	})
	// kubelet sets the label again when it registers the node (after a
	// restart of an earlier story's), so it is removed until the pod is
	// gone.
	if err := poll(ctx, 2*time.Minute, "no DaemonSet pod on "+w.name+" and the driver unregistered", func(ctx context.Context) (bool, error) {
		no, err := n.env.Kube.CoreV1().Nodes().Get(ctx, w.name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		if _, ok := no.Labels["kubernetes.io/os"]; ok {
			if err := setOSLabel(ctx, ""); err != nil {
				return false, err
			}
		}
		if _, err := n.pluginPod(ctx, w.name); err == nil {
			return false, nil
		}
		registered, err := n.driverRegistered(ctx, w.name)
		return !registered, err
	}); err != nil {
		t.Fatal(err)
	}

	n.runPod(ctx, t, podSpec{name: "early-reader", serviceAccount: "git-clone", securityContext: "{}", script: readScript + "; exec sleep 3600", node: w.name})
	const event = "driver name connectors-csi not found in the list of registered CSI drivers"
	var describe string
	if err := poll(ctx, 2*time.Minute, "a FailedMount event naming the unregistered driver", func(ctx context.Context) (bool, error) {
		var err error
		describe, err = n.kubectl(ctx, "", "describe", "pod", "-n", "default", "early-reader")
		return strings.Contains(describe, "FailedMount") && strings.Contains(describe, event), err
	}); err != nil {
		t.Fatalf("%v\n%s", err, describe)
	}
	pod, err := n.env.Kube.CoreV1().Pods("default").Get(ctx, "early-reader", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, cs := range pod.Status.ContainerStatuses {
		if cs.State.Waiting == nil || cs.State.Waiting.Reason != "ContainerCreating" {
			t.Errorf("container state %+v, want waiting in ContainerCreating", cs.State)
		}
	}

	if err := setOSLabel(ctx, "linux"); err != nil {
		t.Fatal(err)
	}
	pod = n.waitPhase(ctx, t, "early-reader", corev1.PodRunning, corev1.PodFailed, corev1.PodSucceeded)
	if pod.Status.Phase != corev1.PodRunning {
		t.Fatalf("the pod is %s once the plugin runs, want Running", pod.Status.Phase)
	}
	if err := poll(ctx, time.Minute, "the pod reading its files", func(context.Context) (bool, error) {
		return strings.Contains(n.podLog(t, string(pod.UID)), "READ-OK"), nil
	}); err != nil {
		t.Errorf("%v:\n%s", err, n.podLog(t, string(pod.UID)))
	}
	n.noSecret(t, password, string(pod.UID))
}
