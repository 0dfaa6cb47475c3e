package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/connectors-node/connectors-node/proxy"
	"github.com/connectors-node/connectors-node/test/apiserver"
	"github.com/connectors-node/connectors-node/test/nodeproc"
	"github.com/connectors-node/connectors-node/test/servers/kubelet"
	"github.com/connectors-node/connectors-node/test/servers/manifests"
	"github.com/connectors-node/connectors-node/test/testenv"
)

const (
	// audience is the proxy audience of deploy/csidriver.yaml's tokenRequests.
	audience = "connectors-proxy"
	// nodeName is the node the suite's connectors-node serves; podIP is
	// the address of every pod on it, the loopback address the clients
	// connect from.
	nodeName = "e2e-node"
	podIP    = "127.0.0.1"
)

// harness is what every story shares: one API server, one connectors-node
// subprocess, and a kubelet stand-in connected to its CSI socket.
type harness struct {
	env *apiserver.Env
	// work is the suite's scratch directory.
	work string
	// proxyAddr is the proxy listener, host:port; publicURL is how pods reach it.
	proxyAddr string
	publicURL string
	opsAddr   string
	// bin is the connectors-node binary the suite built.
	bin string
	// logPath holds everything connectors-node wrote to stdout and stderr.
	logPath string
	kubelet *kubelet.Kubelet

	mu sync.Mutex
	// forbidden are strings no line of the node log may hold, by label.
	forbidden map[string]string
}

// skipError is a set-up failure that skips the suite outside CI.
type skipError struct{ error }

var (
	setupOnce sync.Once
	shared    *harness
	setupErr  error
	// stops undo the set-up, last first; they run after every test.
	stops []func()
)

func TestMain(m *testing.M) {
	code := m.Run()
	if shared != nil {
		if err := shared.checkLog(); err != nil {
			fmt.Fprintf(os.Stderr, "FAIL: %v\n", err)
			code = 1
		}
	}
	for i := len(stops) - 1; i >= 0; i-- {
		stops[i]()
	}
	if shared != nil {
		if err := leftMounts(shared.work); err != nil {
			fmt.Fprintf(os.Stderr, "FAIL: %v\n", err)
			code = 1
		}
		_ = os.RemoveAll(shared.work)
	}
	os.Exit(code)
}

// suite returns the shared harness, starting it on first use. Without root
// or the test binaries it skips the test (fails it in CI).
func suite(t *testing.T) *harness {
	t.Helper()
	if testing.Short() {
		t.Skip("the end-to-end suite needs root and the test API server; skipped with -short (make test-unit)")
	}
	setupOnce.Do(func() { shared, setupErr = setup() })
	if setupErr != nil {
		var skip skipError
		if errors.As(setupErr, &skip) && !testenv.InCI() {
			t.Skipf("skipping the end-to-end suite: %v", setupErr)
		}
		t.Fatalf("setting up the end-to-end suite: %v", setupErr)
	}
	return shared
}

// needTool skips the test (fails it in CI) when a client it runs is missing.
func needTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		testenv.SkipOrFail(t, "%s not found (make deps installs it): %v", name, err)
	}
}

func setup() (*harness, error) {
	if os.Geteuid() != 0 {
		return nil, skipError{errors.New("needs root: a published volume is a tmpfs mount")}
	}
	if _, err := apiserver.BinaryDir(); err != nil {
		return nil, skipError{err}
	}
	work, err := os.MkdirTemp("", "connectors-e2e-")
	if err != nil {
		return nil, err
	}
	h := &harness{work: work, forbidden: map[string]string{}}

	// Build the binary while the API server starts.
	bin := filepath.Join(work, "connectors-node")
	built := make(chan error, 1)
	h.bin = bin
	go func() { built <- nodeproc.Build(context.Background(), nodeproc.MainPackage, bin) }()
	// The project's CRDs, and Tekton's ApprovalTask for the approval story.
	root := apiserver.RepoRoot()
	env, err := apiserver.New(apiserver.Options{CRDDirs: []string{
		filepath.Join(root, "deploy", "base", "crds"),
		filepath.Join(root, "test", "standins", "approvaltask"),
	}})
	if err != nil {
		return h, errors.Join(fmt.Errorf("starting the API server: %w", err), <-built)
	}
	stops = append(stops, func() { _ = env.Stop() })
	h.env = env
	if err := <-built; err != nil {
		return h, err
	}

	if err := manifests.InstallBase(context.Background(), env.Client, apiserver.RepoRoot()); err != nil {
		return h, err
	}
	if err := kubelet.RegisterNode(context.Background(), env.Kube, nodeName); err != nil {
		return h, err
	}
	if err := h.startNode(bin); err != nil {
		return h, err
	}
	return h, nil
}

