package mavenrepo

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/connectors-node/connectors-node/test/servers/authlog"
	"github.com/connectors-node/connectors-node/test/servers/daemon"
	"github.com/connectors-node/connectors-node/test/servers/loopback"
)

// DebianRepo is where Debian's Java packages (maven, libmaven-*-java)
// install their artifacts in the Maven layout.
const DebianRepo = "/usr/share/maven-repo"

// Prefix is the path of the repository on the server.
const Prefix = "/maven2"

// Server is a running nginx serving one Maven repository.
type Server struct {
	// URL is the repository's URL, ending in Prefix.
	URL string
	// Deployed is the directory that holds what clients deployed.
	Deployed string

	dir  string
	proc *daemon.Process
}

// Start runs nginx in dir (created if missing) with one Basic user.
func Start(dir, user, password string) (*Server, error) {
	nginx, err := exec.LookPath("nginx")
	if err != nil {
		return nil, fmt.Errorf("nginx not found: %w", err)
	}
	if _, err := os.Stat(filepath.Join(DebianRepo, "org", "apache", "maven", "plugins", "maven-deploy-plugin")); err != nil {
		return nil, fmt.Errorf("maven-deploy-plugin is not in Debian's maven-repo (libmaven-deploy-plugin-java): %w", err)
	}
	addr, err := loopback.FreeAddr()
	if err != nil {
		return nil, err
	}
	s := &Server{URL: "http://" + addr + Prefix, Deployed: filepath.Join(dir, "deployed"), dir: dir}
	for _, d := range []string{s.Deployed, filepath.Join(dir, "tmp")} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return nil, err
		}
	}
	// nginx's {PLAIN} scheme: the file is the test's own, in its temp dir.
	if err := os.WriteFile(filepath.Join(dir, "htpasswd"), []byte(user+":{PLAIN}"+password+"\n"), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(config(dir, addr, s.Deployed)), 0o600); err != nil {
		return nil, err
	}
	cmd := exec.Command(nginx, "-c", filepath.Join(dir, "nginx.conf"), "-p", dir) //nolint:gosec,noctx // the test's nginx; stopped by Stop
	if s.proc, err = daemon.Start("nginx", cmd, filepath.Join(dir, "nginx.out")); err != nil {
		return nil, err
	}
	if err := s.proc.WaitReady(strings.TrimSuffix(s.URL, Prefix)+"/-/ready", 15*time.Second, nil); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

// config is nginx's configuration: one server, everything under Prefix
// behind Basic auth; PUT writes into deployed, GET reads deployed and then
// Debian's repository. nginx runs as one process (no master, no workers
// under another user), so it can write into the test's temp directory.
func config(dir, addr, deployed string) string {
	tmp := filepath.Join(dir, "tmp")
	return fmt.Sprintf(`daemon off;
master_process off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 64; }
http {
  log_format users '$request_method $uri $status "$remote_user" "$http_authorization"';
  access_log %[1]s/access.log users;
  client_body_temp_path %[2]s;
  proxy_temp_path %[2]s;
  fastcgi_temp_path %[2]s;
  uwsgi_temp_path %[2]s;
  scgi_temp_path %[2]s;
  client_max_body_size 64m;
  server {
    listen %[3]s;
    auth_basic "maven";
    auth_basic_user_file %[1]s/htpasswd;
    # The readiness probe of Start: neither authenticated nor logged.
    location = /-/ready {
      auth_basic off;
      access_log off;
      return 204;
    }
    location %[4]s/ {
      alias %[5]s/;
      dav_methods PUT;
      create_full_put_path on;
      error_page 404 = @debian;
    }
    location @debian {
      rewrite ^%[4]s/(.*)$ /$1 break;
      root %[6]s;
    }
  }
}
`, dir, tmp, addr, Prefix, deployed, DebianRepo)
}

// Stop stops nginx and waits for it.
func (s *Server) Stop() { s.proc.Stop() }

// Request is one line of the server's access log: the request, its
// status and the Authorization header it carried.
type Request struct {
	authlog.Request
	Status int
	// Authorization is the request's Authorization header, "" for none.
	Authorization string
}

// Requests returns every request logged so far; User is the Basic user
// nginx authenticated.
func (s *Server) Requests() ([]Request, error) {
	f, err := os.Open(filepath.Join(s.dir, "access.log"))
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	var out []Request
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		r, err := parseLine(sc.Text())
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, sc.Err()
}

// Authorizations returns the Authorization header of every request logged
// so far ("" for a request without one), as authlog.Log's.
func (s *Server) Authorizations() ([]string, error) {
	reqs, err := s.Requests()
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(reqs))
	for _, r := range reqs {
		out = append(out, r.Authorization)
	}
	return out, nil
}

// parseLine reads a line of the users log format: method, URI, status,
// then the quoted user and Authorization header, "-" when empty (nginx
// escapes a quote in a value as \x22, so neither holds one).
func parseLine(line string) (Request, error) {
	var r Request
	f := strings.SplitN(line, " ", 4)
	if len(f) != 4 {
		return r, fmt.Errorf("access log line %q: want method, URI, status, user and Authorization", line)
	}
	status, err := strconv.Atoi(f[2])
	if err != nil {
		return r, fmt.Errorf("access log line %q: status: %w", line, err)
	}
	user, auth, ok := strings.Cut(f[3], `" "`)
	if !ok || !strings.HasPrefix(user, `"`) || !strings.HasSuffix(auth, `"`) {
		return r, fmt.Errorf("access log line %q: want a quoted user and Authorization", line)
	}
	r.Method, r.Path, r.Status = f[0], f[1], status
	r.User = strings.TrimPrefix(user, `"`)
	r.Authorization = strings.TrimSuffix(auth, `"`)
	if r.User == "-" {
		r.User = ""
	}
	if r.Authorization == "-" {
		r.Authorization = ""
	}
	return r, nil
}
