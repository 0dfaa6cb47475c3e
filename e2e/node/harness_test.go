package node

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
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
)

const (
	kubeletRoot = "/var/lib/kubelet"
	// hostIP is the suite's own address on the bridge that links the
	// nodes, in the suite's network namespace: the API server and the
	// tests' servers, which listen on loopback there, are reached on it
	// (hostIP:port is forwarded to 127.0.0.1:port).
	hostIP = "10.253.0.1"
	// apiServerPort is the API server's port, on 127.0.0.1 and hostIP.
	apiServerPort = "6443"
	// clusterCIDR holds the nodes' pod CIDRs, which the controller
	// manager allocates.
	clusterCIDR = "10.244.0.0/16"
	// kubernetesServiceIP and clusterDNSIP are the ClusterIPs of the
	// kubernetes and kube-dns Services in the API server's Service range
	// (10.0.0.0/24).
	kubernetesServiceIP = "10.0.0.1"
	clusterDNSIP        = "10.0.0.10"
	clusterDomain       = "cluster.local"
	// testServersName is the name under which pods reach the tests'
	// servers (the cluster DNS maps it to hostIP); registryHost and
	// authHost are the registry story's names, mapped the same way.
	testServersName = "tests.node.test"
	// workloadImage holds the host's git, curl and sh and the pinned
	// kubectl for the workload pods.
	workloadImage = "connectors-e2e-workload:dev"
	// corednsImage runs the CoreDNS of hack/testbin.sh.
	corednsImage = "connectors-e2e-coredns:dev"
)

// nodeNames are the cluster's nodes; nodeName is the first.
var nodeNames = []string{"connectors-e2e-node-a", "connectors-e2e-node-b"}

var nodeName = nodeNames[0]

// cluster is the running cluster: the API server, the scheduler and the
// controller manager in the suite's namespaces, and its nodes.
type cluster struct {
	work       string
	env        *apiserver.Env
	kubeconfig string
	// nodeKubeconfig is the admin kubeconfig naming the API server at
	// hostIP, for the nodes' kubelet and kube-proxy.
	nodeKubeconfig string
	nodes          []*worker

	volumes *volumeWatch
	// republish is the republish story, started with the cluster.
	republish *republishStory

	mu    sync.Mutex
	procs []*proc
	stops []func()
}

// worker is one node: a mount and network namespace of its own (held by
// a sleeping process), with its containerd, kubelet and kube-proxy.
type worker struct {
	name string
	ip   string
	work string
	// holder is the process that holds the node's namespaces.
	holder  *exec.Cmd
	socket  string
	podLogs string
	// cgroupRoot is kubelet's cgroupRoot, of this run and node alone.
	cgroupRoot string
	podCIDR    string
	kubelet    *proc
}

// proc is a component process and its log file.
type proc struct {
	name   string
	cmd    *exec.Cmd
	log    string
	exited chan struct{}
}

func startCluster() (*cluster, error) {
	ctx := context.Background()
	work, err := os.MkdirTemp("", "connectors-node-e2e-")
	if err != nil {
		return nil, err
	}
	c := &cluster{work: work, volumes: &volumeWatch{files: map[string]string{}}}
	for i, name := range nodeNames {
		c.nodes = append(c.nodes, &worker{
			name: name, ip: fmt.Sprintf("10.253.0.%d", 10+i), work: filepath.Join(work, name),
			cgroupRoot: "connectors-node-e2e-" + filepath.Base(work) + "-" + name,
		})
	}
	steps := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"network", c.network},
		{"mounts", c.mounts},
		{"API server", c.apiServer},
		{"images", c.buildImages},
		{"controllers", c.controllers},
		{"nodes", c.startNodes},
		{"cluster DNS", c.clusterDNS},
		{"install", c.install},
	}
	for _, s := range steps {
		start := time.Now()
		if err := s.fn(ctx); err != nil {
			return c, fmt.Errorf("%s: %w", s.name, err)
		}
		fmt.Fprintf(os.Stderr, "real-node suite: %s ready in %s\n", s.name, time.Since(start).Round(100*time.Millisecond))
	}
	watchCtx, stopWatch := context.WithCancel(ctx)
	go c.volumes.run(watchCtx, c.nodes)
	c.stops = append(c.stops, stopWatch)
	return c, nil
}