// startNode runs the binary with a kubeconfig for deploy/'s ServiceAccount,
// so the suite also proves deploy/rbac.yaml is enough, and waits until both
// /readyz and the CSI Probe say ready.
func (h *harness) startNode(bin string) error {
	kubeconfig := filepath.Join(h.work, "node.kubeconfig")
	if err := nodeproc.WriteKubeconfig(context.Background(), h.env, kubeconfig, time.Hour); err != nil {
		return err
	}
	node, err := nodeproc.Start(context.Background(), nodeproc.Options{
		Binary:     bin,
		Name:       nodeName,
		Kubeconfig: kubeconfig,
		// The pods' volume targets live in the work directory.
		Work: h.work,
		// A name, as in a cluster: the proxy refuses forward targets on its
		// public host name, and the Git servers of the stories are on 127.0.0.1.
		PublicHost: "localhost",
		// An empty PATH, as in the image, which holds no program: a publish
		// that ran mount or umount fails every story.
		Env: []string{"PATH="},
		Args: []string{
			// No cluster DNS here: host-form status addresses (c-<name>.<ns>.svc)
			// would not resolve for the tools the stories run.
			"--status=false",
			// The most detail it logs: more lines that must not hold a secret.
			"--v=5",
		},
	})
	if err != nil {
		return err
	}
	stops = append(stops, node.Stop)
	h.proxyAddr, h.opsAddr, h.publicURL = node.Proxy, node.Ops, node.PublicURL
	h.logPath, h.kubelet = node.LogPath, node.Kubelet
	return nil
}

// mint asks the TokenRequest API for a ServiceAccount token.
func (h *harness) mint(ns, sa string, audiences []string, lifetime time.Duration) (string, error) {
	secs := int64(lifetime / time.Second)
	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{Audiences: audiences, ExpirationSeconds: &secs}}
	resp, err := h.env.Kube.CoreV1().ServiceAccounts(ns).CreateToken(context.Background(), sa, req, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("minting a token for %s/%s: %w", ns, sa, err)
	}
	return resp.Status.Token, nil
}

// forbid adds strings that no line of the node log may ever hold.
func (h *harness) forbid(label string, values ...string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, v := range values {
		if v != "" {
			h.forbidden[v] = label
		}
	}
}

// checkLog scans every line the node logged so far for the strings every
// story forbade.
func (h *harness) checkLog() error {
	h.mu.Lock()
	forbidden := make(map[string]string, len(h.forbidden))
	for v, l := range h.forbidden {
		forbidden[v] = l
	}
	h.mu.Unlock()
	return h.scanLog(forbidden)
}

// scanLog scans every line the node logged so far for the forbidden
// strings. The error names the line number and what it held, never the
// value.
func (h *harness) scanLog(forbidden map[string]string) error {
	awaitAuditWindow()
	return scanLogFile(h.logPath, forbidden)
}

// scanLogFile scans every line of a connectors-node log for the forbidden
// strings. The error names the line number and what it held, never the
// value.
func scanLogFile(path string, forbidden map[string]string) error {
	f, err := os.Open(path) //nolint:gosec // a log of the suite's own processes
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	var errs []error
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		for v, label := range forbidden {
			if strings.Contains(line, v) {
				errs = append(errs, fmt.Errorf("connectors-node log line %d holds %s", n, label))
			}
		}
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// awaitAuditWindow waits until the audit lines of requests made so far are
// in the node's log: the proxy writes them at the latest at the end of one
// batch window.
func awaitAuditWindow() { time.Sleep(2 * proxy.AuditBatchWindow) }

// mountPoints lists the mount points under dir.
func mountPoints(dir string) ([]string, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := strings.ReplaceAll(f[4], `\040`, " ")
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	return out, nil
}

// leftMounts fails when anything under dir is still mounted, and unmounts it.
func leftMounts(dir string) error {
	mps, err := mountPoints(dir)
	if err != nil || len(mps) == 0 {
		return err
	}
	for _, mp := range mps {
		_ = syscall.Unmount(mp, syscall.MNT_DETACH)
	}
	return fmt.Errorf("mounts left behind: %s", strings.Join(mps, " "))
}

// withoutEnv returns env without the variable name.
func withoutEnv(env []string, name string) []string {
	var out []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, name+"=") {
			out = append(out, kv)
		}
	}
	return out
}
