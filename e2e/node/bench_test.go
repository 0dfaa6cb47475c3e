//go:build nodebench

package node

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The benchmarks of the real-node suite are built only with the nodebench
// tag, which `make bench-pods` and `make bench-clients` set and `make test`
// does not. They measure what users wait for, each against the same work
// without the volume or the proxy in the same run, and report; they fail
// only when the work itself fails.

// benchRoundsEnv sets the number of interleaved rounds of each benchmark
// (default 3); medians are reported.
const benchRoundsEnv = "CONNECTORS_NODE_BENCH_ROUNDS"

// bench returns the cluster and the number of rounds.
func bench(t *testing.T) (*cluster, int) {
	t.Helper()
	n := suite(t)
	rounds := 3
	if v := os.Getenv(benchRoundsEnv); v != "" {
		r, err := strconv.Atoi(v)
		if err != nil || r < 1 {
			t.Fatalf("%s=%q: want a positive number of rounds", benchRoundsEnv, v)
		}
		rounds = r
	}
	return n, rounds
}

// machineState describes the machine a figure was measured on.
func machineState() string {
	load, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return fmt.Sprintf("%d cores", runtime.NumCPU())
	}
	f := strings.Fields(string(load))
	return fmt.Sprintf("%d cores, load average %s %s %s", runtime.NumCPU(), f[0], f[1], f[2])
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func metOrNot(ok bool) string {
	if ok {
		return "met"
	}
	return "not met"
}

// benchPods is how many pods the pods benchmark creates at once.
const benchPods = 30

// benchPodManifest is benchPods pods of the workload image that only
// sleep, on the node, as git-clone, each with the git Connector's volume
// when volume is set.
func benchPodManifest(prefix, node string, volume bool) string {
	var b strings.Builder
	for i := range benchPods {
		fmt.Fprintf(&b, `---
apiVersion: v1
kind: Pod
metadata: {name: %s-%d, namespace: default, labels: {bench: pods}}
spec:
  serviceAccountName: git-clone
  nodeSelector: {kubernetes.io/hostname: %s}
  terminationGracePeriodSeconds: 0
  containers:
    - name: main
      image: %s
      command: ["sleep", "3600"]
`, prefix, i, node, workloadImage)
		if volume {
			b.WriteString(`      volumeMounts:
        - {name: connectors, mountPath: /connectors, readOnly: true}
  volumes:
    - name: connectors
      csi:
        driver: connectors-csi
        readOnly: true
        volumeAttributes: {connectors: git, configuration.names: gitconfig}
`)
		}
	}
	return b.String()
}

// What users wait for, pods: benchPods pods created at once on one node,
// the time until all are Running, with the connectors volume against the
// same pods without it, in interleaved rounds. Target: the volume adds at
// most 10% or 2 s, whichever is larger.
func TestBenchPodsStartup(t *testing.T) {
	n, rounds := bench(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(rounds)*8*time.Minute)
	defer cancel()
	n.gitConnector(ctx, t, "http://127.0.0.1:1", randomHex(t), "repo.git")
	w := n.nodes[0]
	baseline := csiMounts(t, w, "")
	var without, with []time.Duration
	for r := range rounds {
		order := []bool{false, true}
		if r%2 == 1 {
			order = []bool{true, false}
		}
		for _, volume := range order {
			d := n.podsRunning(ctx, t, w, volume)
			if volume {
				with = append(with, d)
			} else {
				without = append(without, d)
			}
			t.Logf("round %d, %d pods %s the volume: all Running in %s", r+1, benchPods, map[bool]string{true: "with", false: "without"}[volume], d.Round(10*time.Millisecond))
			if err := poll(ctx, 2*time.Minute, "the benchmark's volumes unmounted", func(context.Context) (bool, error) {
				return csiMounts(t, w, "") == baseline, nil
			}); err != nil {
				t.Fatal(err)
			}
		}
	}
	mw, mv := median(without), median(with)
	added := mv - mw
	allowed := max(mw/10, 2*time.Second)
	t.Logf("BENCH pods: %d pods on one node, median of %d rounds: without the volume %s, with it %s, added %s (%.0f%%); target ≤ %s added: %s (%s)",
		benchPods, rounds, mw.Round(10*time.Millisecond), mv.Round(10*time.Millisecond), added.Round(10*time.Millisecond),
		100*float64(added)/float64(mw), allowed.Round(10*time.Millisecond), metOrNot(added <= allowed), machineState())
}