// network makes the bridge nodes0 that links the nodes to the suite's
// namespace, with hostIP on it, routes nothing yet (startNodes adds each
// node's pod CIDR), forwards between the nodes, and forwards hostIP:port
// to 127.0.0.1:port so the nodes reach what listens on loopback here.
func (c *cluster) network(ctx context.Context) error {
	for _, args := range [][]string{
		{"ip", "link", "set", "lo", "up"},
		{"ip", "link", "add", "nodes0", "type", "bridge"},
		{"ip", "addr", "add", hostIP + "/24", "dev", "nodes0"},
		{"ip", "link", "set", "nodes0", "up"},
		{"iptables", "-t", "nat", "-A", "PREROUTING", "-i", "nodes0", "-d", hostIP, "-p", "tcp", "-j", "DNAT", "--to-destination", "127.0.0.1"},
	} {
		if _, err := run(ctx, args[0], args[1:]...); err != nil {
			return err
		}
	}
	return sysctls(map[string]string{
		"net/ipv4/ip_forward":                 "1",
		"net/ipv4/conf/all/route_localnet":    "1",
		"net/ipv4/conf/nodes0/route_localnet": "1",
	})
}

// sysctls writes /proc/sys entries of the calling process's network
// namespace.
func sysctls(values map[string]string) error {
	for k, v := range values {
		if err := os.WriteFile(filepath.Join("/proc/sys", k), []byte(v), 0o600); err != nil {
			return fmt.Errorf("sysctl %s: %w", k, err)
		}
	}
	return nil
}

