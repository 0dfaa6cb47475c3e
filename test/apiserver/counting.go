package apiserver

import (
	"net/http"

	"k8s.io/client-go/rest"
)

// CountingConfig returns a copy of cfg that calls count with every request
// its clients send, before sending it: tests count API calls by method and
// path with it.
func CountingConfig(cfg *rest.Config, count func(*http.Request)) *rest.Config {
	c := rest.CopyConfig(cfg)
	c.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			count(r)
			return rt.RoundTrip(r)
		})
	}
	return c
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