// podsRunning creates benchPods pods at once on the node and returns the
// time from the request until all are Running, then deletes them and
// waits until they are gone.
func (n *cluster) podsRunning(ctx context.Context, t *testing.T, w *worker, volume bool) time.Duration {
	t.Helper()
	prefix := "bench-plain"
	if volume {
		prefix = "bench-volume"
	}
	defer func() {
		if _, err := n.kubectl(ctx, "", "delete", "pods", "-n", "default", "-l", "bench=pods", "--wait=true", "--timeout=3m"); err != nil {
			t.Error(err)
		}
	}()
	start := time.Now()
	if _, err := n.kubectl(ctx, benchPodManifest(prefix, w.name, volume), "create", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	deadline := start.Add(5 * time.Minute)
	for {
		pods, err := n.env.Kube.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "bench=pods"})
		if err != nil {
			t.Fatal(err)
		}
		running := 0
		for _, p := range pods.Items {
			if p.Status.Phase == corev1.PodRunning {
				running++
			}
		}
		if running == benchPods {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			out, _ := n.kubectl(ctx, "", "get", "pods", "-n", "default", "-l", "bench=pods", "-o", "wide")
			t.Fatalf("%d of %d pods Running after %s\n%s", running, benchPods, time.Since(start), out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// benchRepoMiB is the size of the clients benchmark's repository:
// incompressible files, one pack.
const benchRepoMiB = 200

// What users wait for, clients: git clone of a 200 MiB repository from a
// pod, through its node's reverse proxy with the mounted .gitconfig
// against direct to the Git server with the same credential, in
// interleaved rounds. Target: ≥ 0.9× direct.
func TestBenchGitClone(t *testing.T) {
	n, rounds := bench(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(rounds)*6*time.Minute+5*time.Minute)
	defer cancel()
	srv, _, password := gitServer(t, "bench-small")
	files := map[string]string{}
	for i := range benchRepoMiB / 5 {
		b := make([]byte, 5<<20)
		_, _ = rand.Read(b)
		files[fmt.Sprintf("blob-%02d.bin", i)] = string(b)
	}
	created := time.Now()
	repo, err := srv.CreateRepo("bench-large", files)
	if err != nil {
		t.Fatal(err)
	}
	clear(files)
	// One pack, as a server keeps it: a clone sends it as it is.
	if out, err := exec.CommandContext(ctx, "git", "-C", filepath.Join(srv.Root, "bench-large.git"), "repack", "-a", "-d", "-q").CombinedOutput(); err != nil { //nolint:gosec // the test's repository
		t.Fatalf("git repack: %v\n%s", err, out)
	}
	t.Logf("a %d MiB repository made in %s", benchRepoMiB, time.Since(created).Round(100*time.Millisecond))
	n.gitConnector(ctx, t, srv.URL, password, "bench-small.git")
	w := n.nodes[0]
	n.runPod(ctx, t, podSpec{name: "bench-git", serviceAccount: "git-clone", securityContext: "{}", node: w.name, script: "exec sleep 3600"})
	pod := n.waitPhase(ctx, t, "bench-git", corev1.PodRunning)
	plugin, err := n.pluginPod(ctx, w.name)
	if err != nil {
		t.Fatal(err)
	}
	direct := "git -c http.extraHeader='Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte("bot:"+password)) + "' clone -q " + repo + " /tmp/clone"
	proxied := "GIT_CONFIG_GLOBAL=/connectors/.gitconfig git clone -q " + repo + " /tmp/clone"
	// The CPU each side spends on a clone: the plugin pod (the proxy),
	// the client pod (git), and this process's children (the Git
	// server's git http-backend and kubectl exec).
	type cpu struct{ proxy, client, server time.Duration }
	cpuNow := func() cpu {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru); err != nil {
			t.Fatal(err)
		}
		return cpu{proxy: podCPU(t, w, string(plugin.UID)), client: podCPU(t, w, string(pod.UID)),
			server: time.Duration(ru.Utime.Nano() + ru.Stime.Nano())}
	}
	var spent cpu
	clone := func(script string) time.Duration {
		t.Helper()
		before := cpuNow()
		start := time.Now()
		defer func() {
			after := cpuNow()
			spent = cpu{proxy: after.proxy - before.proxy, client: after.client - before.client, server: after.server - before.server}
		}()
		cmd := exec.CommandContext(ctx, "kubectl", "--kubeconfig="+n.kubeconfig, "exec", "-n", "default", pod.Name, "--", //nolint:gosec // the suite's kubectl
			"sh", "-ec", "rm -rf /tmp/clone; "+script+"; rm -rf /tmp/clone")
		out, err := cmd.CombinedOutput()
		d := time.Since(start)
		if err != nil {
			// The output never holds the password: git names the URL only.
			t.Fatalf("clone in the pod: %v\n%s", err, strings.ReplaceAll(string(out), password, "<password>"))
		}
		return d
	}
	var directs, viaProxy, proxyCPU, othersCPU []time.Duration
	clone(proxied) // a first clone warms the page cache and the proxy's caches
	for r := range rounds {
		order := []bool{false, true}
		if r%2 == 1 {
			order = []bool{true, false}
		}
		for _, proxy := range order {
			if proxy {
				d := clone(proxied)
				viaProxy = append(viaProxy, d)
				proxyCPU, othersCPU = append(proxyCPU, spent.proxy), append(othersCPU, spent.client+spent.server)
				t.Logf("round %d, through the reverse proxy: %s (%.0f MiB/s); CPU: proxy %s, client %s, server %s", r+1, d.Round(10*time.Millisecond), benchRepoMiB/d.Seconds(),
					spent.proxy.Round(10*time.Millisecond), spent.client.Round(10*time.Millisecond), spent.server.Round(10*time.Millisecond))
			} else {
				d := clone(direct)
				directs = append(directs, d)
				t.Logf("round %d, direct: %s (%.0f MiB/s); CPU: proxy %s, client %s, server %s", r+1, d.Round(10*time.Millisecond), benchRepoMiB/d.Seconds(),
					spent.proxy.Round(10*time.Millisecond), spent.client.Round(10*time.Millisecond), spent.server.Round(10*time.Millisecond))
			}
		}
	}
	md, mp := median(directs), median(viaProxy)
	ratio := md.Seconds() / mp.Seconds()
	t.Logf("BENCH git clone: %d MiB from a pod, median of %d rounds: direct %s, through the reverse proxy %s, %.2f× direct; target ≥ 0.9×: %s (%s); "+
		"CPU per proxied clone: proxy %s, client and server %s",
		benchRepoMiB, rounds, md.Round(10*time.Millisecond), mp.Round(10*time.Millisecond), ratio, metOrNot(ratio >= 0.9), machineState(),
		median(proxyCPU).Round(10*time.Millisecond), median(othersCPU).Round(10*time.Millisecond))
}

// podCPU returns the CPU time the pod's containers spent so far, from its
// cgroup (cgroup v1 cpuacct under the node's cgroupRoot).
func podCPU(t *testing.T, w *worker, uid string) time.Duration {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("/sys/fs/cgroup/cpuacct", w.cgroupRoot, "kubepods", "*", "pod"+uid, "cpuacct.usage"))
	if err == nil && len(files) == 0 {
		files, err = filepath.Glob(filepath.Join("/sys/fs/cgroup/cpuacct", w.cgroupRoot, "kubepods", "pod"+uid, "cpuacct.usage"))
	}
	if err != nil || len(files) != 1 {
		t.Fatalf("the cpuacct cgroup of pod %s: %v (%d found)", uid, err, len(files))
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	ns, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return time.Duration(ns)
}