// mounts makes the suite's mount namespace private and hides the
// machine-wide sysctls kubelet would set behind files that already hold
// kubelet's values; the nodes' namespaces inherit both.
func (c *cluster) mounts(context.Context) error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("making / private: %w", err)
	}
	for entry, value := range map[string]string{
		"/proc/sys/vm/overcommit_memory":      "1",
		"/proc/sys/kernel/panic":              "10",
		"/proc/sys/kernel/panic_on_oops":      "1",
		"/proc/sys/kernel/keys/root_maxkeys":  "1000000",
		"/proc/sys/kernel/keys/root_maxbytes": "25000000",
	} {
		f := filepath.Join(c.work, "sysctl-"+filepath.Base(entry))
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
func (w *worker) cgroups() (func(), error) {
	hier, err := hierarchies()
	if err != nil {
		return nil, err
	}
	for _, h := range hier {
		d := filepath.Join(h, w.cgroupRoot)
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
		if filepath.Base(h) == "cpuset" {
			for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
				b, err := os.ReadFile(filepath.Join(h, f)) //nolint:gosec // cgroup files
				if err != nil {
					return nil, err
				}
				if err := os.WriteFile(filepath.Join(d, f), b, 0o600); err != nil { //nolint:gosec // a cgroup directory the suite made
					return nil, err
				}
			}
		}
	}
	return func() { removeCgroups(hier, w.cgroupRoot) }, nil
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

// apiServer starts the API server on 127.0.0.1, reached from the nodes on
// hostIP; it advertises hostIP as the kubernetes Service's endpoint, and
// its serving certificate names the Service's ClusterIP and DNS names, as
// in-cluster clients dial them.
func (c *cluster) apiServer(context.Context) error {
	env, err := apiserver.New(apiserver.Options{ServiceAccountAdmission: true, Port: apiServerPort,
		ServingNames: []string{hostIP, kubernetesServiceIP, "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc." + clusterDomain},
		APIServerFlags: map[string]string{
			"advertise-address": hostIP,
			// logs and exec: the node's name does not resolve here, its address does.
			"kubelet-preferred-address-types": "InternalIP",
		}})
	if err != nil {
		return err
	}
	c.env = env
	c.stops = append(c.stops, func() { _ = env.Stop() })
	c.kubeconfig = filepath.Join(c.work, "admin.kubeconfig")
	if err := env.WriteAdminKubeconfig(c.kubeconfig); err != nil {
		return err
	}
	b, err := os.ReadFile(c.kubeconfig)
	if err != nil {
		return err
	}
	local := "https://127.0.0.1:" + apiServerPort
	if !strings.Contains(string(b), local) {
		return fmt.Errorf("the admin kubeconfig does not name %s", local)
	}
	c.nodeKubeconfig = filepath.Join(c.work, "node.kubeconfig")
	if err := os.WriteFile(c.nodeKubeconfig, []byte(strings.ReplaceAll(string(b), local, "https://"+hostIP+":"+apiServerPort)), 0o600); err != nil { //nolint:gosec // in the suite's directory

		return err
	}
	return os.WriteFile(filepath.Join(c.work, "ca.crt"), env.Config.CAData, 0o600)
}

// buildImages builds the images with build/image, as make image does but
// for the host's architecture alone (the node runs that image; no other
// architecture is built), the workload image from the host's git, curl and sh and the pinned
// kubectl, and CoreDNS's image.
func (c *cluster) buildImages(ctx context.Context) error {
	dir := filepath.Join(c.work, "images")
	cmd := exec.CommandContext(ctx, "go", "run", "./build/image", "--out", dir, "--tag", "dev", "--platforms", "linux/"+runtime.GOARCH) //nolint:gosec // the go tool building this repository
	cmd.Dir = apiserver.RepoRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go run ./build/image: %w\n%s", err, out)
	}
	files, links, err := imagebuild.HostFiles(ctx, "/bin/sh", "/usr/bin/git", "/usr/bin/curl", "/usr/bin/cat", "/usr/bin/ls", "/usr/bin/id", "/usr/bin/sleep", "/usr/bin/rm",
		"/usr/lib/git-core/git-remote-http", "/usr/lib/git-core/git-remote-https", "/etc/ssl/certs/ca-certificates.crt", "/etc/nsswitch.conf")
	if err != nil {
		return err
	}
	bin, err := apiserver.BinaryDir()
	if err != nil {
		return err
	}
	kubectl, err := os.ReadFile(filepath.Join(bin, "kubectl")) //nolint:gosec // the test binaries' cache
	if err != nil {
		return err
	}
	files = append(files, imagebuild.File{Path: "/usr/bin/kubectl", Mode: 0o755, Data: kubectl})
	img, err := imagebuild.Build(imagebuild.Spec{
		Files: files, Symlinks: links,
		Dirs:       map[string]int64{"/tmp": 0o1777},
		Env:        []string{"PATH=/usr/bin:/bin:/usr/lib/git-core"},
		Entrypoint: []string{"/bin/sh"},
	}, runtime.GOARCH)
	if err != nil {
		return err
	}
	if err := imagebuild.WriteTarball(filepath.Join(dir, "workload.tar"), workloadImage, img); err != nil {
		return err
	}
	coredns, err := os.ReadFile(filepath.Join(bin, "coredns")) //nolint:gosec // the test binaries' cache
	if err != nil {
		return fmt.Errorf("%w (make testbin builds it)", err)
	}
	img, err = imagebuild.Build(imagebuild.Spec{
		Files:      []imagebuild.File{{Path: "/coredns", Mode: 0o755, Data: coredns}},
		Entrypoint: []string{"/coredns"},
	}, runtime.GOARCH)
	if err != nil {
		return err
	}
	return imagebuild.WriteTarball(filepath.Join(dir, "coredns.tar"), corednsImage, img)
}

