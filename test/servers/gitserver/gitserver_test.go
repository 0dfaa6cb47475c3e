package gitserver

import (
	"net/http"
	"strings"
	"testing"

	"github.com/connectors-node/connectors-node/test/testenv"
)

// TestBackendStderrIsKept: what git http-backend writes to stderr for a
// request it does not serve (a probe of /) is kept for Stderr, so it never
// lands in the output of the test running the server.
func TestBackendStderrIsKept(t *testing.T) {
	if _, err := Backend(); err != nil {
		testenv.SkipOrFail(t, "%v (make deps installs git)", err)
	}
	s, err := Start(t.TempDir(), "bot", "secret")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, s.URL+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("bot", "secret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if !strings.Contains(s.Stderr(), "Request not supported") {
		t.Fatalf("git http-backend's stderr is %q, want its complaint about /", s.Stderr())
	}
}
