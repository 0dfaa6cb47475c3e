// Package registryauth is the registry token flow (distribution token
// spec) as an http.RoundTripper, in the shape of go-containerregistry's
// transport package: a ping discovers how a registry wants to be
// authenticated, a Bearer challenge sends the Connector's username and
// password to the token realm for a token of the request's scopes, and the
// request goes out with that token. Challenges and tokens are cached and
// concurrent misses share one fetch.
//
// It is stricter than go-containerregistry about where the credential goes:
// the token realm must be one of the Connector's own addresses (spec.address
// or an addressExtension), or nothing is sent. Every request, the realm fetch
// included, goes through the base transport the caller passes, so the
// proxy's SSRF guard applies to the realm as to any upstream.
//
// The package owns the flow (Auth, Flow, Transport), WWW-Authenticate
// parsing and the token scopes of registry API paths.
package registryauth