// start starts a component with its output in <dir>/<name>.log.
func (c *cluster) start(dir, name string, args ...string) (*proc, error) {
	log := filepath.Join(dir, name+".log")
	f, err := os.Create(log) //nolint:gosec // in the suite's directory
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(args[0], args[1:]...) //nolint:gosec,noctx // components of the cluster, stopped in stop
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
	c.mu.Lock()
	c.procs = append(c.procs, p)
	c.mu.Unlock()
	return p, nil
}

func (c *cluster) controllers(context.Context) error {
	dir, err := apiserver.BinaryDir()
	if err != nil {
		return err
	}
	if _, err := c.start(c.work, "kube-controller-manager", filepath.Join(dir, "kube-controller-manager"),
		"--kubeconfig="+c.kubeconfig,
		"--leader-elect=false",
		"--secure-port=0",
		"--controllers=node-lifecycle-controller,node-ipam-controller,daemonset-controller,job-controller,deployment-controller,replicaset-controller,garbage-collector-controller,root-ca-certificate-publisher-controller,serviceaccount-controller,endpointslice-controller,endpoints-controller",
		"--allocate-node-cidrs",
		"--cluster-cidr="+clusterCIDR,
		"--node-cidr-mask-size=24",
		"--service-cluster-ip-range=10.0.0.0/24",
		"--root-ca-file="+filepath.Join(c.work, "ca.crt"),
		"--use-service-account-credentials=false",
	); err != nil {
		return err
	}
	_, err = c.start(c.work, "kube-scheduler", filepath.Join(dir, "kube-scheduler"),
		"--kubeconfig="+c.kubeconfig,
		"--authentication-kubeconfig="+c.kubeconfig,
		"--authorization-kubeconfig="+c.kubeconfig,
		"--leader-elect=false",
		"--secure-port=0",
	)
	return err
}

// startNodes starts every node and waits until all are Ready.
func (c *cluster) startNodes(ctx context.Context) error {
	for _, w := range c.nodes {
		if err := c.startNode(ctx, w); err != nil {
			return fmt.Errorf("node %s: %w", w.name, err)
		}
	}
	return nil
}

// in returns the command line that runs args in the node's namespaces.
func (w *worker) in(args ...string) []string {
	return append([]string{"nsenter", "--target", strconv.Itoa(w.holder.Process.Pid), "--mount", "--net", "--"}, args...)
}

// root is the node's view of the file system, from the suite's namespace.
func (w *worker) root() string {
	return fmt.Sprintf("/proc/%d/root", w.holder.Process.Pid)
}

// sh runs a shell script in the node's namespaces.
func (w *worker) sh(ctx context.Context, script string) (string, error) {
	args := w.in("sh", "-ec", script)
	return run(ctx, args[0], args[1:]...)
}

