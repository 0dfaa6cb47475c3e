// Package repomanager is a local stand-in for the HTTP layout of Sonatype
// Nexus Repository 3 and JFrog Artifactory, for the tests of the nexus
// and jfrog ConnectorClasses: neither is packaged, so a path router plays
// one of them in front of the tests' real repository servers
// (test/servers/mavenrepo, npmregistry and pypiindex). It serves the
// tool's repository paths — Nexus's /repository/<name>/, Artifactory's
// /artifactory/<key>/, /artifactory/api/npm/<key>/ and
// /artifactory/api/pypi/<key>/ — by passing each request with its
// Authorization header to the server of that repository, and its status
// endpoints: Nexus's /service/rest/v1/status (anyone) and
// /service/rest/v1/repositories (its user only), Artifactory's
// /artifactory/api/system/ping. As the tools do, any endpoint refuses a
// wrong Basic credential with 401. It records every request it received.
package repomanager

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/connectors-node/connectors-node/test/servers/authlog"
)

// Flavor is the tool a Server plays.
type Flavor string

const (
	// Nexus serves every format at /repository/<name>/.
	Nexus Flavor = "nexus"
	// Artifactory serves Maven at /artifactory/<key>/, npm at
	// /artifactory/api/npm/<key>/ and PyPI at /artifactory/api/pypi/<key>/.
	Artifactory Flavor = "artifactory"
)

// Format is a repository format.
type Format string

// The formats a Server routes.
const (
	Maven Format = "maven2"
	Npm   Format = "npm"
	PyPI  Format = "pypi"
)

// Server is a running router.
type Server struct {
	// Addr is 127.0.0.1:port.
	Addr string
	// Log holds every request the router received.
	Log authlog.Log

	flavor         Flavor
	user, password string
	srv            *http.Server

	mu     sync.Mutex
	routes map[string]route
}

type route struct {
	name    string
	format  Format
	backend *url.URL
}

// Start serves flavor on a loopback port; user and password are the
// account its own API endpoints want.
func Start(flavor Flavor, user, password string) (*Server, error) {
	ln, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Server{Addr: ln.Addr().String(), flavor: flavor, user: user, password: password, routes: map[string]route{}}
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// Close stops the router.
func (s *Server) Close() { _ = s.srv.Close() }

// Prefix is the path of repository name of format below the tool's
// address, ending in a slash.
func (s *Server) Prefix(format Format, name string) string {
	if s.flavor == Nexus {
		return "/repository/" + name + "/"
	}
	switch format {
	case Npm:
		return "/artifactory/api/npm/" + name + "/"
	case PyPI:
		return "/artifactory/api/pypi/" + name + "/"
	default:
		return "/artifactory/" + name + "/"
	}
}

// Route serves repository name of format from backend (a URL whose path
// is the repository's root on that server).
func (s *Server) Route(format Format, name, backend string) error {
	u, err := url.Parse(backend)
	if err != nil || u.Host == "" {
		return fmt.Errorf("repomanager: backend %q is not an absolute URL", backend)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.routes[s.Prefix(format, name)] = route{name: name, format: format, backend: u}
	return nil
}

// credential says whether r carries the account's Basic credential, and
// whether it carries any.
func (s *Server) credential(r *http.Request) (ok, present bool) {
	if r.Header.Get("Authorization") == "" {
		return false, false
	}
	user, pass, isBasic := r.BasicAuth()
	return isBasic && user == s.user && pass == s.password, true
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.Log.Record(r)
	ok, present := s.credential(r)
	switch {
	case s.flavor == Nexus && r.URL.Path == "/service/rest/v1/status",
		s.flavor == Artifactory && r.URL.Path == "/artifactory/api/system/ping":
		if present && !ok {
			s.challenge(w)
			return
		}
		if s.flavor == Artifactory {
			_, _ = io.WriteString(w, "OK")
		}
		return
	case s.flavor == Nexus && r.URL.Path == "/service/rest/v1/repositories":
		if !ok {
			s.challenge(w)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(s.repositories())
		return
	}
	s.mu.Lock()
	var rt route
	var prefix string
	for p, candidate := range s.routes {
		if strings.HasPrefix(r.URL.Path, p) && len(p) > len(prefix) {
			rt, prefix = candidate, p
		}
	}
	s.mu.Unlock()
	if prefix == "" {
		http.NotFound(w, r)
		return
	}
	if present && !ok && rt.format != Maven {
		// The Maven server checks the credential itself; the others too,
		// but a stand-in that refuses a wrong one up front is the tool.
		s.challenge(w)
		return
	}
	s.proxy(rt, prefix).ServeHTTP(w, r)
}

func (s *Server) challenge(w http.ResponseWriter) {
	realm := "Sonatype Nexus Repository Manager"
	if s.flavor == Artifactory {
		realm = "Artifactory Realm"
	}
	w.Header().Set("WWW-Authenticate", `Basic realm="`+realm+`"`)
	w.WriteHeader(http.StatusUnauthorized)
}

// repositories is what /service/rest/v1/repositories lists.
func (s *Server) repositories() []map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]string
	for p, rt := range s.routes {
		out = append(out, map[string]string{"name": rt.name, "format": string(rt.format), "type": "hosted", "url": p})
	}
	sort.Slice(out, func(i, j int) bool { return out[i]["name"] < out[j]["name"] })
	return out
}

// proxy passes a request below prefix to the route's backend, keeping the
// Host header (servers write absolute URLs on the host they were asked
// for) and, for npm, rewriting the registry's own URLs in its JSON answers
// to carry the prefix, as a registry behind Nexus or Artifactory writes
// them.
func (s *Server) proxy(rt route, prefix string) *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme = rt.backend.Scheme
			pr.Out.URL.Host = rt.backend.Host
			rest := strings.TrimPrefix(pr.In.URL.Path, prefix)
			pr.Out.URL.Path = strings.TrimSuffix(rt.backend.Path, "/") + "/" + rest
			pr.Out.URL.RawPath = ""
			pr.Out.Host = pr.In.Host
			pr.Out.Header.Del("Accept-Encoding")
		},
		ModifyResponse: func(resp *http.Response) error {
			if rt.format != Npm || !strings.Contains(resp.Header.Get("Content-Type"), "json") {
				return nil
			}
			body, err := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if err != nil {
				return err
			}
			host := resp.Request.Host
			body = bytes.ReplaceAll(body, []byte(`"http://`+host+`/`), []byte(`"http://`+host+prefix))
			resp.Body = io.NopCloser(bytes.NewReader(body))
			resp.ContentLength = int64(len(body))
			resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, _ error) { w.WriteHeader(http.StatusBadGateway) },
	}
}
