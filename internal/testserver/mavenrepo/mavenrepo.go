package mavenrepo

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/connectors-node/connectors-node/internal/testserver/authlog"
	"github.com/connectors-node/connectors-node/internal/testserver/loopback"
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
	cmd  *exec.Cmd
	done chan struct{}
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
	s := &Server{URL: "http://" + addr + Prefix, Deployed: filepath.Join(dir, "deployed"), dir: dir, done: make(chan struct{})}
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
	s.cmd = exec.Command(nginx, "-c", filepath.Join(dir, "nginx.conf"), "-p", dir) //nolint:gosec,noctx // the test's nginx; stopped by Stop
	out, err := os.Create(filepath.Join(dir, "nginx.out"))                         //nolint:gosec // the test's own directory
	if err != nil {
		return nil, err
	}
	s.cmd.Stdout, s.cmd.Stderr = out, out
	if err := s.cmd.Start(); err != nil {
		_ = out.Close()
		return nil, fmt.Errorf("starting nginx: %w", err)
	}
	go func() {
		_ = s.cmd.Wait()
		_ = out.Close()
		close(s.done)
	}()
	if err := s.waitReady(); err != nil {
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
  log_format users '$request_method $uri $status "$remote_user"';
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

func (s *Server) waitReady() error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(s.URL, Prefix)+"/-/ready", nil)
		if err != nil {
			return err
		}
		if resp, err := http.DefaultClient.Do(req); err == nil {
			_ = resp.Body.Close()
			return nil
		}
		select {
		case <-s.done:
			b, _ := os.ReadFile(filepath.Join(s.dir, "nginx.out")) //nolint:gosec // the server's own output
			return fmt.Errorf("nginx exited at start: %s", b)
		case <-ctx.Done():
			return errors.New("nginx not answering within 15s")
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Stop stops nginx and waits for it.
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

// Request is one line of the server's access log: the request and its
// status.
type Request struct {
	authlog.Request
	Status int
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
		var r Request
		var user string
		if _, err := fmt.Sscanf(sc.Text(), "%s %s %d %s", &r.Method, &r.Path, &r.Status, &user); err != nil {
			return nil, fmt.Errorf("access log line %q: %w", sc.Text(), err)
		}
		r.User = strings.Trim(user, `"`)
		if r.User == "-" {
			r.User = ""
		}
		out = append(out, r)
	}
	return out, sc.Err()
}