// startNode makes the node's namespaces, links it to nodes0, mounts its
// kubelet root dir, and starts containerd, kubelet and kube-proxy; it
// writes the node's CNI configuration once the controller manager has
// given it a pod CIDR.
func (c *cluster) startNode(ctx context.Context, w *worker) error {
	w.podLogs = filepath.Join(w.work, "pod-logs")
	for _, d := range []string{filepath.Join(w.work, "kubelet"), filepath.Join(w.work, "cni")} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return err
		}
	}
	stop, err := w.cgroups()
	if err != nil {
		return err
	}
	c.stops = append(c.stops, stop)
	holder := exec.Command("unshare", "--mount", "--propagation", "private", "--net", "--", "sleep", "infinity") //nolint:noctx // killed in stop
	holder.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := holder.Start(); err != nil {
		return err
	}
	w.holder = holder
	c.stops = append(c.stops, func() { _ = holder.Process.Kill(); _ = holder.Wait() })
	self, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		return err
	}
	if err := poll(ctx, 10*time.Second, "the node's namespaces", func(context.Context) (bool, error) {
		ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", holder.Process.Pid))
		return err == nil && ns != self, err
	}); err != nil {
		return err
	}
	host := "veth-" + w.name[len(w.name)-1:]
	for _, args := range [][]string{
		{"ip", "link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", strconv.Itoa(holder.Process.Pid)},
		{"ip", "link", "set", host, "master", "nodes0"},
		{"ip", "link", "set", host, "up"},
	} {
		if _, err := run(ctx, args[0], args[1:]...); err != nil {
			return err
		}
	}
	if _, err := w.sh(ctx, fmt.Sprintf(`ip link set lo up
ip addr add %[1]s/24 dev eth0
ip link set eth0 up
ip route add default via %[2]s
echo 1 > /proc/sys/net/ipv4/ip_forward
echo 1 > /proc/sys/net/bridge/bridge-nf-call-iptables
mount --bind %[3]s %[4]s
mount --make-shared %[4]s
`, w.ip, hostIP, filepath.Join(w.work, "kubelet"), kubeletRoot)); err != nil {
		return err
	}
	if err := c.containerd(ctx, w); err != nil {
		return err
	}
	if err := c.kubelet(w, "kubelet"); err != nil {
		return err
	}
	if err := c.podNetwork(ctx, w); err != nil {
		return err
	}
	if err := c.waitReady(ctx, w); err != nil {
		return err
	}
	return c.kubeProxy(ctx, w)
}

func (c *cluster) containerd(ctx context.Context, w *worker) error {
	root := filepath.Join(w.work, "containerd")
	w.socket = filepath.Join(root, "containerd.sock")
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
`, filepath.Join(root, "root"), filepath.Join(root, "state"), w.socket, filepath.Join(root, "runc"), filepath.Join(w.work, "cni"))
	cfg := filepath.Join(w.work, "containerd.toml")
	if err := os.WriteFile(cfg, []byte(config), 0o600); err != nil {
		return err
	}
	p, err := c.start(w.work, "containerd", w.in("containerd", "--config", cfg)...)
	if err != nil {
		return err
	}
	if err := poll(ctx, time.Minute, "containerd socket", func(ctx context.Context) (bool, error) {
		select {
		case <-p.exited:
			return false, errors.New("containerd exited")
		default:
		}
		_, err := run(ctx, "ctr", "--address", w.socket, "version")
		return err == nil, err
	}); err != nil {
		return err
	}
	images, err := filepath.Glob(filepath.Join(c.work, "images", "*.tar"))
	if err != nil {
		return err
	}
	for _, img := range images {
		if err := w.importImage(ctx, img); err != nil {
			return err
		}
	}
	return nil
}

// importImage imports an image tarball into the node's containerd.
func (w *worker) importImage(ctx context.Context, tar string) error {
	_, err := run(ctx, "ctr", "--address", w.socket, "-n", "k8s.io", "image", "import", tar)
	return err
}

// kubelet starts the node's kubelet with its output in <log>.log.
func (c *cluster) kubelet(w *worker, log string) error {
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
# certificate; only the suite's namespaces reach kubelet's port.
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
`, w.cgroupRoot, w.podLogs, w.socket, clusterDNSIP, clusterDomain)
	cfg := filepath.Join(w.work, "kubelet.yaml")
	if err := os.WriteFile(cfg, []byte(config), 0o600); err != nil {
		return err
	}
	p, err := c.start(w.work, log, w.in(filepath.Join(dir, "kubelet"),
		"--config="+cfg,
		"--kubeconfig="+c.nodeKubeconfig,
		"--hostname-override="+w.name,
		"--node-ip="+w.ip,
		"--root-dir="+kubeletRoot,
		"--v=2",
	)...)
	if err != nil {
		return err
	}
	w.kubelet = p
	return nil
}

