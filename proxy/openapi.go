package proxy

import (
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
)

// The Connectors API reads a ConnectorClass's spec.api.openapi for two
// things: which backend an API path goes to (x-provider-type and
// x-openapi-address of its operation) and the path template that names it
// in the connectors/apis/<class>/<template> permission check.

// Provider types of an OpenAPI operation (x-provider-type).
const (
	providerProxy = "proxy" // the tool's own API, through the proxy; the default
	providerAPI   = "api"   // the class's API service (spec.api)
)

// operation is what the gateway needs of one OpenAPI operation.
type operation struct {
	// template is the OpenAPI path the request matched, "/api/v4/projects/{id}".
	template string
	// provider is providerProxy or providerAPI.
	provider string
	// address is x-openapi-address: "" (spec.address), the name of an
	// address extension, or an http(s) URL.
	address string
}

// openAPIPath is one path of a class's OpenAPI description.
type openAPIPath struct {
	template string
	// segments match the escaped path's segments one for one.
	segments []*regexp.Regexp
	// literals counts the segments without a parameter: the more, the more
	// specific the path.
	literals int
	ops      map[string]operation // by lower-case method
}

// classAPI is a class's parsed OpenAPI description.
type classAPI struct {
	paths []openAPIPath
	err   error
}

// rawOperation is an OpenAPI operation as written.
type rawOperation struct {
	ProviderType string `json:"x-provider-type"`
	Address      string `json:"x-openapi-address"`
}

// parseClassAPI parses spec.api.openapi. Only paths and the two extensions
// are read; the rest of the document is the UI's.
func parseClassAPI(spec *v1alpha1.APISpec) *classAPI {
	ca := &classAPI{}
	if spec == nil || spec.OpenAPI == nil || len(spec.OpenAPI.Raw) == 0 {
		return ca
	}
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(spec.OpenAPI.Raw, &doc); err != nil {
		ca.err = fmt.Errorf("spec.api.openapi: %w", err)
		return ca
	}
	for tmpl, item := range doc.Paths {
		p := openAPIPath{template: tmpl, ops: map[string]operation{}}
		for _, seg := range strings.Split(strings.Trim(tmpl, "/"), "/") {
			re, literal, err := segmentPattern(seg)
			if err != nil {
				ca.err = fmt.Errorf("spec.api.openapi.paths[%q]: %w", tmpl, err)
				return ca
			}
			p.segments = append(p.segments, re)
			if literal {
				p.literals++
			}
		}
		for method, raw := range item {
			var ro rawOperation
			// Path-level keys that are not operations (parameters,
			// summary) do not decode into an object with these fields, or
			// decode empty; only method names are looked up later.
			if json.Unmarshal(raw, &ro) != nil {
				continue
			}
			op := operation{template: tmpl, provider: ro.ProviderType, address: ro.Address}
			switch op.provider {
			case "":
				op.provider = providerProxy
			case providerProxy, providerAPI:
			default:
				ca.err = fmt.Errorf("spec.api.openapi.paths[%q].%s: x-provider-type %q is not proxy or api", tmpl, method, op.provider)
				return ca
			}
			p.ops[strings.ToLower(method)] = op
		}
		ca.paths = append(ca.paths, p)
	}
	return ca
}

// segmentPattern turns one OpenAPI path segment into a pattern over an
// escaped request segment: literal text matches itself (escaped as a URL
// path would carry it, or not), a {parameter} one or more characters other
// than "/". literal reports a segment without parameters.
func segmentPattern(seg string) (*regexp.Regexp, bool, error) {
	var b strings.Builder
	b.WriteString("^")
	literal := true
	for seg != "" {
		i := strings.IndexByte(seg, '{')
		if i < 0 {
			b.WriteString(regexp.QuoteMeta(seg))
			break
		}
		j := strings.IndexByte(seg[i:], '}')
		if j < 0 {
			return nil, false, fmt.Errorf("unclosed parameter in %q", seg)
		}
		b.WriteString(regexp.QuoteMeta(seg[:i]))
		b.WriteString(`[^/]+`)
		literal = false
		seg = seg[i+j+1:]
	}
	b.WriteString("$")
	re, err := regexp.Compile(b.String())
	return re, literal, err
}

// find returns the operation for method on the escaped API path, the most
// specific path first (most literal segments). HEAD and OPTIONS use the
// get operation, as upstream routes them. ok is false when no path and
// method match.
func (ca *classAPI) find(method, escapedPath string) (operation, bool) {
	m := strings.ToLower(method)
	if m == "head" || m == "options" {
		m = "get"
	}
	segs := strings.Split(strings.Trim(escapedPath, "/"), "/")
	var best *openAPIPath
	for i := range ca.paths {
		p := &ca.paths[i]
		if _, ok := p.ops[m]; !ok || len(p.segments) != len(segs) {
			continue
		}
		if !p.matches(segs) {
			continue
		}
		if best == nil || p.literals > best.literals || p.literals == best.literals && p.template < best.template {
			best = p
		}
	}
	if best == nil {
		return operation{}, false
	}
	return best.ops[m], true
}

func (p *openAPIPath) matches(segs []string) bool {
	for i, re := range p.segments {
		s := segs[i]
		if re.MatchString(s) {
			continue
		}
		// A literal segment written unescaped in the description may come
		// escaped in the request.
		if u, err := url.PathUnescape(s); err != nil || strings.Contains(u, "/") || !re.MatchString(u) {
			return false
		}
	}
	return true
}
