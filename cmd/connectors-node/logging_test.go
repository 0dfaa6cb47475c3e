package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
)

// TestControllerRuntimeLogsGoToTheNodeLog pins the library's logger: before,
// the node never called controller-runtime's log.SetLogger, so its
// informers' messages were dropped and, 30 s after their first use (after
// watch errors, at every graceful stop), a 35-line stack trace went to the
// node log. run hands the library the node's logger. The check runs in a
// process of its own: the library takes its logger once per process, and
// the test API server sets one.
func TestControllerRuntimeLogsGoToTheNodeLog(t *testing.T) {
	if os.Getenv("CONNECTORS_NODE_TEST_LIBRARY_LOG") == "1" {
		var logs bytes.Buffer
		missing := filepath.Join(t.TempDir(), "no-kubeconfig")
		err := run(context.Background(), []string{"--node-id=node-1", "--kubeconfig=" + missing}, io.Discard, &logs)
		require.Error(t, err, "no kubeconfig: run stops after setting up its logger")
		ctrllog.Log.WithName("informers").Info("a message of the library")
		fmt.Print(logs.String())
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestControllerRuntimeLogsGoToTheNodeLog$", "-test.count=1") //nolint:gosec // this test binary
	cmd.Env = append(os.Environ(), "CONNECTORS_NODE_TEST_LIBRARY_LOG=1")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), "a message of the library", "the library logs to the node log")
	require.Contains(t, string(out), "controller-runtime")
	require.NotContains(t, string(out), "SetLogger(...) was never called")
}