// podNetwork waits for the node's pod CIDR, writes the node's bridge CNI
// configuration with host-local addresses from it, and routes the CIDR to
// the node from the suite's namespace (the nodes' default route).
func (c *cluster) podNetwork(ctx context.Context, w *worker) error {
	if err := poll(ctx, 2*time.Minute, "the node's pod CIDR", func(ctx context.Context) (bool, error) {
		select {
		case <-w.kubelet.exited:
			return false, errors.New("kubelet exited")
		default:
		}
		no, err := c.env.Kube.CoreV1().Nodes().Get(ctx, w.name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		w.podCIDR = no.Spec.PodCIDR
		return w.podCIDR != "", nil
	}); err != nil {
		return err
	}
	conflist := fmt.Sprintf(`{"cniVersion": "1.0.0", "name": "pods", "plugins": [
  {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": %q}]], "routes": [{"dst": "0.0.0.0/0"}], "dataDir": %q}},
  {"type": "portmap", "capabilities": {"portMappings": true}}
]}`, w.podCIDR, filepath.Join(w.work, "ipam"))
	if err := os.WriteFile(filepath.Join(w.work, "cni", "10-pods.conflist"), []byte(conflist), 0o600); err != nil {
		return err
	}
	_, err := run(ctx, "ip", "route", "add", w.podCIDR, "via", w.ip)
	return err
}

// waitReady waits until the node is Ready without taints.
func (c *cluster) waitReady(ctx context.Context, w *worker) error {
	return poll(ctx, 3*time.Minute, "node "+w.name+" Ready", func(ctx context.Context) (bool, error) {
		select {
		case <-w.kubelet.exited:
			return false, errors.New("kubelet exited")
		default:
		}
		no, err := c.env.Kube.CoreV1().Nodes().Get(ctx, w.name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, cd := range no.Status.Conditions {
			if cd.Type == corev1.NodeReady && cd.Status == corev1.ConditionTrue {
				return len(no.Spec.Taints) == 0, nil
			}
		}
		return false, nil
	})
}

// kubeProxy starts the node's kube-proxy in iptables mode. It changes no
// machine-wide conntrack setting.
func (c *cluster) kubeProxy(ctx context.Context, w *worker) error {
	dir, err := apiserver.BinaryDir()
	if err != nil {
		return err
	}
	config := fmt.Sprintf(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clusterCIDR: %s
hostnameOverride: %s
clientConnection: {kubeconfig: %s}
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
iptables: {localhostNodePorts: false}
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
`, clusterCIDR, w.name, c.nodeKubeconfig)
	cfg := filepath.Join(w.work, "kube-proxy.yaml")
	if err := os.WriteFile(cfg, []byte(config), 0o600); err != nil {
		return err
	}
	p, err := c.start(w.work, "kube-proxy", w.in(filepath.Join(dir, "kube-proxy"), "--config="+cfg, "--v=2")...)
	if err != nil {
		return err
	}
	return poll(ctx, time.Minute, "kube-proxy of "+w.name+" healthy", func(ctx context.Context) (bool, error) {
		select {
		case <-p.exited:
			return false, errors.New("kube-proxy exited")
		default:
		}
		_, err := w.sh(ctx, "iptables -t nat -S KUBE-SERVICES | grep -q default/kubernetes")
		return err == nil, err
	})
}

// kubectl runs kubectl with the admin kubeconfig.
func (c *cluster) kubectl(ctx context.Context, stdin string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "kubectl", append([]string{"--kubeconfig=" + c.kubeconfig}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("kubectl %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// clusterDNS runs CoreDNS as clusters do: a Deployment in kube-system
// behind the kube-dns Service at clusterDNSIP (kubelet's clusterDNS), with
// the kubernetes plugin answering the Services' names; its hosts block maps
// the tests' server names to hostIP.
func (c *cluster) clusterDNS(ctx context.Context) error {
	if _, err := c.kubectl(ctx, fmt.Sprintf(corednsManifests, corednsImage, hostIP, testServersName, registryHost, authHost, clusterDomain, clusterDNSIP), "apply", "-f", "-"); err != nil {
		return err
	}
	return poll(ctx, 3*time.Minute, "CoreDNS Ready", func(ctx context.Context) (bool, error) {
		d, err := c.env.Kube.AppsV1().Deployments("kube-system").Get(ctx, "coredns", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return d.Status.ReadyReplicas == 1, nil
	})
}

// corednsManifests is CoreDNS's Deployment, Service, Corefile and RBAC,
// formatted with the image, hostIP, the names mapped to it, the cluster
// domain and the Service's ClusterIP.
const corednsManifests = `apiVersion: v1
kind: ServiceAccount
metadata: {name: coredns, namespace: kube-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: system:coredns}
rules:
  - {apiGroups: [""], resources: [endpoints, services, pods, namespaces], verbs: [list, watch]}
  - {apiGroups: [discovery.k8s.io], resources: [endpointslices], verbs: [list, watch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: system:coredns}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: system:coredns}
subjects: [{kind: ServiceAccount, name: coredns, namespace: kube-system}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: coredns, namespace: kube-system}
data:
  Corefile: |
    .:53 {
        errors
        log
        ready :8181
        hosts {
            %[2]s %[3]s %[4]s %[5]s
            fallthrough
        }
        kubernetes %[6]s in-addr.arpa ip6.arpa {
            pods insecure
            fallthrough in-addr.arpa ip6.arpa
        }
    }
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: coredns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  replicas: 1
  selector: {matchLabels: {k8s-app: kube-dns}}
  template:
    metadata: {labels: {k8s-app: kube-dns}}
    spec:
      serviceAccountName: coredns
      priorityClassName: system-cluster-critical
      dnsPolicy: Default
      containers:
        - name: coredns
          image: %[1]s
          imagePullPolicy: Never
          args: [-conf, /etc/coredns/Corefile]
          ports:
            - {name: dns, containerPort: 53, protocol: UDP}
            - {name: dns-tcp, containerPort: 53, protocol: TCP}
          readinessProbe:
            httpGet: {path: /ready, port: 8181}
            periodSeconds: 2
          volumeMounts: [{name: config, mountPath: /etc/coredns, readOnly: true}]
      volumes: [{name: config, configMap: {name: coredns}}]
---
apiVersion: v1
kind: Service
metadata: {name: kube-dns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  selector: {k8s-app: kube-dns}
  clusterIP: %[7]s
  ports:
    - {name: dns, port: 53, protocol: UDP}
    - {name: dns-tcp, port: 53, protocol: TCP}
`

// install applies deploy/ through the test overlay, as a user does, and
// waits until the DaemonSet pod of every node serves and its kubelet
// registered the driver.
func (c *cluster) install(ctx context.Context) error {
	if err := c.apply(ctx, "overlay"); err != nil {
		return err
	}
	return c.waitPlugin(ctx, "", nodeServiceAccount)
}

// apply applies deploy/ through the test overlay e2e/node/<overlay>.
func (c *cluster) apply(ctx context.Context, overlay string) error {
	manifests, err := run(ctx, "kubectl", "kustomize", filepath.Join(apiserver.RepoRoot(), "e2e", "node", overlay))
	if err != nil {
		return err
	}
	_, err = c.kubectl(ctx, manifests, "apply", "--server-side", "-f", "-")
	return err
}

// nodeServiceAccount is the node topology's DaemonSet pods' ServiceAccount.
const nodeServiceAccount = "connectors-node"

// waitPlugin waits until every node has a Ready DaemonSet pod other than
// old, running as the ServiceAccount sa, and its CSINode lists the driver.
func (c *cluster) waitPlugin(ctx context.Context, old, sa string) error {
	return poll(ctx, 3*time.Minute, "a DaemonSet pod Ready and the driver registered on every node", func(ctx context.Context) (bool, error) {
		pods, err := c.env.Kube.CoreV1().Pods(systemNamespace).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=connectors-node"})
		if err != nil {
			return false, err
		}
		ready := map[string]bool{}
		for _, p := range pods.Items {
			if p.Name == old || p.DeletionTimestamp != nil || p.Spec.ServiceAccountName != sa || p.Labels["app.kubernetes.io/component"] == "proxy" {
				continue
			}
			for _, cd := range p.Status.Conditions {
				if cd.Type == corev1.PodReady && cd.Status == corev1.ConditionTrue {
					ready[p.Spec.NodeName] = true
				}
			}
		}
		for _, w := range c.nodes {
			if !ready[w.name] {
				return false, nil
			}
			ok, err := c.driverRegistered(ctx, w.name)
			if !ok {
				return false, err
			}
		}
		return true, nil
	})
}

// driverRegistered reports whether the node's CSINode lists the driver.
func (c *cluster) driverRegistered(ctx context.Context, node string) (bool, error) {
	csiNode, err := c.env.Kube.StorageV1().CSINodes().Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		return false, err
	}
	for _, d := range csiNode.Spec.Drivers {
		if d.Name == "connectors-csi" {
			return true, nil
		}
	}
	return false, nil
}

// node returns the node named name.
func (c *cluster) node(name string) *worker {
	for _, w := range c.nodes {
		if w.name == name {
			return w
		}
	}
	return nil
}

// logFiles lists the components' logs and every container's.
func (c *cluster) logFiles() []string {
	c.mu.Lock()
	procs := append([]*proc(nil), c.procs...)
	c.mu.Unlock()
	files := []string{}
	for _, p := range procs {
		files = append(files, p.log)
	}
	for _, w := range c.nodes {
		_ = filepath.WalkDir(w.podLogs, func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				files = append(files, p)
			}
			return nil
		})
	}
	return files
}

// logs returns every log line of the cluster: the components' and every
// container's.
func (c *cluster) logs() (string, error) {
	var b strings.Builder
	for _, f := range c.logFiles() {
		data, err := os.ReadFile(f) //nolint:gosec // the suite's log files
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return "", err
		}
		b.Write(data)
	}
	return b.String(), nil
}

// dumpLogs prints the tails of the component logs and the pod logs.
func (c *cluster) dumpLogs() {
	for _, f := range c.logFiles() {
		fmt.Fprintf(os.Stderr, "--- %s\n%s\n", f, tail(f, 30))
	}
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
// removes the suite's cgroups and namespaces.
func (c *cluster) stop() {
	if c.env != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		_, _ = c.kubectl(ctx, "", "delete", "pods", "--all", "--all-namespaces", "--wait=true", "--timeout=50s")
		cancel()
	}
	c.mu.Lock()
	procs := append([]*proc(nil), c.procs...)
	c.mu.Unlock()
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
	// containerd's shims outlive it: they name its socket, in c.work.
	killNaming(c.work)
	for i := len(c.stops) - 1; i >= 0; i-- {
		c.stops[i]()
	}
	// What containerd left mounted (sandboxes' shm) would keep its
	// directory from being removed; the nodes' mounts went with their
	// namespaces.
	if infos, err := mount.ParseMountInfo("/proc/self/mountinfo"); err == nil {
		for i := len(infos) - 1; i >= 0; i-- {
			if strings.HasPrefix(infos[i].MountPoint, c.work+"/") {
				_ = unix.Unmount(infos[i].MountPoint, unix.MNT_DETACH)
			}
		}
	}
	if os.Getenv("KEEP_NODE_WORK") == "" {
		_ = os.RemoveAll(c.work)
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
func (c *cluster) podLog(t *testing.T, uid string) string {
	t.Helper()
	var b strings.Builder
	for _, w := range c.nodes {
		_ = filepath.WalkDir(w.podLogs, func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() && strings.Contains(p, uid) {
				data, err := os.ReadFile(p) //nolint:gosec // the suite's log files
				if err == nil {
					b.Write(data)
				}
			}
			return nil
		})
	}
	return b.String()
}
