package main

import (
	"context"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/connectors-node/connectors-node/test/apiserver"
)

// TestShutdownDelayKeepsServingNotReady pins --shutdown-delay, what a
// rolling upgrade with a surge relies on: after SIGTERM the process answers
// /readyz with 503 at once but keeps every listener (the CSI socket and the
// ops port here) serving for the delay, so endpoints move traffic to the
// new instance before anything closes; then it stops.
func TestShutdownDelayKeepsServingNotReady(t *testing.T) {
	env := apiserver.Start(t, apiserver.Options{})
	installRBAC(t, env, "split")
	const delay = 3 * time.Second
	dir := t.TempDir()
	socket := filepath.Join(dir, "csi.sock")
	ops, _, stop := launchRole(t, env, "connectors-csi", "/healthz", "--serve=csi", "--node-id=node-a",
		"--csi-endpoint=unix://"+socket, "--kubelet-root="+dir, "--shutdown-delay="+delay.String())
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer func() { _ = conn.Close() }()

	stopped := make(chan error, 1)
	began := time.Now()
	go func() { stopped <- stop() }()
	// Within the delay: not ready, yet serving.
	time.Sleep(500 * time.Millisecond)
	for range 3 {
		assert.Equal(t, http.StatusServiceUnavailable, get(t, ops, "/readyz", "").status)
		assert.Equal(t, http.StatusOK, get(t, ops, "/healthz", "").status, "the ops port closed within --shutdown-delay")
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		_, err := csipb.NewIdentityClient(conn).Probe(ctx, &csipb.ProbeRequest{})
		cancel()
		assert.NoError(t, err, "the CSI socket closed within --shutdown-delay")
		time.Sleep(300 * time.Millisecond)
	}
	select {
	case err := <-stopped:
		require.NoError(t, err)
		assert.GreaterOrEqual(t, time.Since(began), delay)
	case <-time.After(delay + 30*time.Second):
		t.Fatal("the process did not stop after --shutdown-delay")
	}
}
