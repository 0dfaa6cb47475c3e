package registryauth

import (
	"strings"
)

// authChallenge is one parsed WWW-Authenticate challenge.
type authChallenge struct {
	// scheme is lower-case: "bearer", "basic", ...
	scheme string
	// params holds the auth-params with lower-case names.
	params map[string]string
}

// challenge is how a registry wants to be authenticated, as its
// ping or a 401 showed.
type challenge struct {
	// bearer is set when the registry wants a token from realm.
	bearer  bool
	realm   string
	service string
	// scope is what a 401 asked for; empty for the ping.
	scope string
}

// bearerChallenge returns the Bearer challenge among the WWW-Authenticate
// values, if any has a realm.
func bearerChallenge(values []string) (challenge, bool) {
	for _, v := range values {
		for _, c := range parseChallenges(v) {
			if c.scheme == "bearer" && c.params["realm"] != "" {
				return challenge{bearer: true, realm: c.params["realm"],
					service: c.params["service"], scope: c.params["scope"]}, true
			}
		}
	}
	return challenge{}, false
}

// parseChallenges parses one WWW-Authenticate value (RFC 9110 §11.6.1):
// challenges separated by commas, each a scheme followed by comma-separated
// name=value auth-params (values may be quoted strings). token68 forms and
// malformed parts are skipped.
func parseChallenges(v string) []authChallenge {
	var out []authChallenge
	s := v
	for {
		s = strings.TrimLeft(s, " \t,")
		if s == "" {
			return out
		}
		scheme, rest := cutToken(s)
		if scheme == "" {
			return out
		}
		c := authChallenge{scheme: strings.ToLower(scheme), params: map[string]string{}}
		s = rest
		for {
			s = strings.TrimLeft(s, " \t")
			save := s
			s = strings.TrimLeft(s, ",")
			s = strings.TrimLeft(s, " \t")
			name, r := cutToken(s)
			r = strings.TrimLeft(r, " \t")
			if name == "" || !strings.HasPrefix(r, "=") {
				// Not an auth-param: the next challenge starts here.
				s = save
				break
			}
			r = strings.TrimLeft(r[1:], " \t")
			var val string
			var ok bool
			if val, r, ok = cutValue(r); !ok {
				return append(out, c)
			}
			c.params[strings.ToLower(name)] = val
			s = r
		}
		out = append(out, c)
	}
}

// cutToken splits off a leading HTTP token.
func cutToken(s string) (tok, rest string) {
	i := 0
	for i < len(s) && isTokenChar(s[i]) {
		i++
	}
	return s[:i], s[i:]
}

// cutValue splits off a quoted string (with \-escapes undone) or, leniently,
// an unquoted value up to the next comma or space (some registries send
// unquoted URLs).
func cutValue(s string) (val, rest string, ok bool) {
	if !strings.HasPrefix(s, `"`) {
		i := strings.IndexAny(s, ", \t")
		if i < 0 {
			i = len(s)
		}
		return s[:i], s[i:], true
	}
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			if i+1 < len(s) {
				i++
				b.WriteByte(s[i])
			}
		case '"':
			return b.String(), s[i+1:], true
		default:
			b.WriteByte(c)
		}
	}
	return "", "", false
}

func isTokenChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~/", c) >= 0
}
