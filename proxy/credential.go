package proxy

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"

	corev1 "k8s.io/api/core/v1"

	"github.com/connectors-node/connectors-node/kube"
)

// Secret types whose credentials the proxy injects (SPEC §2).
//
// These are Secret type names, not credentials.
//
//nolint:gosec // G101: type names that contain the word "token"
const (
	// SecretTypeBearerToken holds a `token` injected as Authorization: Bearer.
	SecretTypeBearerToken corev1.SecretType = "connectors.cpaas.io/bearer-token"
	// SecretTypeRegistryToken holds `username` and `password`; they are
	// injected as Basic (the registry token flow builds on this).
	SecretTypeRegistryToken corev1.SecretType = "cpaas.io/distribution-registry-token"
)

// authorizationFor builds the Authorization value for a Secret by type.
func authorizationFor(s *corev1.Secret) (string, error) {
	switch s.Type {
	case corev1.SecretTypeBasicAuth, SecretTypeRegistryToken:
		user, pass := s.Data[corev1.BasicAuthUsernameKey], s.Data[corev1.BasicAuthPasswordKey]
		if len(user) == 0 && len(pass) == 0 {
			return "", statusErrorf(http.StatusInternalServerError,
				"secret %q holds no username or password", s.Namespace+"/"+s.Name)
		}
		raw := make([]byte, 0, len(user)+1+len(pass))
		raw = append(append(append(raw, user...), ':'), pass...)
		return "Basic " + base64.StdEncoding.EncodeToString(raw), nil
	case SecretTypeBearerToken:
		tok := s.Data["token"]
		if len(tok) == 0 {
			return "", statusErrorf(http.StatusInternalServerError,
				"secret %q holds no token", s.Namespace+"/"+s.Name)
		}
		return "Bearer " + string(tok), nil
	default:
		return "", statusErrorf(http.StatusInternalServerError,
			"secret %q has type %q, which the proxy cannot inject", s.Namespace+"/"+s.Name, s.Type)
	}
}

// objectError maps a failed read of an object a Connector needs.
func objectError(connector, what string, err error) error {
	switch {
	case errors.Is(err, kube.ErrNotFound):
		return &statusError{status: http.StatusInternalServerError,
			msg: fmt.Sprintf("connector %q: %s not found", connector, what), err: err}
	case errors.Is(err, kube.ErrUnavailable):
		return apiUnavailable(err)
	default:
		return &statusError{status: http.StatusInternalServerError,
			msg: fmt.Sprintf("connector %q: reading %s failed", connector, what), err: err}
	}
}
