package fake

import (
	"context"
	"fmt"
	"sync"

	"github.com/connectors-node/connectors-node/kube"
)

// Auth is an in-memory token reviewer and access checker for unit tests,
// with the methods of *kube.Reviewer that the CSI plugin, the proxy and the
// ops endpoints use. Tokens map to ServiceAccount users; a user may get the
// Connectors granted to it (or every Connector after AllowAll) except the
// denied ones, and the paths granted with AllowPath. It is safe for
// concurrent use.
type Auth struct {
	mu       sync.Mutex
	users    map[string]kube.User
	grants   map[string]map[string]bool // user name -> ns/name or ns/*
	denied   map[string]bool            // ns/name
	paths    map[string]map[string]bool // user name -> "verb path"
	allowAll bool
	err      error
	authn    int
	authz    int
}

// NewAuth returns an Auth that knows no token and allows nothing.
func NewAuth() *Auth {
	return &Auth{users: map[string]kube.User{}, grants: map[string]map[string]bool{}, denied: map[string]bool{}, paths: map[string]map[string]bool{}}
}

// AddToken makes token the ServiceAccount namespace/sa, which may get the
// Connectors allowed ("ns/name", or "ns/*" for a whole namespace).
func (a *Auth) AddToken(token, namespace, sa string, allowed ...string) kube.User {
	a.mu.Lock()
	defer a.mu.Unlock()
	u := kube.ServiceAccountUser(namespace, sa)
	a.users[token] = u
	a.grants[u.Name] = map[string]bool{}
	for _, k := range allowed {
		a.grants[u.Name][k] = true
	}
	return u
}

// AllowAll lets every user get every Connector that is not denied.
func (a *Auth) AllowAll() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.allowAll = true
}

// Deny refuses the Connector ns/name to every user.
func (a *Auth) Deny(key string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.denied[key] = true
}

// SetErr makes every review return err (such as one wrapping
// kube.ErrUnavailable); nil decides again.
func (a *Auth) SetErr(err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.err = err
}

// Calls reports how many token reviews and access checks were made.
func (a *Auth) Calls() (authenticate, authorize int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.authn, a.authz
}

// Authenticate returns the token's user; an unknown token is an error
// wrapping kube.ErrUnauthenticated.
func (a *Auth) Authenticate(_ context.Context, token string) (kube.User, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.authn++
	if a.err != nil {
		return kube.User{}, a.err
	}
	u, ok := a.users[token]
	if !ok {
		return kube.User{}, fmt.Errorf("token review: %w", kube.ErrUnauthenticated)
	}
	return u, nil
}

// Authorize checks that user may get the Connector namespace/name; a
// refusal is a *kube.ForbiddenError.
func (a *Auth) Authorize(_ context.Context, user kube.User, namespace, name string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.authz++
	if a.err != nil {
		return a.err
	}
	key := namespace + "/" + name
	g := a.grants[user.Name]
	if !a.denied[key] && (a.allowAll || g[key] || g[namespace+"/*"]) {
		return nil
	}
	return &kube.ForbiddenError{User: user.Name, Resource: "connectors", Namespace: namespace, Name: name}
}

// AllowPath lets user use verb on the non-resource URL path.
func (a *Auth) AllowPath(user kube.User, verb, path string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.paths[user.Name] == nil {
		a.paths[user.Name] = map[string]bool{}
	}
	a.paths[user.Name][verb+" "+path] = true
}

// AuthorizePath checks that user may use verb on path; a refusal is a
// *kube.ForbiddenError.
func (a *Auth) AuthorizePath(_ context.Context, user kube.User, verb, path string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.authz++
	if a.err != nil {
		return a.err
	}
	if a.paths[user.Name][verb+" "+path] {
		return nil
	}
	return &kube.ForbiddenError{User: user.Name, Verb: verb, Path: path}
}
