package node

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/mount-utils"

	"github.com/connectors-node/connectors-node/internal/imagebuild"
	"github.com/connectors-node/connectors-node/test/apiserver"
	"github.com/connectors-node/connectors-node/test/servers/clusterdns"
)

const (
	nodeName    = "connectors-e2e-node"
	kubeletRoot = "/var/lib/kubelet"
	// nodeIP is the address of a veth interface in the network namespace:
	// kubelet needs a node address that is not loopback.
	nodeIP = "10.253.0.1"
	// apiServerPort is the API server's port on 127.0.0.1, fixed because
	// the overlay points the DaemonSet's in-cluster client at it.
	apiServerPort = "6443"
	// workloadImage holds the host's git and sh for the workload pods.
	workloadImage = "connectors-e2e-workload:dev"
	// clusterDNSIP is where the suite's cluster DNS listens (port 53):
	// kubelet's clusterDNS, in the resolv.conf of ClusterFirst and
	// ClusterFirstWithHostNet pods. An unusual loopback address, free in
	// the suite's own network namespace.
	clusterDNSIP  = "127.0.53.53"
	clusterDomain = "cluster.local"
)

// node is a running node: the API server, containerd, kubelet, the
// scheduler and the controller manager.
type node struct {
	work       string
	env        *apiserver.Env
	kubeconfig string
	socket     string
	podLogs    string
	// cgroupRoot is kubelet's cgroupRoot, of this run alone: a suite
	// running beside it kills nothing of this one's when it stops.
	cgroupRoot string

	volumes *volumeWatch
	// dns is the cluster DNS, answering the Services' names.
	dns *clusterdns.Server
	// republish is the republish story, started with the node.
	republish *republishStory

	mu    sync.Mutex
	procs []*proc
	stops []func()
}

// proc is a component process and its log file.
type proc struct {
	name   string
	cmd    *exec.Cmd
	log    string
	exited chan struct{}
}

func startNode() (*node, error) {
	ctx := context.Background()
	work, err := os.MkdirTemp("", "connectors-node-e2e-")
	if err != nil {
		return nil, err
	}
	n := &node{work: work, podLogs: filepath.Join(work, "pod-logs"), cgroupRoot: "connectors-node-e2e-" + filepath.Base(work), volumes: &volumeWatch{files: map[string]string{}}}
	watchCtx, stopWatch := context.WithCancel(ctx)
	go n.volumes.run(watchCtx)
	n.stops = append(n.stops, stopWatch)
	steps := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"network", n.network},
		{"mounts", n.mounts},
		{"cgroups", n.cgroups},
		{"API server", n.apiServer},
		{"cluster DNS", n.clusterDNS},
		{"images", n.buildImages},
		{"containerd", n.containerd},
		{"controllers", n.controllers},
		{"kubelet", n.kubelet},
		{"install", n.install},
	}
	for _, s := range steps {
		start := time.Now()
		if err := s.fn(ctx); err != nil {
			return n, fmt.Errorf("%s: %w", s.name, err)
		}
		fmt.Fprintf(os.Stderr, "real-node suite: %s ready in %s\n", s.name, time.Since(start).Round(100*time.Millisecond))
	}
	return n, nil
}

// network brings up loopback and one end of a veth pair with the node
// address and the default route (the kernel here has no dummy devices).
func (n *node) network(ctx context.Context) error {
	for _, args := range [][]string{
		{"link", "set", "lo", "up"},
		{"link", "add", "node0", "type", "veth", "peer", "name", "node1"},
		{"addr", "add", nodeIP + "/24", "dev", "node0"},
		{"link", "set", "node1", "up"},
		{"link", "set", "node0", "up"},
		{"route", "add", "default", "dev", "node0"},
	} {
		if _, err := run(ctx, "ip", args...); err != nil {
			return err
		}
	}
	return nil
}

