package policy

import (
	"context"

	"github.com/open-policy-agent/opa/v1/ast"
)

// Extractor is a compiled spec.proxy.authExtractor.rego.
type Extractor struct {
	e *Engine
	p *prepared
}

// ReadsBody reports whether the policy may read input.request.body, so
// the caller decodes the body into Request.Body before Extract.
func (x *Extractor) ReadsBody() bool { return x.p.reads.has("body") }

// Extract evaluates the extractor on the client's request and returns the
// token it finds: "" when the rule yields an empty token or is undefined.
// Any failure is an *Error naming the class and the rule, never the data.
func (x *Extractor) Extract(ctx context.Context, req *Request) (string, error) {
	rv, err := req.value(x.p.reads)
	if err != nil {
		return "", x.e.outcome(x.p, reasonError, "the request body cannot be given to the policy")
	}
	input := ast.NewObject([2]*ast.Term{ast.InternedTerm("request"), ast.NewTerm(rv)})
	v, reason, detail := x.e.run(ctx, x.p, input)
	var tok string
	if reason == reasonOK {
		if tok, detail = x.token(v); detail != "" {
			reason = reasonShape
		}
	}
	if err := x.e.outcome(x.p, reason, detail); err != nil {
		return "", err
	}
	return tok, nil
}

// token checks the shape of auth and returns its token. Its message names
// fields, never their values.
func (x *Extractor) token(v any) (string, string) {
	obj, ok := v.(map[string]any)
	if !ok {
		return "", "rule auth must be an object with a token"
	}
	for k := range obj {
		if k != "token" {
			return "", "rule auth has an unknown field " + quote(limit(k))
		}
	}
	tok, ok := obj["token"].(string)
	switch {
	case !ok:
		return "", "auth.token must be a string"
	case len(tok) > x.e.opts.MaxOutputBytes:
		return "", "auth.token is too long"
	}
	return tok, ""
}

func quote(s string) string { return `"` + s + `"` }
