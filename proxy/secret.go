package proxy

import (
	"context"
	"net/http"

	corev1 "k8s.io/api/core/v1"

	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
	"github.com/connectors-node/connectors-node/kube/ca"
)

// Secret reading: a Connector's auth Secret and CA Secret, both from the
// Connector's own namespace.

// secret reads the Connector's Secret, or nil when it names none. The
// Secret must live in the Connector's namespace.
func (p *Proxy) secret(ctx context.Context, c *v1alpha1.Connector) (*corev1.Secret, error) {
	ref := c.Spec.Auth.SecretRef
	if ref == nil || ref.Name == "" {
		return nil, nil
	}
	if ref.Namespace != "" && ref.Namespace != c.Namespace {
		return nil, statusErrorf(http.StatusInternalServerError,
			"connector %q: auth secret must be in the connector's namespace", c.Key())
	}
	s, err := p.opts.Objects.Secret(ctx, c.Namespace, ref.Name)
	if err != nil {
		return nil, objectError(c.Key(), "auth secret", err)
	}
	return s, nil
}

// connectorCA returns the certificates of a Connector's caCertSecretRef as
// PEM, or nil: those of keys ending in .crt or .pem and of values holding a
// PEM block (ca.CertsFromSecret). Other keys are never read into the
// pool or named in an error.
func (p *Proxy) connectorCA(ctx context.Context, c *v1alpha1.Connector) ([]byte, error) {
	ref := c.Spec.CACertSecretRef
	if ref == nil || ref.Name == "" {
		return nil, nil
	}
	s, err := p.opts.Objects.Secret(ctx, c.Namespace, ref.Name)
	if err != nil {
		return nil, objectError(c.Key(), "CA secret", err)
	}
	pem := ca.CertsFromSecret(s)
	if len(pem) == 0 {
		return nil, statusErrorf(http.StatusInternalServerError,
			"connector %q: CA secret holds no PEM certificate (in a key ending .crt or .pem)", c.Key())
	}
	return pem, nil
}