// mounts puts a directory of the suite's on /var/lib/kubelet as a shared
// mount (the DaemonSet mounts it with Bidirectional propagation), and hides
// the machine-wide sysctls kubelet would set behind files that already hold
// kubelet's values. Everything stays in this mount namespace.
func (n *node) mounts(context.Context) error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("making / private: %w", err)
	}
	dir := filepath.Join(n.work, "kubelet")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	if err := os.MkdirAll(kubeletRoot, 0o750); err != nil {
		return err
	}
	if err := unix.Mount(dir, kubeletRoot, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind-mounting %s: %w", kubeletRoot, err)
	}
	if err := unix.Mount("", kubeletRoot, "", unix.MS_REC|unix.MS_SHARED, ""); err != nil {
		return fmt.Errorf("sharing %s: %w", kubeletRoot, err)
	}
	for entry, value := range map[string]string{
		"/proc/sys/vm/overcommit_memory":      "1",
		"/proc/sys/kernel/panic":              "10",
		"/proc/sys/kernel/panic_on_oops":      "1",
		"/proc/sys/kernel/keys/root_maxkeys":  "1000000",
		"/proc/sys/kernel/keys/root_maxbytes": "25000000",
	} {
		f := filepath.Join(n.work, "sysctl-"+filepath.Base(entry))
		if err := os.WriteFile(f, []byte(value+"\n"), 0o600); err != nil {
			return err
		}
		if err := unix.Mount(f, entry, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("hiding %s: %w", entry, err)
		}
	}
	return nil
}

// cgroups creates kubelet's cgroupRoot in every cgroup v1 hierarchy.
func (n *node) cgroups(context.Context) error {
	hier, err := hierarchies()
	if err != nil {
		return err
	}
	for _, h := range hier {
		d := filepath.Join(h, n.cgroupRoot)
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
		if filepath.Base(h) == "cpuset" {
			for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
				b, err := os.ReadFile(filepath.Join(h, f)) //nolint:gosec // cgroup files
				if err != nil {
					return err
				}
				if err := os.WriteFile(filepath.Join(d, f), b, 0o600); err != nil { //nolint:gosec // a cgroup directory the suite made
					return err
				}
			}
		}
	}
	n.stops = append(n.stops, func() { removeCgroups(hier, n.cgroupRoot) })
	return nil
}

// hierarchies lists the mounted cgroup v1 hierarchies.
func hierarchies() ([]string, error) {
	entries, err := os.ReadDir("/sys/fs/cgroup")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if !e.IsDir() || e.Type()&os.ModeSymlink != 0 {
			continue
		}
		out = append(out, filepath.Join("/sys/fs/cgroup", e.Name()))
	}
	return out, nil
}

// removeCgroups kills what is left in the suite's cgroups and removes them,
// deepest first.
func removeCgroups(hier []string, cgroupRoot string) {
	for _, h := range hier {
		root := filepath.Join(h, cgroupRoot)
		var dirs []string
		_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for _, d := range dirs {
			if b, err := os.ReadFile(filepath.Join(d, "cgroup.procs")); err == nil { //nolint:gosec // cgroup files
				for f := range strings.FieldsSeq(string(b)) {
					var pid int
					if _, err := fmt.Sscan(f, &pid); err == nil && pid > 1 {
						_ = syscall.Kill(pid, syscall.SIGKILL)
					}
				}
			}
		}
		time.Sleep(200 * time.Millisecond)
		for i := len(dirs) - 1; i >= 0; i-- {
			_ = os.Remove(dirs[i])
		}
	}
}

func (n *node) apiServer(context.Context) error {
	env, err := apiserver.New(apiserver.Options{ServiceAccountAdmission: true, Port: apiServerPort,
		// logs and exec: the node's name does not resolve here, its address does.
		APIServerFlags: map[string]string{"kubelet-preferred-address-types": "InternalIP"}})
	if err != nil {
		return err
	}
	n.env = env
	n.stops = append(n.stops, func() { _ = env.Stop() })
	n.kubeconfig = filepath.Join(n.work, "admin.kubeconfig")
	if err := env.WriteAdminKubeconfig(n.kubeconfig); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(n.work, "ca.crt"), env.Config.CAData, 0o600)
}

// clusterDNS serves the Services' names on clusterDNSIP:53, the node's
// stand-in for CoreDNS, with its query log in <work>/clusterdns.log.
func (n *node) clusterDNS(ctx context.Context) error {
	log, err := os.Create(filepath.Join(n.work, "clusterdns.log")) //nolint:gosec // in the suite's directory
	if err != nil {
		return err
	}
	n.dns, err = clusterdns.Start(ctx, clusterdns.Options{Kube: n.env.Kube, Domain: clusterDomain, Addr: net.JoinHostPort(clusterDNSIP, "53"), Log: log})
	if err != nil {
		_ = log.Close()
		return err
	}
	n.stops = append(n.stops, func() { _ = n.dns.Close(); _ = log.Close() })
	return nil
}

