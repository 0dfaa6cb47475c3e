package daemon

import (
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestWaitReadyReportsAnEarlyExitWithTheLog(t *testing.T) {
	p, err := Start("sh", exec.CommandContext(t.Context(), "sh", "-c", "echo broken config; exit 3"), filepath.Join(t.TempDir(), "out"))
	require.NoError(t, err)
	defer p.Stop()
	err = p.WaitReady("http://127.0.0.1:1/", 30*time.Second, nil)
	require.ErrorContains(t, err, "sh exited at start: broken config")
}

func TestWaitReadyUntilAccepted(t *testing.T) {
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		calls++
		if calls < 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	p, err := Start("sleep", exec.CommandContext(t.Context(), "sleep", "60"), filepath.Join(t.TempDir(), "out"))
	require.NoError(t, err)
	require.NoError(t, p.WaitReady(srv.URL, 30*time.Second, func(r *http.Response) bool { return r.StatusCode == http.StatusOK }))
	require.Equal(t, 3, calls)
	p.Stop()
	select {
	case <-p.done:
	default:
		t.Fatal("Stop returned before the program exited")
	}
}
