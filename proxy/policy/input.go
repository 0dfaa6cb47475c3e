package policy

import (
	"net/http"
	"net/url"

	"github.com/open-policy-agent/opa/v1/ast"
)

// Request is what a policy sees of an HTTP request as input.request.
type Request struct {
	Method string
	// Path is the request path, unescaped.
	Path string
	Host string
	// Header are the request headers by canonical name.
	Header http.Header
	Query  url.Values
	// Body is the decoded body (a JSON value, or for a form the fields as
	// a map of string lists). It is set only for a policy that reads the
	// body, and it is left out of the input when nil.
	Body any
}

// value is the request as input.request, with the fields reads names.
func (r *Request) value(reads requestReads) (ast.Value, error) {
	obj := ast.NewObjectWithCapacity(6)
	if reads.has("method") {
		obj.Insert(ast.InternedTerm("method"), ast.StringTerm(r.Method))
	}
	if reads.has("path") {
		obj.Insert(ast.InternedTerm("path"), ast.StringTerm(r.Path))
	}
	if reads.has("host") {
		obj.Insert(ast.InternedTerm("host"), ast.StringTerm(r.Host))
	}
	if reads.has("headers") {
		obj.Insert(ast.InternedTerm("headers"), ast.NewTerm(stringLists(r.Header)))
	}
	if reads.has("query") {
		obj.Insert(ast.InternedTerm("query"), ast.NewTerm(stringLists(r.Query)))
	}
	if r.Body != nil && reads.has("body") {
		body, err := ast.InterfaceToValue(r.Body)
		if err != nil {
			return nil, err
		}
		obj.Insert(ast.InternedTerm("body"), ast.NewTerm(body))
	}
	return obj, nil
}

func stringLists[M ~map[string][]string](m M) ast.Value {
	obj := ast.NewObjectWithCapacity(len(m))
	for k, vs := range m {
		terms := make([]*ast.Term, len(vs))
		for i, v := range vs {
			terms[i] = ast.StringTerm(v)
		}
		obj.Insert(ast.StringTerm(k), ast.ArrayTerm(terms...))
	}
	return obj
}

func stringMap(m map[string]string) ast.Value {
	obj := ast.NewObjectWithCapacity(len(m))
	for k, v := range m {
		obj.Insert(ast.StringTerm(k), ast.StringTerm(v))
	}
	return obj
}
