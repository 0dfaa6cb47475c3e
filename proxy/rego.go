package proxy

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"k8s.io/apimachinery/pkg/types"

	"github.com/connectors-node/connectors-node/kube"
	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
	"github.com/connectors-node/connectors-node/proxy/policy"
)

// The ConnectorClass Rego hooks (package policy): a class's authExtractor
// finds the client's token in a reverse request, and an auth type's
// generator says how the Connector's credential goes into the request.

// classPolicies returns the compiled policies of a Connector's class, or
// nil when the class does not exist (the Connector then works as a class
// without hooks; the CSI side reports the missing class).
func (p *Proxy) classPolicies(ctx context.Context, c *v1alpha1.Connector) (*policy.Class, error) {
	if c.Spec.ConnectorClassName == "" {
		return nil, nil
	}
	cc, err := p.opts.Objects.ConnectorClass(ctx, c.Spec.ConnectorClassName)
	if errors.Is(err, kube.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, objectError(c.Key(), "connectorclass", err)
	}
	return p.opts.Policies.Class(cc), nil
}

// extractor looks up the class extractor of the Connector key names. The
// Connector is read before the caller is authenticated, so any failure
// here falls back to the plain Authorization token and leaks nothing; only
// a broken extractor is reported.
func (p *Proxy) extractor(ctx context.Context, key types.NamespacedName) (*policy.Extractor, error) {
	conn, err := p.opts.Objects.Connector(ctx, key.Namespace, key.Name)
	if err != nil {
		return nil, nil //nolint:nilerr // admit reports a missing Connector after authentication
	}
	cls, err := p.classPolicies(ctx, conn)
	if err != nil || cls == nil {
		return nil, nil //nolint:nilerr // as above
	}
	x, err := cls.Extractor()
	if err != nil {
		return nil, reverseChallenge.fail(err.Error(), nil)
	}
	return x, nil
}

// generation is a planned generator evaluation: the generator and the
// Secret data it reads.
type generation struct {
	gen  *policy.Generator
	data map[string]string
}

// generator returns the generator of the Connector's auth type, or nil.
func (p *Proxy) generator(ctx context.Context, c *v1alpha1.Connector) (*policy.Generator, error) {
	cls, err := p.classPolicies(ctx, c)
	if err != nil || cls == nil {
		return nil, err
	}
	gen, err := cls.Generator(authTypeName(ctx, c, p.opts.Objects))
	if err != nil {
		return nil, &statusError{status: http.StatusBadGateway, msg: err.Error()}
	}
	return gen, nil
}

// authTypeName is the Connector's spec.auth.name, or the class's only
// auth type when it names none.
func authTypeName(ctx context.Context, c *v1alpha1.Connector, objects kube.Objects) string {
	if c.Spec.Auth.Name != "" {
		return c.Spec.Auth.Name
	}
	cc, err := objects.ConnectorClass(ctx, c.Spec.ConnectorClassName)
	if err == nil && len(cc.Spec.Auth.Types) == 1 {
		return cc.Spec.Auth.Types[0].Name
	}
	return ""
}

// generate evaluates the planned generator on the outbound request and
// applies what it yields. It returns the request to send, whose body may
// have been replaced.
func (p *Proxy) generate(r *http.Request, pl *plan) (*http.Request, error) {
	g := pl.generation
	h := r.Header.Clone()
	h.Del("Proxy-Authorization")
	if pl.dropAuthorization {
		h.Del("Authorization")
	}
	removeTokenHeaders(h, pl.token)
	req := &policy.Request{Method: r.Method, Path: pl.target.Path, Host: pl.target.Host, Header: h, Query: pl.target.Query()}
	if g.gen.ReadsBody() {
		body, err := bufferBody(r, p.opts.PolicyBodyLimit, "the generator reads the request body")
		if err != nil {
			return nil, err
		}
		req.Body = body
	}
	in, err := g.gen.Generate(r.Context(), g.data, req)
	if err != nil {
		return nil, &statusError{status: http.StatusBadGateway, msg: err.Error()}
	}
	pl.secrets = append(pl.secrets, in.Secrets()...)
	switch in.Position {
	case policy.PositionHeader:
		pl.headers = in.Values
	case policy.PositionQuery:
		pl.target.RawQuery = setQuery(pl.target.RawQuery, in.Values)
	case policy.PositionBody:
		if err := mergeBody(r, in, p.opts.PolicyBodyLimit); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// setQuery replaces the parameters named in vals, keeping the others in
// their order.
func setQuery(raw string, vals []policy.Value) string {
	names := make(map[string]bool, len(vals))
	for _, v := range vals {
		names[v.Key] = true
	}
	var out []string
	for _, part := range strings.Split(raw, "&") {
		if part == "" {
			continue
		}
		k, _, _ := strings.Cut(part, "=")
		if name, err := url.QueryUnescape(k); err == nil && names[name] {
			continue
		}
		out = append(out, part)
	}
	for _, v := range vals {
		out = append(out, url.QueryEscape(v.Key)+"="+url.QueryEscape(v.Value))
	}
	return strings.Join(out, "&")
}
