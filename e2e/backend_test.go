package e2e

import (
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/connectors-node/connectors-node/test/servers/testpki"

	"github.com/connectors-node/connectors-node/test/servers/gitserver"
)

// gitUser is the account the Git servers want; each story makes its own password.
const gitUser = "bot"

// gitBackend is test/servers/gitserver behind a test server of the story's own: plain
// HTTP on 127.0.0.1, or HTTPS with a certificate for a host name.
type gitBackend struct {
	*gitserver.Server
	srv *httptest.Server

	mu sync.Mutex
	// headers holds every header value that reached the server.
	headers []string
}

// gitOptions configure startGit.
type gitOptions struct {
	// cert, when set, serves HTTPS with it; host is then the URL's host name.
	cert *tls.Certificate
	host string
	// before, when set, runs before each request is served.
	before func(*http.Request)
}

// startGit serves a Git server wanting gitUser:password.
func (s *story) startGit(password string, o gitOptions) *gitBackend {
	s.t.Helper()
	needTool(s.t, "git")
	root := filepath.Join(s.t.TempDir(), "repos")
	if err := os.MkdirAll(root, 0o750); err != nil {
		s.t.Fatal(err)
	}
	gs, handler, err := gitserver.NewHandler(root, gitUser, password)
	if err != nil {
		s.t.Fatalf("git server: %v", err)
	}
	b := &gitBackend{Server: gs}
	b.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.mu.Lock()
		for _, vs := range r.Header {
			b.headers = append(b.headers, vs...)
		}
		b.mu.Unlock()
		if o.before != nil {
			o.before(r)
		}
		handler.ServeHTTP(w, r)
	}))
	if o.cert != nil {
		b.srv.TLS = &tls.Config{Certificates: []tls.Certificate{*o.cert}, MinVersion: tls.VersionTLS12}
		b.srv.StartTLS()
		_, port, _ := net.SplitHostPort(b.srv.Listener.Addr().String())
		gs.URL = "https://" + net.JoinHostPort(o.host, port)
	} else {
		b.srv.Start()
		gs.URL = b.srv.URL
	}
	s.t.Cleanup(b.srv.Close)
	return b
}

// repo creates a repository with one commit and returns its URL.
func (b *gitBackend) repo(t *testing.T, name string, files map[string]string) string {
	t.Helper()
	url, err := b.CreateRepo(name, files)
	if err != nil {
		t.Fatalf("creating repository %s: %v", name, err)
	}
	return url
}

// sawHeader reports whether any request reached the server with a header
// value holding v.
func (b *gitBackend) sawHeader(v string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, h := range b.headers {
		if strings.Contains(h, v) {
			return true
		}
	}
	return false
}

// testCA is a certificate authority for the story's upstream servers.
type testCA struct {
	pem []byte
	pki *testpki.CA
}

func newCA(t *testing.T) *testCA {
	t.Helper()
	ca, err := testpki.NewCA("connectors-node e2e upstream CA")
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{pem: ca.PEM, pki: ca}
}

// leaf issues a server certificate for the host names.
func (ca *testCA) leaf(t *testing.T, hosts ...string) *tls.Certificate {
	t.Helper()
	cert, err := ca.pki.TLSCertificate(hosts...)
	if err != nil {
		t.Fatal(err)
	}
	return &cert
}

// hostsMarker ends the /etc/hosts lines the suite adds.
const hostsMarker = "# connectors-node e2e"

// hostsCacheAge outlasts how long Go's resolver trusts its copy of /etc/hosts.
const hostsCacheAge = 5500 * time.Millisecond

// hostsMu serialises the suite's edits of /etc/hosts.
var hostsMu sync.Mutex

// mapHost maps name to 127.0.0.1 in /etc/hosts until the test ends, so that
// clients, which never send loopback addresses or no_proxy names through a
// proxy, use the forward proxy for it, and the proxy itself resolves it.
// Lines a killed run left behind are dropped first.
func mapHost(t *testing.T, name string) {
	t.Helper()
	line := "127.0.0.1 " + name + " " + hostsMarker
	hostsMu.Lock()
	defer hostsMu.Unlock()
	if err := editHosts(func(lines []string) []string { return append(dropLine(lines, line), line) }); err != nil {
		t.Fatalf("mapping %s in /etc/hosts: %v", name, err)
	}
	// Go's resolver, in the node and in Go clients, reads /etc/hosts again
	// only when its copy is older than five seconds: wait that out so the
	// new name resolves everywhere. Stories run in parallel, so the waits
	// overlap.
	time.Sleep(hostsCacheAge)
	t.Cleanup(func() {
		hostsMu.Lock()
		defer hostsMu.Unlock()
		if err := editHosts(func(lines []string) []string { return dropLine(lines, line) }); err != nil {
			t.Errorf("restoring /etc/hosts: %v", err)
		}
	})
}

func dropLine(lines []string, drop string) []string {
	out := lines[:0:0]
	for _, l := range lines {
		if l != drop {
			out = append(out, l)
		}
	}
	return out
}

// editHosts rewrites /etc/hosts in place (it may be a bind mount, which a
// rename would not replace).
func editHosts(edit func([]string) []string) error {
	const path = "/etc/hosts"
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	out := []byte(strings.Join(edit(lines), "\n") + "\n")
	// Overwrite, then cut to length: truncating first would let a
	// concurrent reader see an empty file.
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(out, 0); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Truncate(int64(len(out))); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}
