package opsauth

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"

	"github.com/connectors-node/connectors-node/kube"
)

// Reviewer checks a token and a user's access to a non-resource URL.
// *kube.Reviewer built with APIAudiences is the one the node uses.
type Reviewer interface {
	// Authenticate reviews a bearer token. Errors wrap
	// kube.ErrUnauthenticated or kube.ErrUnavailable.
	Authenticate(ctx context.Context, token string) (kube.User, error)
	// AuthorizePath checks that user may use verb on path. Errors wrap
	// kube.ErrForbidden or kube.ErrUnavailable.
	AuthorizePath(ctx context.Context, user kube.User, verb, path string) error
}

var _ Reviewer = (*kube.Reviewer)(nil)

// Options configure New.
type Options struct {
	// Reviewer checks tokens and access. Required.
	Reviewer Reviewer
	// Log records refused requests at verbosity 2 (user and path, never
	// the token), and a request the API server could not check as an
	// error, at most once per ErrorLogInterval (verbosity 1 for the
	// rest). Default: discarded.
	Log logr.Logger
}

// ErrorLogInterval is the least time between two errors logged for
// requests the API server could not check: a scraper, or anyone reaching
// the port, repeats them during an outage.
const ErrorLogInterval = 30 * time.Second

// Guard wraps handlers so that only allowed users reach them.
type Guard struct {
	opts Options
	// lastError is when an unavailable API server was last logged as an
	// error, in Unix nanoseconds.
	lastError atomic.Int64
}

// New builds a Guard.
func New(opts Options) (*Guard, error) {
	if opts.Reviewer == nil {
		return nil, errors.New("opsauth: Reviewer is required")
	}
	if opts.Log.GetSink() == nil {
		opts.Log = logr.Discard()
	}
	return &Guard{opts: opts}, nil
}

// Wrap returns a handler that serves next only to a request whose bearer
// token the API server accepts and whose user may get the request's path
// (the non-resource URL, such as /metrics). It answers 401 with
// WWW-Authenticate: Bearer without a valid token, 403 when RBAC does not
// allow the path, and 503 when the API server cannot answer and nothing is
// cached. next serves reads: the verb checked is get, for GET and HEAD.
func (g *Guard) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			refuse(w, http.StatusMethodNotAllowed)
			return
		}
		path := r.URL.Path
		log := g.opts.Log.WithValues("path", path, "remote", r.RemoteAddr)
		token, ok := bearerToken(r)
		if !ok {
			log.V(2).Info("refused: no bearer token")
			w.Header().Set("WWW-Authenticate", `Bearer realm="connectors-node"`)
			refuse(w, http.StatusUnauthorized)
			return
		}
		user, err := g.opts.Reviewer.Authenticate(r.Context(), token)
		if err == nil {
			log = log.WithValues("user", user.Name)
			err = g.opts.Reviewer.AuthorizePath(r.Context(), user, "get", path)
		}
		switch {
		case err == nil:
			next.ServeHTTP(w, r)
		case errors.Is(err, kube.ErrUnavailable):
			if g.errorDue() {
				log.Error(err, "cannot check access to the ops endpoint; answering 503")
			} else {
				log.V(1).Info("cannot check access to the ops endpoint; answering 503", "err", err.Error())
			}
			w.Header().Set("Retry-After", "5")
			refuse(w, http.StatusServiceUnavailable)
		case errors.Is(err, kube.ErrUnauthenticated):
			log.V(2).Info("refused: token not accepted", "reason", err.Error())
			w.Header().Set("WWW-Authenticate", `Bearer realm="connectors-node", error="invalid_token"`)
			refuse(w, http.StatusUnauthorized)
		case errors.Is(err, kube.ErrForbidden):
			log.V(2).Info("refused: not allowed", "reason", err.Error())
			refuse(w, http.StatusForbidden)
		default:
			log.Error(err, "checking access to the ops endpoint")
			refuse(w, http.StatusInternalServerError)
		}
	})
}

// errorDue reports whether an unavailable API server may be logged as an
// error now, and if so records that it was.
func (g *Guard) errorDue() bool {
	now := time.Now().UnixNano()
	last := g.lastError.Load()
	return now-last >= int64(ErrorLogInterval) && g.lastError.CompareAndSwap(last, now)
}

// refuse writes status with its text as the body, and nothing else.
func refuse(w http.ResponseWriter, status int) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(http.StatusText(status) + "\n"))
}

// bearerToken returns the token of an Authorization: Bearer header (the
// scheme matched without regard to case, RFC 6750), or false when there is
// none, more than one, or it is empty.
func bearerToken(r *http.Request) (string, bool) {
	values := r.Header.Values("Authorization")
	if len(values) != 1 {
		return "", false
	}
	scheme, token, ok := strings.Cut(values[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}
