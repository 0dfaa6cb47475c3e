package e2e

import (
	"context"
	"errors"
	"maps"
	"net/http"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/connectors-node/connectors-node/test/nodeproc"
)

// SIGTERM to the real binary with the DaemonSet's --shutdown-delay: /readyz
// turns from 200 to 503 at once, while the proxy listener keeps taking new
// connections and proxying with the credential injected, and the ops port
// keeps answering, for the whole delay; only then do the listeners close.
// This is the window in which the endpoints drop the pod and kube-proxy
// moves new connections to the surge pod during a rolling upgrade.
func TestShutdownDelayFlipsReadinessAndKeepsServing(t *testing.T) {
	t.Parallel()
	s := newStory(t, "e2e-drain")
	h := s.h
	apiToken := randomHex(20)
	api := startBearerAPI(t, apiToken)
	s.bearerSecret("api-token", apiToken)
	s.caSecret("api-ca", api.ca)
	s.connector(connectorSpec{name: "api", class: "bearer-api", address: api.srv.URL + "/v1",
		authName: "bearerToken", secret: "api-token", caSecret: "api-ca"})
	s.serviceAccount(s.ns, "api-client")
	s.allow(s.ns, "api-client", "api")
	tok := s.token(s.ns, "api-client")

	// A second process of the binary for the suite's node, as the old pod
	// of a rolling upgrade, with the DaemonSet's delay shortened.
	const delay = 4 * time.Second
	work := t.TempDir()
	kubeconfig := filepath.Join(work, "node.kubeconfig")
	if err := nodeproc.WriteKubeconfig(context.Background(), h.env, kubeconfig, time.Hour); err != nil {
		t.Fatal(err)
	}
	node, err := nodeproc.Start(context.Background(), nodeproc.Options{
		Binary: h.bin, Name: nodeName, Kubeconfig: kubeconfig, Work: work, PublicHost: "localhost",
		LogPath: filepath.Join(work, "draining.log"),
		Args:    []string{"--status=false", "--shutdown-delay=" + delay.String()},
	})
	if err != nil {
		t.Fatal(err)
	}
	// Cleanups run last first: the process has stopped when its log is
	// scanned for the story's credential and token.
	t.Cleanup(func() {
		s.mu.Lock()
		unlogged := maps.Clone(s.unlogged)
		s.mu.Unlock()
		if err := scanLogFile(node.LogPath, unlogged); err != nil {
			t.Error(err)
		}
	})
	t.Cleanup(node.Stop)

	url := "http://" + node.Proxy + "/namespaces/" + s.ns + "/connectors/api/status"
	// Each request on a new connection: what matters is whether the
	// listener still accepts.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	proxied := func() (int, error) {
		req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
		if err != nil {
			return 0, err
		}
		req.Header.Set("Authorization", "Bearer "+tok.Token)
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		_ = resp.Body.Close()
		return resp.StatusCode, nil
	}
	probe := func(path string) (int, error) {
		resp, err := client.Get("http://" + node.Ops + path) //nolint:noctx // a probe with the client's timeout
		if err != nil {
			return 0, err
		}
		_ = resp.Body.Close()
		return resp.StatusCode, nil
	}

	if code, err := probe("/readyz"); err != nil || code != http.StatusOK {
		t.Fatalf("/readyz before SIGTERM: %d, %v; want 200", code, err)
	}
	if code, err := proxied(); err != nil || code != http.StatusOK {
		t.Fatalf("a proxied request before SIGTERM: %d, %v; want 200", code, err)
	}

	if err := syscall.Kill(node.PID(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	sent := time.Now()
	// At once: 503 within a few polls of the signal.
	for {
		code, err := probe("/readyz")
		if err == nil && code == http.StatusServiceUnavailable {
			t.Logf("/readyz answered 503 %s after SIGTERM", time.Since(sent).Round(time.Millisecond))
			break
		}
		if time.Since(sent) > time.Second {
			t.Fatalf("/readyz still answers %d (%v) 1 s after SIGTERM, want 503 at once", code, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Serving, not ready, until the delay is almost over.
	served := 0
	for time.Since(sent) < delay-500*time.Millisecond {
		if code, err := proxied(); err != nil || code != http.StatusOK {
			t.Fatalf("a proxied request on a new connection %s after SIGTERM: %d, %v; want 200 for --shutdown-delay=%s",
				time.Since(sent).Round(time.Millisecond), code, err, delay)
		}
		if code, err := probe("/readyz"); err != nil || code != http.StatusServiceUnavailable {
			t.Fatalf("/readyz %s after SIGTERM: %d, %v; want 503 throughout the delay", time.Since(sent).Round(time.Millisecond), code, err)
		}
		if code, err := probe("/healthz"); err != nil || code != http.StatusOK {
			t.Fatalf("/healthz %s after SIGTERM: %d, %v; want 200 throughout the delay", time.Since(sent).Round(time.Millisecond), code, err)
		}
		served++
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("%d proxied requests on new connections succeeded within the delay", served)
	// Then the listeners close.
	deadline := sent.Add(delay + 25*time.Second)
	for {
		_, err := proxied()
		if err != nil && errors.Is(err, syscall.ECONNREFUSED) {
			if closed := time.Since(sent); closed < delay {
				t.Errorf("the proxy listener closed %s after SIGTERM, before --shutdown-delay=%s", closed, delay)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the proxy listener still accepts %s after SIGTERM", time.Since(sent).Round(time.Millisecond))
		}
		time.Sleep(100 * time.Millisecond)
	}
}