// buildImages builds the images with build/image, as make image does but
// for the host's architecture alone (the node runs that image; no other
// architecture is built), and the workload image from the host's git and
// sh.
func (n *node) buildImages(ctx context.Context) error {
	dir := filepath.Join(n.work, "images")
	cmd := exec.CommandContext(ctx, "go", "run", "./build/image", "--out", dir, "--tag", "dev", "--platforms", "linux/"+runtime.GOARCH) //nolint:gosec // the go tool building this repository
	cmd.Dir = apiserver.RepoRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go run ./build/image: %w\n%s", err, out)
	}
	files, links, err := imagebuild.HostFiles(ctx, "/bin/sh", "/usr/bin/git", "/usr/bin/cat", "/usr/bin/ls", "/usr/bin/id", "/usr/bin/sleep",
		"/usr/lib/git-core/git-remote-http", "/usr/lib/git-core/git-remote-https", "/etc/ssl/certs/ca-certificates.crt", "/etc/nsswitch.conf")
	if err != nil {
		return err
	}
	img, err := imagebuild.Build(imagebuild.Spec{
		Files: files, Symlinks: links,
		Dirs:       map[string]int64{"/tmp": 0o1777},
		Env:        []string{"PATH=/usr/bin:/bin:/usr/lib/git-core"},
		Entrypoint: []string{"/bin/sh"},
	}, runtime.GOARCH)
	if err != nil {
		return err
	}
	return imagebuild.WriteTarball(filepath.Join(dir, "workload.tar"), workloadImage, img)
}

// start starts a component with its output in <work>/<name>.log.
func (n *node) start(name string, args ...string) (*proc, error) {
	log := filepath.Join(n.work, name+".log")
	f, err := os.Create(log) //nolint:gosec // in the suite's directory
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(args[0], args[1:]...) //nolint:gosec,noctx // components of the node, stopped in stop
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: log, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		_ = f.Close()
		close(p.exited)
	}()
	n.mu.Lock()
	n.procs = append(n.procs, p)
	n.mu.Unlock()
	return p, nil
}

func (n *node) containerd(ctx context.Context) error {
	root := filepath.Join(n.work, "containerd")
	n.socket = filepath.Join(root, "containerd.sock")
	cni := filepath.Join(n.work, "cni")
	if err := os.MkdirAll(cni, 0o750); err != nil {
		return err
	}
	// Only loopback: the runtime reports NetworkReady and the pods use the
	// host network.
	conflist := `{"cniVersion": "1.0.0", "name": "loopback-only", "plugins": [{"type": "loopback"}]}`
	if err := os.WriteFile(filepath.Join(cni, "10-loopback.conflist"), []byte(conflist), 0o600); err != nil {
		return err
	}
	config := fmt.Sprintf(`version = 2
root = %[1]q
state = %[2]q
[grpc]
  address = %[3]q
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "docker.io/library/pause-standin:dev"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = %[4]q
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = %[5]q
`, filepath.Join(root, "root"), filepath.Join(root, "state"), n.socket, filepath.Join(root, "runc"), cni)
	cfg := filepath.Join(n.work, "containerd.toml")
	if err := os.WriteFile(cfg, []byte(config), 0o600); err != nil {
		return err
	}
	p, err := n.start("containerd", "containerd", "--config", cfg)
	if err != nil {
		return err
	}
	if err := poll(ctx, time.Minute, "containerd socket", func(ctx context.Context) (bool, error) {
		select {
		case <-p.exited:
			return false, errors.New("containerd exited")
		default:
		}
		_, err := run(ctx, "ctr", "--address", n.socket, "version")
		return err == nil, err
	}); err != nil {
		return err
	}
	images, err := filepath.Glob(filepath.Join(n.work, "images", "*.tar"))
	if err != nil {
		return err
	}
	for _, img := range images {
		if _, err := run(ctx, "ctr", "--address", n.socket, "-n", "k8s.io", "image", "import", img); err != nil {
			return err
		}
	}
	return nil
}

