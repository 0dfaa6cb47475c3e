package proxy

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"k8s.io/apimachinery/pkg/types"

	"github.com/connectors-node/connectors-node/grammar/connref"
)

// Realm is the realm of the proxy's authentication challenges.
const Realm = "connectors"

var (
	errNoCredentials  = errors.New("no credentials")
	errBadCredentials = errors.New("malformed credentials")
)

// forwardCredentials reads Proxy-Authorization: Basic with user = comma
// list of ns/name (the %2F form is accepted) and password = token.
func forwardCredentials(r *http.Request) ([]types.NamespacedName, string, error) {
	v := r.Header.Get("Proxy-Authorization")
	if v == "" {
		return nil, "", errNoCredentials
	}
	user, token, ok := parseBasic(v)
	if !ok || token == "" {
		return nil, "", errBadCredentials
	}
	keys, err := parseConnectorList(user)
	if err != nil {
		return nil, "", err
	}
	return keys, token, nil
}

// reverseToken reads the client token from Authorization: Basic (the
// password; the user is ignored) or Bearer. A class's authExtractor rule
// would plug in here.
func reverseToken(r *http.Request) (string, error) {
	v := r.Header.Get("Authorization")
	if v == "" {
		return "", errNoCredentials
	}
	scheme, rest, _ := strings.Cut(v, " ")
	switch {
	case strings.EqualFold(scheme, "Bearer"):
		if tok := strings.TrimSpace(rest); tok != "" {
			return tok, nil
		}
	case strings.EqualFold(scheme, "Basic"):
		if _, tok, ok := parseBasic(v); ok && tok != "" {
			return tok, nil
		}
	}
	return "", errBadCredentials
}

func parseBasic(v string) (user, pass string, ok bool) {
	scheme, rest, found := strings.Cut(v, " ")
	if !found || !strings.EqualFold(scheme, "Basic") {
		return "", "", false
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(rest))
	if err != nil {
		return "", "", false
	}
	user, pass, ok = strings.Cut(string(raw), ":")
	return user, pass, ok
}

// parseConnectorList parses the proxy user, a connector list of ns/name
// items (grammar/connref; '/' may be escaped as %2F, as rendered volumes do).
func parseConnectorList(user string) ([]types.NamespacedName, error) {
	decoded, err := url.PathUnescape(user)
	if err != nil {
		return nil, fmt.Errorf("%w: connector list is not URL-encoded correctly", errBadCredentials)
	}
	if strings.TrimSpace(decoded) == "" {
		return nil, fmt.Errorf("%w: the proxy user must list connectors as ns/name", errBadCredentials)
	}
	keys, err := connref.Parse(decoded, "")
	if err != nil {
		return nil, fmt.Errorf("%w: connector list: %w", errBadCredentials, err)
	}
	return keys, nil
}
