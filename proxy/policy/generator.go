package policy

import (
	"context"
	"fmt"
	"mime"
	"net/http"
	"sort"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"golang.org/x/net/http/httpguts"
)

// Positions a generator may put its values in.
const (
	PositionHeader = "header"
	PositionQuery  = "query"
	PositionBody   = "body"
)

// Body content types a generator may merge into.
const (
	ContentTypeJSON = "application/json"
	ContentTypeForm = "application/x-www-form-urlencoded"
)

// maxValues bounds the values one generator yields.
const maxValues = 64

// Generator is a compiled spec.auth.types[].generator.rego.
type Generator struct {
	e *Engine
	p *prepared
}

// ReadsBody reports whether the policy may read input.request.body, so
// the caller decodes the body into Request.Body before Generate.
func (g *Generator) ReadsBody() bool { return g.p.reads.has("body") }

// Value is one key and value a generator injects.
type Value struct {
	Key   string
	Value string
}

// Injection is what a generator yields: where its values go and, for the
// body, as which content type. The values are credentials.
type Injection struct {
	Position string
	// ContentType is the body's media type, application/json or
	// application/x-www-form-urlencoded; "" unless Position is body and
	// the rule declared one.
	ContentType string
	// Values are sorted by key.
	Values []Value
}

// Secrets are the injected values, for scrubbing responses that echo them.
func (in *Injection) Secrets() []string {
	out := make([]string, 0, len(in.Values))
	for _, v := range in.Values {
		if v.Value != "" {
			out = append(out, v.Value)
		}
	}
	return out
}

// Generate evaluates the generator with the Secret's data and the
// outbound request. Any failure is an *Error naming the class and the
// rule, never the data.
func (g *Generator) Generate(ctx context.Context, data map[string]string, req *Request) (*Injection, error) {
	rv, err := req.value(g.p.reads)
	if err != nil {
		return nil, g.e.outcome(g.p, reasonError, "the request body cannot be given to the policy")
	}
	input := ast.NewObject(
		[2]*ast.Term{ast.InternedTerm("data"), ast.NewTerm(stringMap(data))},
		[2]*ast.Term{ast.InternedTerm("request"), ast.NewTerm(rv)},
	)
	v, reason, detail := g.e.run(ctx, g.p, input)
	var in *Injection
	switch reason {
	case reasonUndefine:
		reason, detail = reasonShape, "rule auth is undefined for this request"
	case reasonOK:
		if in, detail = g.injection(v); detail != "" {
			reason = reasonShape
		}
	}
	if err := g.e.outcome(g.p, reason, detail); err != nil {
		return nil, err
	}
	return in, nil
}

// injection checks the shape of auth and converts it. Its message names
// fields, never their values.
func (g *Generator) injection(v any) (*Injection, string) {
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, "rule auth must be an object with position and auth"
	}
	for k := range obj {
		if k != "position" && k != "contentType" && k != "auth" {
			return nil, fmt.Sprintf("rule auth has an unknown field %q", limit(k))
		}
	}
	in := &Injection{}
	in.Position, ok = obj["position"].(string)
	switch {
	case !ok:
		return nil, "auth.position must be a string: header, query or body"
	case in.Position != PositionHeader && in.Position != PositionQuery && in.Position != PositionBody:
		return nil, "auth.position must be header, query or body"
	}
	if ct, present := obj["contentType"]; present {
		s, ok := ct.(string)
		if !ok {
			return nil, "auth.contentType must be a string"
		}
		if in.Position == PositionBody {
			mt, _, err := mime.ParseMediaType(s)
			if err != nil || (mt != ContentTypeJSON && mt != ContentTypeForm) {
				return nil, "auth.contentType must be application/json or application/x-www-form-urlencoded"
			}
			in.ContentType = mt
		}
	}
	vals, ok := obj["auth"].(map[string]any)
	switch {
	case !ok:
		return nil, "auth.auth must be an object of strings"
	case len(vals) == 0:
		return nil, "auth.auth is empty"
	case len(vals) > maxValues:
		return nil, fmt.Sprintf("auth.auth has more than %d entries", maxValues)
	}
	size := 0
	for k, x := range vals {
		s, ok := x.(string)
		if !ok {
			return nil, fmt.Sprintf("auth.auth[%q] must be a string", limit(k))
		}
		if detail := checkKey(in.Position, k, s); detail != "" {
			return nil, detail
		}
		size += len(k) + len(s)
		in.Values = append(in.Values, Value{Key: k, Value: s})
	}
	if size > g.e.opts.MaxOutputBytes {
		return nil, fmt.Sprintf("auth.auth is over %d bytes", g.e.opts.MaxOutputBytes)
	}
	sort.Slice(in.Values, func(i, j int) bool { return in.Values[i].Key < in.Values[j].Key })
	return in, ""
}

// reservedHeaders frame the request or belong to the proxy; a generator
// may not set them.
var reservedHeaders = map[string]bool{
	"Host": true, "Content-Length": true, "Transfer-Encoding": true, "Connection": true,
	"Upgrade": true, "Te": true, "Trailer": true, "Keep-Alive": true,
	"Proxy-Authorization": true, "Proxy-Connection": true, "Proxy-Authenticate": true,
}

func checkKey(position, k, v string) string {
	if k == "" {
		return "auth.auth has an empty key"
	}
	if position != PositionHeader {
		return ""
	}
	if !httpguts.ValidHeaderFieldName(k) {
		return fmt.Sprintf("auth.auth[%q] is not a valid header name", limit(k))
	}
	if reservedHeaders[http.CanonicalHeaderKey(k)] {
		return fmt.Sprintf("auth.auth[%q]: the header %s cannot be set by a policy", limit(k), http.CanonicalHeaderKey(k))
	}
	if !httpguts.ValidHeaderFieldValue(v) || strings.ContainsAny(v, "\r\n") {
		return fmt.Sprintf("auth.auth[%q] is not a valid header value", limit(k))
	}
	return ""
}

// limit shortens a key for a message; keys are names, not secrets, but
// a policy could yield a long one.
func limit(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
