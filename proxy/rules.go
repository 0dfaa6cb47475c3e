package proxy

import (
	"net/http"
	"strings"
)

// Rules every request meets before anything else looks at it, in every
// mode and inside intercepted tunnels: serve applies them.

// refusedMethod reports methods that are never proxied. An upstream that
// answers TRACE (or Microsoft's TRACK) echoes the request, with the
// injected credential, back to the workload. Methods are case-sensitive,
// but some servers are not, so the check is not either.
func refusedMethod(method string) bool {
	return strings.EqualFold(method, "TRACE") || strings.EqualFold(method, "TRACK")
}

// allowedUpgrades are the protocols a client may switch to through the
// proxy: websocket, and SPDY/3.1 for the Kubernetes API's exec, attach and
// port-forward. Neither carries further HTTP requests that the path rule
// would have to see. h2c does, as does anything unknown, so those are
// refused.
var allowedUpgrades = []string{"websocket", "SPDY/3.1"}

// refusedUpgrade returns the first protocol of the request's Upgrade
// header that is not allowed, or "" when every one is. A protocol may
// carry a version ("websocket/13"); only the name is compared, except for
// SPDY, whose version is the protocol.
func refusedUpgrade(h http.Header) (string, bool) {
	for _, v := range h.Values("Upgrade") {
		for _, p := range strings.Split(v, ",") {
			p = strings.TrimSpace(p)
			if p == "" {
				continue
			}
			if !upgradeAllowed(p) {
				return p, true
			}
		}
	}
	return "", false
}

func upgradeAllowed(p string) bool {
	for _, a := range allowedUpgrades {
		if strings.EqualFold(p, a) {
			return true
		}
		if a == "websocket" && len(p) > len(a) && strings.EqualFold(p[:len(a)+1], a+"/") {
			return true
		}
	}
	return false
}

// checkRules applies the method and upgrade rules; the error is the answer.
func checkRules(r *http.Request) *statusError {
	if refusedMethod(r.Method) {
		return &statusError{status: http.StatusMethodNotAllowed,
			msg: "method " + r.Method + " is not proxied: the upstream would echo the injected credential"}
	}
	if p, refused := refusedUpgrade(r.Header); refused {
		return statusErrorf(http.StatusBadRequest,
			"upgrade to %q is not proxied; only websocket and SPDY/3.1 are", printable(p))
	}
	return nil
}

// printable cuts s to 64 bytes and replaces anything outside printable
// ASCII, so a client's header value is safe to echo.
func printable(s string) string {
	if len(s) > 64 {
		s = s[:64]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return '?'
		}
		return r
	}, s)
}