func (n *node) controllers(context.Context) error {
	dir, err := apiserver.BinaryDir()
	if err != nil {
		return err
	}
	if _, err := n.start("kube-controller-manager", filepath.Join(dir, "kube-controller-manager"),
		"--kubeconfig="+n.kubeconfig,
		"--leader-elect=false",
		"--secure-port=0",
		"--controllers=node-lifecycle-controller,daemonset-controller,job-controller,deployment-controller,replicaset-controller,garbage-collector-controller,root-ca-certificate-publisher-controller,serviceaccount-controller",
		"--root-ca-file="+filepath.Join(n.work, "ca.crt"),
		"--use-service-account-credentials=false",
	); err != nil {
		return err
	}
	_, err = n.start("kube-scheduler", filepath.Join(dir, "kube-scheduler"),
		"--kubeconfig="+n.kubeconfig,
		"--authentication-kubeconfig="+n.kubeconfig,
		"--authorization-kubeconfig="+n.kubeconfig,
		"--leader-elect=false",
		"--secure-port=0",
	)
	return err
}

func (n *node) kubelet(ctx context.Context) error {
	dir, err := apiserver.BinaryDir()
	if err != nil {
		return err
	}
	config := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: /%s
cgroupsPerQOS: true
failSwapOn: false
readOnlyPort: 0
podLogsDir: %s
# The API server calls kubelet for logs and exec without a client
# certificate; only this network namespace reaches kubelet's port.
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
authorization:
  mode: AlwaysAllow
containerRuntimeEndpoint: unix://%s
imageGCHighThresholdPercent: 100
evictionHard: {}
syncFrequency: 10s
clusterDNS: [%s]
clusterDomain: %s
`, n.cgroupRoot, n.podLogs, n.socket, clusterDNSIP, clusterDomain)
	cfg := filepath.Join(n.work, "kubelet.yaml")
	if err := os.WriteFile(cfg, []byte(config), 0o600); err != nil {
		return err
	}
	p, err := n.start("kubelet", filepath.Join(dir, "kubelet"),
		"--config="+cfg,
		"--kubeconfig="+n.kubeconfig,
		"--hostname-override="+nodeName,
		"--root-dir="+kubeletRoot,
		"--v=2",
	)
	if err != nil {
		return err
	}
	return poll(ctx, 3*time.Minute, "node Ready", func(ctx context.Context) (bool, error) {
		select {
		case <-p.exited:
			return false, errors.New("kubelet exited")
		default:
		}
		no, err := n.env.Kube.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, c := range no.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				return len(no.Spec.Taints) == 0, nil
			}
		}
		return false, nil
	})
}

// kubectl runs kubectl with the admin kubeconfig.
func (n *node) kubectl(ctx context.Context, stdin string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "kubectl", append([]string{"--kubeconfig=" + n.kubeconfig}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("kubectl %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// install applies deploy/ through the test overlay, as a user does, and
// waits until the DaemonSet pod serves and kubelet registered the driver.
func (n *node) install(ctx context.Context) error {
	if err := n.apply(ctx, "overlay"); err != nil {
		return err
	}
	return n.waitPlugin(ctx, "", nodeServiceAccount)
}

// apply applies deploy/ through the test overlay e2e/node/<overlay>.
func (n *node) apply(ctx context.Context, overlay string) error {
	manifests, err := run(ctx, "kubectl", "kustomize", filepath.Join(apiserver.RepoRoot(), "e2e", "node", overlay))
	if err != nil {
		return err
	}
	_, err = n.kubectl(ctx, manifests, "apply", "--server-side", "-f", "-")
	return err
}

// nodeServiceAccount is the node topology's DaemonSet pods' ServiceAccount.
const nodeServiceAccount = "connectors-node"

// waitPlugin waits until a DaemonSet pod other than old, running as the
// ServiceAccount sa, is Ready and the node's CSINode lists the driver.
func (n *node) waitPlugin(ctx context.Context, old, sa string) error {
	return poll(ctx, 3*time.Minute, "the DaemonSet pod Ready and the driver registered", func(ctx context.Context) (bool, error) {
		pods, err := n.env.Kube.CoreV1().Pods("connectors-system").List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=connectors-node"})
		if err != nil {
			return false, err
		}
		ready := false
		for _, p := range pods.Items {
			if p.Name == old || p.DeletionTimestamp != nil || p.Spec.ServiceAccountName != sa || p.Labels["app.kubernetes.io/component"] == "proxy" {
				continue
			}
			for _, c := range p.Status.Conditions {
				if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
					ready = true
				}
			}
		}
		if !ready {
			return false, nil
		}
		csiNode, err := n.env.Kube.StorageV1().CSINodes().Get(ctx, nodeName, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, d := range csiNode.Spec.Drivers {
			if d.Name == "connectors-csi" {
				return true, nil
			}
		}
		return false, nil
	})
}

// logs returns every log line of the node: the components' and every
// container's.
func (n *node) logs() (string, error) {
	var b strings.Builder
	n.mu.Lock()
	procs := append([]*proc(nil), n.procs...)
	n.mu.Unlock()
	files := []string{}
	for _, p := range procs {
		files = append(files, p.log)
	}
	_ = filepath.WalkDir(n.podLogs, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, p)
		}
		return nil
	})
	for _, f := range files {
		data, err := os.ReadFile(f) //nolint:gosec // the suite's log files
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return "", err
		}
		b.Write(data)
	}
	return b.String(), nil
}

// dumpLogs prints the tails of the component logs and the pod logs.
func (n *node) dumpLogs() {
	n.mu.Lock()
	procs := append([]*proc(nil), n.procs...)
	n.mu.Unlock()
	for _, p := range procs {
		fmt.Fprintf(os.Stderr, "--- %s (%s)\n%s\n", p.name, p.log, tail(p.log, 30))
	}
	_ = filepath.WalkDir(n.podLogs, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			fmt.Fprintf(os.Stderr, "--- %s\n%s\n", p, tail(p, 20))
		}
		return nil
	})
}

func tail(file string, lines int) string {
	f, err := os.Open(file) //nolint:gosec // the suite's log files
	if err != nil {
		return err.Error()
	}
	defer func() { _ = f.Close() }()
	var all []string
	s := bufio.NewScanner(io.LimitReader(f, 64<<20))
	s.Buffer(make([]byte, 1<<20), 1<<20)
	for s.Scan() {
		all = append(all, s.Text())
	}
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// stop deletes the workloads, stops the components in reverse order, and
// removes the suite's cgroups.
func (n *node) stop() {
	if n.env != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		_, _ = n.kubectl(ctx, "", "delete", "pods", "--all", "--all-namespaces", "--wait=true", "--timeout=50s")
		cancel()
	}
	n.mu.Lock()
	procs := append([]*proc(nil), n.procs...)
	n.mu.Unlock()
	for i := len(procs) - 1; i >= 0; i-- {
		p := procs[i]
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(20 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	}
	// containerd's shims outlive it: they name its socket, in n.work.
	killNaming(n.work)
	for i := len(n.stops) - 1; i >= 0; i-- {
		n.stops[i]()
	}
	_ = unix.Unmount(kubeletRoot, unix.MNT_DETACH)
	// What containerd left mounted (sandboxes' shm) would keep its
	// directory from being removed.
	if infos, err := mount.ParseMountInfo("/proc/self/mountinfo"); err == nil {
		for i := len(infos) - 1; i >= 0; i-- {
			if strings.HasPrefix(infos[i].MountPoint, n.work+"/") {
				_ = unix.Unmount(infos[i].MountPoint, unix.MNT_DETACH)
			}
		}
	}
	if os.Getenv("KEEP_NODE_WORK") == "" {
		_ = os.RemoveAll(n.work)
	}
}

// killNaming kills the processes whose command line contains s.
func killNaming(s string) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return
	}
	for _, e := range entries {
		var pid int
		if _, err := fmt.Sscan(e.Name(), &pid); err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline")) //nolint:gosec // /proc entries
		if err == nil && strings.Contains(string(cmdline), s) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// podLog returns the container logs of the pod with the given UID.
func (n *node) podLog(t *testing.T, uid string) string {
	t.Helper()
	var b strings.Builder
	_ = filepath.WalkDir(n.podLogs, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.Contains(p, uid) {
			data, err := os.ReadFile(p) //nolint:gosec // the suite's log files
			if err == nil {
				b.Write(data)
			}
		}
		return nil
	})
	return b.String()
}
