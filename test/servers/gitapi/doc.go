// Package gitapi is a local stand-in for the REST APIs of GitLab and
// GitHub, for the tests of their ConnectorClasses: an HTTPS server that
// wants one token in the header its style names — GitLab's PRIVATE-TOKEN
// or GitHub's "Authorization: token" — answers a few read-only endpoints
// with JSON, and records which credential each request carried, so a test
// can tell that the proxy injected the real one and nothing else arrived.
package gitapi
