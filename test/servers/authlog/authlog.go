// Package authlog records what the tests' servers were sent: the method,
// path and Basic user of every request and its Authorization header, so a
// test can see which credential reached a server and that a token did not.
package authlog

import (
	"net/http"
	"strings"
	"sync"
)

// Request is one request a server received.
type Request struct {
	Method, Path string
	// User is the Basic user the request carried, "" for none.
	User string
}

// Log is a concurrency-safe record of requests; the zero value is empty.
type Log struct {
	mu    sync.Mutex
	reqs  []Request
	auths []string
}

// Record adds r.
func (l *Log) Record(r *http.Request) {
	user, _, _ := r.BasicAuth()
	l.Add(Request{Method: r.Method, Path: r.URL.Path, User: user}, r.Header.Get("Authorization"))
}

// Add adds a request known only from a server's own log, with the
// Authorization header it carried ("" when unknown).
func (l *Log) Add(r Request, authorization string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reqs = append(l.reqs, r)
	l.auths = append(l.auths, authorization)
}

// Reset forgets everything recorded so far.
func (l *Log) Reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reqs, l.auths = nil, nil
}

// Requests returns every request recorded so far.
func (l *Log) Requests() []Request {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Request(nil), l.reqs...)
}

// SawHeader reports whether an Authorization header held v.
func (l *Log) SawHeader(v string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, h := range l.auths {
		if strings.Contains(h, v) {
			return true
		}
	}
	return false
}

// Authorizations returns the Authorization header of every request
// recorded so far ("" for a request without one).
func (l *Log) Authorizations() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.auths...)
}
