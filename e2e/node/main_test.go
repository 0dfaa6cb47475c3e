package node

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/connectors-node/connectors-node/test/apiserver"
	"github.com/connectors-node/connectors-node/test/testenv"
)

// inNamespace is set in the environment of the test binary re-run inside
// the private namespaces.
const inNamespace = "CONNECTORS_NODE_SUITE_IN_NS"

// skipReason, when set, skips every test (outside CI).
var skipReason string

// theCluster is the running cluster, set up once in TestMain.
var theCluster *cluster

func TestMain(m *testing.M) {
	os.Exit(mainCode(m))
}

func mainCode(m *testing.M) int {
	flag.Parse() // selected reads -test.run before m.Run
	if err := prerequisites(); err != nil {
		if testenv.InCI() {
			fmt.Fprintf(os.Stderr, "real-node suite: %v\n", err)
			return 1
		}
		skipReason = err.Error()
		return m.Run()
	}
	if os.Getenv(inNamespace) == "" {
		return reexec()
	}
	n, err := startCluster()
	if err != nil {
		fmt.Fprintf(os.Stderr, "real-node suite: starting the cluster: %v\n", err)
		if n != nil {
			n.dumpLogs()
			n.stop()
		}
		return 1
	}
	theCluster = n
	if selected("TestKubeletRepublishRefreshesTheToken") {
		n.republish = n.startRepublish(context.Background())
	}
	code := m.Run()
	if code != 0 {
		n.dumpLogs()
	}
	n.stop()
	return code
}

// selected reports whether -test.run selects the top-level test name, so
// a run of other stories does not start the republish story's pod.
func selected(name string) bool {
	f := flag.Lookup("test.run")
	if f == nil || f.Value.String() == "" {
		return true
	}
	re, err := regexp.Compile(strings.Split(f.Value.String(), "/")[0])
	return err != nil || re.MatchString(name)
}

// suite returns the cluster, or skips the test when the suite cannot run here.
func suite(t *testing.T) *cluster {
	t.Helper()
	if skipReason != "" {
		t.Skipf("skipping the real-node suite: %s", skipReason)
	}
	return theCluster
}

// prerequisites reports what this machine lacks to run the suite.
func prerequisites() error {
	if os.Geteuid() != 0 {
		return errors.New("needs root (containerd, kubelet and tmpfs mounts)")
	}
	dir, err := apiserver.BinaryDir()
	if err != nil {
		return fmt.Errorf("%w (make testbin builds them)", err)
	}
	for _, b := range []string{"kubelet", "kube-proxy", "kube-scheduler", "kube-controller-manager", "coredns"} {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			return fmt.Errorf("%s is not in %s (make testbin builds it)", b, dir)
		}
	}
	for _, tool := range []string{"containerd", "runc", "ctr", "kubectl", "unshare", "nsenter", "ip", "iptables", "git", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found (make deps installs it)", tool)
		}
	}
	for _, plugin := range []string{"loopback", "bridge", "host-local", "portmap"} {
		if _, err := os.Stat(filepath.Join("/usr/lib/cni", plugin)); err != nil {
			return fmt.Errorf("the CNI %s plugin is not in /usr/lib/cni (make deps installs containernetworking-plugins)", plugin)
		}
	}
	return nil
}

// reexec runs this test binary again inside a private mount namespace (so
// no mount of the node reaches the host) and a private network namespace
// (so the node's fixed ports meet nothing else on the machine), and returns
// its exit code.
func reexec() int {
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintf(os.Stderr, "real-node suite: %v\n", err)
		return 1
	}
	args := append([]string{"--mount", "--propagation", "private", "--net", "--", self}, os.Args[1:]...)
	cmd := exec.CommandContext(context.Background(), "unshare", args...) //nolint:gosec // this test binary with its own arguments
	cmd.Env = append(os.Environ(), inNamespace+"=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return exit.ExitCode()
		}
		fmt.Fprintf(os.Stderr, "real-node suite: unshare: %v\n", err)
		return 1
	}
	return 0
}

// run runs a command, returning its combined output in the error.
func run(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// poll calls cond every interval until it returns true or an error, or
// until timeout.
func poll(ctx context.Context, timeout time.Duration, what string, cond func(context.Context) (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		ok, err := cond(ctx)
		if ok {
			return nil
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			if last != nil {
				return fmt.Errorf("%s: not within %s: %w", what, timeout, last)
			}
			return fmt.Errorf("%s: not within %s", what, timeout)
		case <-time.After(500 * time.Millisecond):
		}
	}
}
