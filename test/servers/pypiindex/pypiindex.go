package pypiindex

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"path"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/connectors-node/connectors-node/test/servers/authlog"
)

// maxUpload bounds one uploaded file.
const maxUpload = 32 << 20

// Server is a running index. The simple API is at URL + "/simple/", uploads
// go to URL + "/".
type Server struct {
	URL string
	// Log holds every request received.
	Log authlog.Log

	srv            *httptest.Server
	user, password string

	mu    sync.Mutex
	files map[string]map[string][]byte // normalized project -> file name -> content
}

// Start serves an empty index on loopback with one Basic user.
func Start(user, password string) *Server {
	s := &Server{user: user, password: password, files: map[string]map[string][]byte{}}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	return s
}

// Close stops the index.
func (s *Server) Close() { s.srv.Close() }

// Files returns the file names uploaded for a project.
func (s *Server) Files(project string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for name := range s.files[Normalize(project)] {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

var separators = regexp.MustCompile(`[-_.]+`)

// Normalize is PEP 503's project name normalization.
func Normalize(name string) string { return strings.ToLower(separators.ReplaceAllString(name, "-")) }

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.Log.Record(r)
	user, password, ok := r.BasicAuth()
	if !ok || subtle.ConstantTimeCompare([]byte(user), []byte(s.user)) != 1 ||
		subtle.ConstantTimeCompare([]byte(password), []byte(s.password)) != 1 {
		w.Header().Set("WWW-Authenticate", `Basic realm="pypi"`)
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/":
		s.upload(w, r)
	case r.Method != http.MethodGet && r.Method != http.MethodHead:
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	case r.URL.Path == "/simple/":
		s.projects(w)
	case strings.HasPrefix(r.URL.Path, "/simple/"):
		name := strings.TrimPrefix(r.URL.Path, "/simple/")
		if !strings.HasSuffix(name, "/") {
			// Relative, so a client behind a proxy stays behind it.
			w.Header().Set("Location", path.Base(name)+"/")
			w.WriteHeader(http.StatusMovedPermanently)
			return
		}
		s.project(w, strings.TrimSuffix(name, "/"))
	case strings.HasPrefix(r.URL.Path, "/packages/"):
		s.file(w, strings.TrimPrefix(r.URL.Path, "/packages/"))
	default:
		http.NotFound(w, r)
	}
}

func (s *Server) projects(w http.ResponseWriter) {
	s.mu.Lock()
	var names []string
	for name := range s.files {
		names = append(names, name)
	}
	s.mu.Unlock()
	slices.Sort(names)
	var b strings.Builder
	b.WriteString("<!DOCTYPE html>\n<html><body>\n")
	for _, n := range names {
		fmt.Fprintf(&b, "<a href=\"%s/\">%s</a>\n", html.EscapeString(n), html.EscapeString(n))
	}
	b.WriteString("</body></html>\n")
	w.Header().Set("Content-Type", "text/html")
	_, _ = io.WriteString(w, b.String())
}

// project lists a project's files with links relative to the page, so a
// client that reached the page through a proxy fetches the files the same
// way.
func (s *Server) project(w http.ResponseWriter, name string) {
	s.mu.Lock()
	files, ok := s.files[Normalize(name)]
	type link struct{ name, sum string }
	var links []link
	for f, content := range files {
		sum := sha256.Sum256(content)
		links = append(links, link{f, hex.EncodeToString(sum[:])})
	}
	s.mu.Unlock()
	if !ok {
		http.NotFound(w, nil)
		return
	}
	slices.SortFunc(links, func(a, b link) int { return strings.Compare(a.name, b.name) })
	var b strings.Builder
	b.WriteString("<!DOCTYPE html>\n<html><body>\n")
	for _, l := range links {
		fmt.Fprintf(&b, "<a href=\"../../packages/%s#sha256=%s\">%s</a>\n", html.EscapeString(l.name), l.sum, html.EscapeString(l.name))
	}
	b.WriteString("</body></html>\n")
	w.Header().Set("Content-Type", "text/html")
	_, _ = io.WriteString(w, b.String())
}

func (s *Server) file(w http.ResponseWriter, name string) {
	s.mu.Lock()
	var content []byte
	for _, files := range s.files {
		if c, ok := files[name]; ok {
			content = c
		}
	}
	s.mu.Unlock()
	if content == nil {
		http.NotFound(w, nil)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	_, _ = w.Write(content)
}

// upload takes the legacy API's multipart form: :action=file_upload, name,
// and the file in content; a sha256_digest, when sent, must match.
func (s *Server) upload(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxUpload)
	if err := r.ParseMultipartForm(maxUpload); err != nil { //nolint:gosec // the body is bounded by MaxBytesReader above
		http.Error(w, "bad upload: "+err.Error(), http.StatusBadRequest)
		return
	}
	if a := r.FormValue(":action"); a != "file_upload" {
		http.Error(w, fmt.Sprintf(":action %q is not file_upload", a), http.StatusBadRequest)
		return
	}
	name := r.FormValue("name")
	if name == "" {
		http.Error(w, "name is missing", http.StatusBadRequest)
		return
	}
	f, hdr, err := r.FormFile("content")
	if err != nil {
		http.Error(w, "content is missing", http.StatusBadRequest)
		return
	}
	defer func() { _ = f.Close() }()
	content, err := io.ReadAll(f)
	if err != nil {
		http.Error(w, "reading content: "+err.Error(), http.StatusBadRequest)
		return
	}
	if want := r.FormValue("sha256_digest"); want != "" {
		sum := sha256.Sum256(content)
		if hex.EncodeToString(sum[:]) != want {
			http.Error(w, "sha256_digest does not match content", http.StatusBadRequest)
			return
		}
	}
	if strings.ContainsAny(hdr.Filename, "/\\") || hdr.Filename == "" {
		http.Error(w, "bad file name", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p := Normalize(name)
	if s.files[p] == nil {
		s.files[p] = map[string][]byte{}
	}
	if _, ok := s.files[p][hdr.Filename]; ok {
		http.Error(w, "file exists", http.StatusConflict)
		return
	}
	s.files[p][hdr.Filename] = content
	w.WriteHeader(http.StatusOK)
}
