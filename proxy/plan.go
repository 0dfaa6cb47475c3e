package proxy

import (
	"context"
	"net/http"
	"net/url"

	"github.com/connectors-node/connectors-node/kube"
	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
	"github.com/connectors-node/connectors-node/proxy/policy"
	"github.com/connectors-node/connectors-node/proxy/registryauth"
)

// plan is what the rewrite step needs to send one request upstream.
type plan struct {
	mode      string
	connector string
	// target is the upstream URL: scheme, host, path and query.
	target *url.URL
	// credential is the Authorization value to inject ("" for none).
	credential string
	// dropAuthorization removes the client's Authorization (reverse mode,
	// where it carries the client's token).
	dropAuthorization bool
	// token is the client's token; an Authorization header carrying it is
	// removed (forward modes).
	token string
	// caPEM are extra roots for the upstream's certificate.
	caPEM []byte
	// location rewrites backend Location headers (reverse mode).
	location *locationRewrite
	// registry, when set, authenticates to a registry with its token flow
	// (package registryauth) instead of sending credential as it is.
	registry *registryauth.Flow
	// generation, when set, is the class generator that injects the
	// credential instead of credential (rego.go).
	generation *generation
	// headers are set on the outbound request: a generator's header values.
	headers []policy.Value
	// secrets are the injected values besides credential (a generator's
	// values in any position, the Connectors API's X-Plugin-Secret).
	secrets []string
	// dropHeaders are removed from the client's request before headers
	// are set (the Connectors API drops client X-Plugin headers).
	dropHeaders []string
	// secretNamespace and secretName name the Secret the credential comes
	// from; an upstream's refusal of the credential has it read again.
	secretNamespace, secretName string
	// caNamespace and caSecretName name the Secret caPEM comes from; an
	// upstream certificate that does not verify has it read again.
	caNamespace, caSecretName string
}

// injects reports whether the plan injects a credential.
func (pl *plan) injects() bool {
	return pl.credential != "" || pl.generation != nil || len(pl.secrets) > 0
}

// injectedSecrets are the credential values this request carries upstream:
// the Authorization value and a generator's values. The scrubber removes
// a response header value that echoes one of them.
func (pl *plan) injectedSecrets() []string {
	if pl.credential == "" {
		return pl.secrets
	}
	return append([]string{pl.credential}, pl.secrets...)
}

// planConnector plans what the routed Connector adds to the request: its
// credential (planCredential), the CA that verifies its host (connectorCA)
// and, on a registry API path, the registry token flow (registryPlan). A
// request no Connector serves gets none of them.
func (p *Proxy) planConnector(ctx context.Context, rt *routed, method string) error {
	if rt.conn == nil {
		return nil
	}
	pl := rt.plan
	pl.connector = rt.conn.Key()
	if rt.injects {
		if err := p.planCredential(ctx, pl, rt.conn); err != nil {
			return err
		}
	}
	var err error
	if pl.caPEM, err = p.connectorCA(ctx, rt.conn); err != nil {
		return err
	}
	if pl.caPEM != nil {
		pl.caNamespace, pl.caSecretName = rt.conn.Namespace, rt.conn.Spec.CACertSecretRef.Name
	}
	if rt.injects {
		p.registryPlan(pl, rt.conn, rt.addr, method)
	}
	return nil
}

// planCredential decides how a Connector's credential is injected: by its
// auth type's generator when the class has one, else as the Authorization
// value of its Secret type.
func (p *Proxy) planCredential(ctx context.Context, pl *plan, c *v1alpha1.Connector) error {
	gen, err := p.generator(ctx, c)
	if err != nil {
		return err
	}
	s, err := p.secret(ctx, c)
	if err != nil || s == nil {
		return err
	}
	pl.secretNamespace, pl.secretName = s.Namespace, s.Name
	if gen == nil {
		pl.credential, err = p.memos.authorization(s)
		return err
	}
	data := make(map[string]string, len(s.Data))
	for k, v := range s.Data {
		data[k] = string(v)
	}
	pl.generation = &generation{gen: gen, data: data}
	return nil
}

// refused has the Secret of a plan read again when the upstream answered
// the injected credential with 401 or 403: it may have been rotated since
// it was read (kube.SecretRefresher). The request is not retried; the next
// one carries what the read finds.
func (p *Proxy) refused(pl *plan, status int) {
	if pl.secretName == "" || (status != http.StatusUnauthorized && status != http.StatusForbidden) {
		return
	}
	if r, ok := p.opts.Objects.(kube.SecretRefresher); ok {
		r.RefreshSecret(pl.secretNamespace, pl.secretName)
	}
}

// untrusted has the CA Secret of a plan read again when the upstream's
// certificate did not verify against it: the certificate and the Secret
// may have been rotated together since it was read. As with refused, the
// request is not retried; the next one is verified with what the read
// finds.
func (p *Proxy) untrusted(pl *plan) {
	if pl == nil || pl.caSecretName == "" {
		return
	}
	if r, ok := p.opts.Objects.(kube.SecretRefresher); ok {
		r.RefreshSecret(pl.caNamespace, pl.caSecretName)
	}
}
