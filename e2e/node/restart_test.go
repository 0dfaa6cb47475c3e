package node

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// kubelet restarts on a node with several pods mounting volumes: after the
// restart the node's mount table has the same number of connectors-csi
// tmpfs mounts (none multiplied), every pod's files are unchanged but for
// the token kubelet mints anew and republishes (so republish works after
// the restart), the pods read their files throughout, and deleting the
// pods unmounts every volume of theirs.
func TestKubeletRestartKeepsMounts(t *testing.T) {
	n := suite(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	password := randomHex(t)
	n.gitConnector(ctx, t, "http://127.0.0.1:1", password, "repo.git")
	w := n.nodes[1]
	reader := `while true; do if cat /connectors/.gitconfig > /dev/null; then echo READ-OK; else echo READ-FAILED; fi; sleep 1; done`
	names := []string{"restart-reader-0", "restart-reader-1", "restart-reader-2"}
	pods := map[string]*corev1.Pod{}
	for _, name := range names {
		n.runPod(ctx, t, podSpec{name: name, serviceAccount: "git-clone", securityContext: "{runAsUser: 1000, fsGroup: 1000}", script: reader, node: w.name})
	}
	for _, name := range names {
		pods[name] = n.waitPhase(ctx, t, name, corev1.PodRunning)
	}
	before := map[string]map[string]string{}
	for _, name := range names {
		files, err := volumeFiles(w, pods[name])
		if err != nil {
			t.Fatal(err)
		}
		before[name] = files
	}
	mountsBefore := csiMounts(t, w, "")

	if err := w.kubelet.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-w.kubelet.exited:
	case <-time.After(30 * time.Second):
		t.Fatal("kubelet did not stop within 30 s of SIGTERM")
	}
	if err := n.kubelet(w, fmt.Sprintf("kubelet-restarted-%d", time.Now().Unix())); err != nil {
		t.Fatal(err)
	}
	if err := n.waitReady(ctx, w); err != nil {
		t.Fatal(err)
	}
	// kubelet lost its tokens with its memory: it mints new ones and
	// republishes every volume with them.
	for _, name := range names {
		var after map[string]string
		if err := poll(ctx, 3*time.Minute, name+"'s volume republished with a new token", func(context.Context) (bool, error) {
			var err error
			after, err = volumeFiles(w, pods[name])
			return err == nil && after["context.token"] != "" && after["context.token"] != before[name]["context.token"], err
		}); err != nil {
			t.Fatal(err)
		}
		want, got := withoutToken(before[name]), withoutToken(after)
		if len(want) != len(got) {
			t.Errorf("%s's files were %d before the restart and are %d after", name, len(want), len(got))
		}
		for f, c := range want {
			if got[f] != c {
				t.Errorf("%s's %s changed beyond its token:\nbefore:\n%s\nafter:\n%s", name, f, c, got[f])
			}
		}
	}
	if mountsAfter := csiMounts(t, w, ""); mountsAfter != mountsBefore {
		t.Errorf("the node has %d connectors-csi mounts after kubelet's restart, %d before", mountsAfter, mountsBefore)
	}
	for _, name := range names {
		log := n.podLog(t, string(pods[name].UID))
		if strings.Contains(log, "READ-FAILED") || !strings.Contains(log, "READ-OK") {
			t.Errorf("%s did not keep reading its files through kubelet's restart:\n%s", name, log)
		}
		n.noSecret(t, password, string(pods[name].UID))
	}
	for _, name := range names {
		n.deletePod(t, name)
	}
	for _, name := range names {
		if left := csiMounts(t, w, string(pods[name].UID)); left != 0 {
			t.Errorf("%d connectors-csi mounts of the deleted pod %s are left", left, name)
		}
	}
}

// volumeFiles reads the files of the pod's connectors volume on the node
// through their top-level names, by name.
func volumeFiles(w *worker, pod *corev1.Pod) (map[string]string, error) {
	dir := filepath.Join(w.root(), kubeletRoot, "pods", string(pod.UID), "volumes", "kubernetes.io~csi", "connectors", "mount")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, e := range entries {
		// ..data and the timestamped directory hold the files the
		// top-level names link to.
		if e.IsDir() || strings.HasPrefix(e.Name(), "..") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name())) //nolint:gosec // the volume's files
		if err != nil {
			return nil, err
		}
		out[e.Name()] = string(b)
	}
	return out, nil
}

// withoutToken returns the files with the token, in any of the forms the
// files carry it, replaced by TOKEN.
func withoutToken(files map[string]string) map[string]string {
	token := files["context.token"]
	out := map[string]string{}
	for f, c := range files {
		if token != "" {
			c = strings.ReplaceAll(c, base64.StdEncoding.EncodeToString([]byte(":"+token)), "TOKEN")
			c = strings.ReplaceAll(c, token, "TOKEN")
		}
		out[f] = c
	}
	return out
}

// csiMounts counts the connectors-csi mounts in the node's mount table
// whose mount point holds sub.
func csiMounts(t *testing.T, w *worker, sub string) int {
	t.Helper()
	infos, err := w.mounts()
	if err != nil {
		t.Fatal(err)
	}
	count := 0
	for _, mi := range infos {
		if strings.HasPrefix(mi.Source, "connectors-csi") && strings.Contains(mi.MountPoint, sub) {
			count++
		}
	}
	return count
}
