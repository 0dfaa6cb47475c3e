package e2e

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/connectors-node/connectors-node/test/apiserver"
	"github.com/connectors-node/connectors-node/test/nodeproc"
	"github.com/connectors-node/connectors-node/test/servers/gitserver"
)

// TestDemo runs `make demo`'s program with the suite's binary, so the
// README's first command keeps working. It starts an API server of its own.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("the demo starts an API server of its own")
	}
	t.Parallel()
	needTool(t, "git")
	h := suite(t)
	dir, err := apiserver.BinaryDir()
	if err != nil {
		t.Fatal(err)
	}
	demo := filepath.Join(t.TempDir(), "demo")
	if err := nodeproc.Build(t.Context(), "./test/demo", demo); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, demo, "--binary", h.bin) //nolint:gosec // the demo just built
	cmd.Dir = apiserver.RepoRoot()
	// The demo's scratch directory is the test's, so nothing it leaves
	// mounted outlives the test.
	tmp := t.TempDir()
	t.Cleanup(func() {
		if err := leftMounts(tmp); err != nil {
			t.Errorf("the demo: %v", err)
		}
	})
	cmd.Env = append(gitserver.Env(t.TempDir()), "KUBEBUILDER_ASSETS="+dir, "TMPDIR="+tmp)
	// On timeout the demo gets SIGTERM, so it stops what it started.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	out, err := cmd.CombinedOutput()
	t.Logf("demo output:\n%s", out)
	if err != nil {
		t.Fatalf("the demo failed: %v", err)
	}
	if !strings.Contains(string(out), "demo passed") {
		t.Errorf("the demo did not say it passed")
	}
}
