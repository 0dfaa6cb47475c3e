package node

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// podSpec is a workload pod with the git Connector's volume at
// /connectors.
type podSpec struct {
	name, serviceAccount, securityContext, script string
	restart                                       string
	namespace                                     string // default: default
	node                                          string // default: where the scheduler places it
}

func (p podSpec) yaml() string {
	if p.restart == "" {
		p.restart = "Never"
	}
	if p.namespace == "" {
		p.namespace = "default"
	}
	selector := "{}"
	if p.node != "" {
		selector = "{kubernetes.io/hostname: " + p.node + "}"
	}
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: %s, namespace: %s}
spec:
  serviceAccountName: %s
  restartPolicy: %s
  nodeSelector: %s
  terminationGracePeriodSeconds: 1
  securityContext: %s
  containers:
    - name: main
      image: %s
      command: ["sh", "-c", %q]
      volumeMounts:
        - {name: connectors, mountPath: /connectors, readOnly: true}
  volumes:
    - name: connectors
      csi:
        driver: connectors-csi
        readOnly: true
        volumeAttributes: {connectors: git, configuration.names: gitconfig}
`, p.name, p.namespace, p.serviceAccount, p.restart, selector, p.securityContext, workloadImage, p.script)
}

// runPod creates the pod and deletes it when the test ends.
func (n *cluster) runPod(ctx context.Context, t *testing.T, p podSpec) {
	t.Helper()
	if _, err := n.kubectl(ctx, p.yaml(), "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.deletePod(t, p.name) })
}

// deletePod deletes the pod and waits until it is gone.
func (n *cluster) deletePod(t *testing.T, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_ = n.env.Kube.CoreV1().Pods("default").Delete(ctx, name, metav1.DeleteOptions{})
	if err := poll(ctx, 2*time.Minute, "pod "+name+" gone", func(ctx context.Context) (bool, error) {
		_, err := n.env.Kube.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	}); err != nil {
		t.Error(err)
	}
}

// waitPhase waits until the pod reaches one of the phases.
func (n *cluster) waitPhase(ctx context.Context, t *testing.T, name string, phases ...corev1.PodPhase) *corev1.Pod {
	t.Helper()
	var pod *corev1.Pod
	if err := poll(ctx, 3*time.Minute, "pod "+name+" in "+fmt.Sprint(phases), func(ctx context.Context) (bool, error) {
		var err error
		pod, err = n.env.Kube.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, ph := range phases {
			if pod.Status.Phase == ph {
				return true, nil
			}
		}
		return false, nil
	}); err != nil {
		out, _ := n.kubectl(ctx, "", "describe", "pod", "-n", "default", name)
		t.Fatalf("%v\n%s", err, out)
	}
	return pod
}

const readScript = `ls -lnLa /connectors/ && cat /connectors/.gitconfig > /dev/null && echo READ-OK`

// A non-root pod with an fsGroup reads its files, 0440 and owned by the
// group; one without an fsGroup reads them as documented for no mount
// group: 0644, owned by root.
func TestNonRootPodsReadTheFiles(t *testing.T) {
	n := suite(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	password := randomHex(t)
	n.gitConnector(ctx, t, "http://127.0.0.1:1", password, "repo.git")

	cases := []struct {
		name, securityContext, mode, group string
	}{
		{"fsgroup-reader", "{runAsUser: 1000, runAsGroup: 3000, fsGroup: 2000}", "-r--r-----", " 2000 "},
		{"plain-reader", "{runAsUser: 1000, runAsGroup: 3000}", "-rw-r--r--", " 0 "},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			n.runPod(ctx, t, podSpec{name: c.name, serviceAccount: "git-clone", securityContext: c.securityContext, script: readScript})
			pod := n.waitPhase(ctx, t, c.name, corev1.PodSucceeded, corev1.PodFailed)
			log := n.podLog(t, string(pod.UID))
			if pod.Status.Phase != corev1.PodSucceeded || !strings.Contains(log, "READ-OK") {
				t.Fatalf("the pod could not read its files (%s):\n%s", pod.Status.Phase, log)
			}
			var line string
			for l := range strings.Lines(log) {
				if strings.Contains(l, ".gitconfig") {
					line = l
				}
			}
			if !strings.Contains(line, c.mode) || !strings.Contains(line, c.group) {
				t.Errorf(".gitconfig is %q, want mode %s and group%s", strings.TrimSpace(line), c.mode, c.group)
			}
			n.noSecret(t, password, string(pod.UID))
		})
	}
}

// A pod whose ServiceAccount may not get the Connector never starts: it
// stays ContainerCreating and kubectl describe shows PermissionDenied.
func TestPodWithoutRBACStaysContainerCreating(t *testing.T) {
	n := suite(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	n.gitConnector(ctx, t, "http://127.0.0.1:1", randomHex(t), "repo.git")
	if _, err := n.kubectl(ctx, "", "create", "serviceaccount", "-n", "default", "no-rbac"); err != nil && !strings.Contains(err.Error(), "AlreadyExists") {
		t.Fatal(err)
	}
	n.runPod(ctx, t, podSpec{name: "no-rbac", serviceAccount: "no-rbac", securityContext: "{}", script: "echo STARTED"})
	var describe string
	if err := poll(ctx, 3*time.Minute, "PermissionDenied in the pod's events", func(ctx context.Context) (bool, error) {
		var err error
		describe, err = n.kubectl(ctx, "", "describe", "pod", "-n", "default", "no-rbac")
		return strings.Contains(describe, "PermissionDenied"), err
	}); err != nil {
		t.Fatalf("%v\n%s", err, describe)
	}
	pod, err := n.env.Kube.CoreV1().Pods("default").Get(ctx, "no-rbac", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if pod.Status.Phase != corev1.PodPending {
		t.Errorf("phase %s, want Pending", pod.Status.Phase)
	}
	for _, cs := range pod.Status.ContainerStatuses {
		if cs.State.Waiting == nil || cs.State.Waiting.Reason != "ContainerCreating" {
			t.Errorf("container state %+v, want waiting in ContainerCreating", cs.State)
		}
	}
	if !strings.Contains(describe, "FailedMount") {
		t.Errorf("kubectl describe shows no FailedMount event:\n%s", describe)
	}
}

// Deleting the DaemonSet pod while a workload's volume is mounted: the new
// pod takes over, the workload keeps reading its files, and deleting the
// workload later unpublishes with no tmpfs left in the node's mount table.
func TestDaemonSetPodReplacedWhileVolumesAreMounted(t *testing.T) {
	n := suite(t)
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	password := randomHex(t)
	n.gitConnector(ctx, t, "http://127.0.0.1:1", password, "repo.git")
	reader := `while true; do if cat /connectors/.gitconfig > /dev/null; then echo READ-OK; else echo READ-FAILED; fi; sleep 1; done`
	n.runPod(ctx, t, podSpec{name: "steady-reader", serviceAccount: "git-clone", securityContext: "{runAsUser: 1000, fsGroup: 1000}", script: reader})
	pod := n.waitPhase(ctx, t, "steady-reader", corev1.PodRunning)

	plugin, err := n.pluginPod(ctx, pod.Spec.NodeName)
	if err != nil {
		t.Fatal(err)
	}
	old := plugin.Name
	if err := n.env.Kube.CoreV1().Pods("connectors-system").Delete(ctx, old, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := n.waitPlugin(ctx, old, nodeServiceAccount); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second) // a few more reads after the takeover
	log := n.podLog(t, string(pod.UID))
	if strings.Contains(log, "READ-FAILED") || !strings.Contains(log, "READ-OK") {
		t.Errorf("the workload did not keep reading its files through the takeover:\n%s", log)
	}
	n.noSecret(t, password, string(pod.UID))

	n.deletePod(t, "steady-reader")
	// Other stories' pods (the republish story's) keep theirs: only the
	// deleted pod's tmpfs must be gone.
	if err := poll(ctx, time.Minute, "no connectors-csi tmpfs of the deleted pod in the node's mount table", func(context.Context) (bool, error) {
		infos, err := n.node(pod.Spec.NodeName).mounts()
		if err != nil {
			return false, err
		}
		for _, mi := range infos {
			if strings.HasPrefix(mi.Source, "connectors-csi") && strings.Contains(mi.MountPoint, string(pod.UID)) {
				return false, fmt.Errorf("still mounted: %s", mi.MountPoint)
			}
		}
		return true, nil
	}); err != nil {
		t.Error(err)
	}
}
