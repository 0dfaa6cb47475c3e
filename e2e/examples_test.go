package e2e

import (
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/connectors-node/connectors-node/test/apiserver"
	"github.com/connectors-node/connectors-node/test/servers/manifests"
)

// exampleJob is the part of an examples/ Job a story replays: the CSI
// volume's attributes and the container's `sh -c` script and environment.
type exampleJob struct {
	file string
	// attrs are the csi.volumeAttributes of the Job's volume.
	attrs map[string]string
	// mountPath is where the container mounts the volume.
	mountPath string
	script    string
	env       map[string]string
}

// loadJob reads the Job in examples/<file>, so the stories run what the
// examples tell users to run.
func loadJob(t *testing.T, file string) *exampleJob {
	t.Helper()
	objs, err := manifests.Load(filepath.Join(apiserver.RepoRoot(), "examples", file))
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range objs {
		if u.GetKind() != "Job" {
			continue
		}
		j := &exampleJob{file: file, env: map[string]string{}}
		pod := []string{"spec", "template", "spec"}
		vols, _, _ := unstructured.NestedSlice(u.Object, append(pod, "volumes")...)
		ctrs, _, _ := unstructured.NestedSlice(u.Object, append(pod, "containers")...)
		if len(vols) != 1 || len(ctrs) != 1 {
			t.Fatalf("examples/%s: want one volume and one container", file)
		}
		vol, _ := vols[0].(map[string]any)
		ctr, _ := ctrs[0].(map[string]any)
		j.attrs, _, _ = unstructured.NestedStringMap(vol, "csi", "volumeAttributes")
		cmd, _, _ := unstructured.NestedStringSlice(ctr, "command")
		args, _, _ := unstructured.NestedStringSlice(ctr, "args")
		if strings.Join(cmd, " ") != "sh -c" || len(args) != 1 {
			t.Fatalf("examples/%s: want command [sh, -c] and one argument, got %q %q", file, cmd, args)
		}
		j.script = args[0]
		mounts, _, _ := unstructured.NestedSlice(ctr, "volumeMounts")
		for _, m := range mounts {
			mm, _ := m.(map[string]any)
			if mm["name"] == vol["name"] {
				j.mountPath, _ = mm["mountPath"].(string)
			}
		}
		if j.mountPath == "" {
			t.Fatalf("examples/%s: the container does not mount the CSI volume", file)
		}
		envs, _, _ := unstructured.NestedSlice(ctr, "env")
		for _, e := range envs {
			em, _ := e.(map[string]any)
			name, _ := em["name"].(string)
			value, _ := em["value"].(string)
			j.env[name] = value
		}
		return j
	}
	t.Fatalf("examples/%s holds no Job", file)
	return nil
}

// localize returns the script and environment with the mount path replaced
// by the published volume's path and each of replace's keys by its value;
// every key must occur, so an edited example fails loudly here.
func (j *exampleJob) localize(t *testing.T, target string, replace map[string]string) (string, []string) {
	t.Helper()
	script := j.script
	for from, to := range replace {
		if !strings.Contains(script, from) {
			t.Fatalf("examples/%s: the script no longer mentions %q", j.file, from)
		}
		script = strings.ReplaceAll(script, from, to)
	}
	if !strings.Contains(script, j.mountPath) && len(j.env) == 0 {
		t.Fatalf("examples/%s: neither the script nor the environment uses the volume", j.file)
	}
	script = strings.ReplaceAll(script, j.mountPath, target)
	var env []string
	for k, v := range j.env {
		env = append(env, k+"="+strings.ReplaceAll(v, j.mountPath, target))
	}
	return script, env
}
