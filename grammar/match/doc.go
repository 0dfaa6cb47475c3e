// Package match decides whether a request target belongs to a Connector
// address. A target matches an address when the scheme, the host
// (case-insensitive, trailing dot ignored), the effective port and the path
// prefix (on segment boundaries) all agree. Targets with userinfo, dot
// segments or encoded slashes never match, so a path that would escape a
// prefix once an upstream normalizes it cannot carry a credential.
package match
