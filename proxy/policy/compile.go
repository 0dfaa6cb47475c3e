package policy

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
)

// query is what every hook evaluates: the auth rule of package proxy.
const query = "data.proxy.auth"

// deniedBuiltins reach the network, the file system or the runtime, or
// fetch remote JSON schemas; print and trace would write policy data to a
// log. They are taken out of the engine's capabilities and also marked
// unsafe, so a policy that calls one does not compile.
var deniedBuiltins = []string{
	"http.send",
	"opa.runtime",
	"json.match_schema",
	"json.verify_schema",
	"trace",
	"print",
	"internal.print",
}

// deniedNamespaces are builtin namespaces taken out whole: net.* resolves
// names (net.lookup_ip_addr) and inspects networks.
var deniedNamespaces = []string{"net."}

// capabilities are this OPA version's capabilities without the denied
// builtins, and with no host allowed for network access.
func capabilities() (*ast.Capabilities, map[string]struct{}) {
	caps := ast.CapabilitiesForThisVersion()
	unsafe := map[string]struct{}{}
	kept := caps.Builtins[:0:0]
	for _, b := range caps.Builtins {
		if denied(b.Name) {
			unsafe[b.Name] = struct{}{}
			continue
		}
		kept = append(kept, b)
	}
	caps.Builtins = kept
	caps.AllowNet = []string{}
	return caps, unsafe
}

func denied(name string) bool {
	for _, d := range deniedBuiltins {
		if name == d {
			return true
		}
	}
	for _, ns := range deniedNamespaces {
		if strings.HasPrefix(name, ns) {
			return true
		}
	}
	return false
}

// prepared is one compiled hook.
type prepared struct {
	class string
	rule  string
	hook  string
	pq    rego.PreparedEvalQuery
	// reads are the fields of input.request the policy may read.
	reads requestReads
	// iterates is set when the policy has a comprehension, some, every or
	// a reference indexed by a variable: only such a policy can take more
	// steps than it has expressions, so only it runs with the step budget
	// (counting steps costs a fifth of a short evaluation).
	iterates bool
}

// maxCompileDetail bounds the compile error text kept for messages.
const maxCompileDetail = 1024

// compile parses and prepares one policy. The Rego v1 syntax is tried
// first; a policy in the older v0 syntax (rule bodies without "if", as in
// some upstream examples) is accepted too.
func (e *Engine) compile(ctx context.Context, class, rule, hook, src string) (*prepared, error) {
	fail := func(format string, args ...any) error {
		detail := fmt.Sprintf(format, args...)
		if len(detail) > maxCompileDetail {
			detail = detail[:maxCompileDetail] + "…"
		}
		return &Error{Class: class, Rule: rule, Reason: reasonCompile, Detail: detail}
	}
	if strings.TrimSpace(src) == "" {
		return nil, fail("the policy is empty")
	}
	if len(src) > e.opts.MaxPolicyBytes {
		return nil, fail("the policy is over %d bytes", e.opts.MaxPolicyBytes)
	}
	filename := class + "/" + rule
	version := ast.RegoV1
	mod, err := ast.ParseModuleWithOpts(filename, src, ast.ParserOptions{RegoVersion: ast.RegoV1, Capabilities: e.caps})
	if err != nil {
		mod0, err0 := ast.ParseModuleWithOpts(filename, src, ast.ParserOptions{RegoVersion: ast.RegoV0, Capabilities: e.caps})
		if err0 != nil {
			return nil, fail("does not parse: %v", err)
		}
		mod, version = mod0, ast.RegoV0
	}
	if mod.Package.Path.String() != "data.proxy" {
		return nil, fail("the package must be proxy, not %s", strings.TrimPrefix(mod.Package.Path.String(), "data."))
	}
	if !definesAuth(mod) {
		return nil, fail("the policy defines no rule auth")
	}
	r := rego.New(
		rego.Query(query),
		rego.ParsedModule(mod),
		rego.SetRegoVersion(version),
		rego.Capabilities(e.caps),
		rego.UnsafeBuiltins(e.unsafe),
		rego.EnablePrintStatements(false),
		rego.StrictBuiltinErrors(false),
	)
	pq, err := r.PrepareForEval(ctx)
	if err != nil {
		return nil, fail("does not compile: %v", compileErrors(err))
	}
	return &prepared{class: class, rule: rule, hook: hook, pq: pq, reads: readsOf(mod), iterates: iterates(mod)}, nil
}

// compileErrors renders OPA's compile errors one per line, without the
// "N errors occurred" header.
func compileErrors(err error) string {
	var errs ast.Errors
	if errors.As(err, &errs) {
		parts := make([]string, 0, len(errs))
		for _, e := range errs {
			parts = append(parts, e.Error())
		}
		return strings.Join(parts, "; ")
	}
	return err.Error()
}

func definesAuth(mod *ast.Module) bool {
	for _, r := range mod.Rules {
		if ref := r.Head.Ref(); len(ref) > 0 && ref[0].Value.Compare(ast.Var("auth")) == 0 {
			return true
		}
	}
	return false
}

// requestReads are the fields of input.request a policy may read; the
// input holds only those, which saves building headers and query for a
// policy that only reads input.data.
type requestReads struct {
	all    bool
	fields map[string]bool
}

func (r requestReads) has(field string) bool { return r.all || r.fields[field] }

// readsOf finds the input.request fields a policy refers to. A reference
// to input or input.request as a whole, or one that indexes them with a
// variable, reads everything.
func readsOf(mod *ast.Module) requestReads {
	out := requestReads{fields: map[string]bool{}}
	ast.WalkRefs(mod, func(r ast.Ref) bool {
		if out.all || !r[0].Equal(ast.InputRootDocument) {
			return out.all
		}
		if len(r) < 2 {
			out.all = true
			return true
		}
		if s, ok := r[1].Value.(ast.String); !ok || s != "request" {
			out.all = !ok
			return out.all
		}
		if len(r) < 3 {
			out.all = true
			return true
		}
		s, ok := r[2].Value.(ast.String)
		if !ok {
			out.all = true
			return true
		}
		out.fields[string(s)] = true
		return false
	})
	return out
}

func iterates(mod *ast.Module) bool {
	found := false
	ast.NewGenericVisitor(func(n any) bool {
		switch x := n.(type) {
		case *ast.ArrayComprehension, *ast.SetComprehension, *ast.ObjectComprehension, *ast.Every, *ast.SomeDecl:
			found = true
		case ast.Ref:
			for _, t := range x[1:] {
				if _, ok := t.Value.(ast.Var); ok {
					found = true
				}
			}
		}
		return found
	}).Walk(mod)
	return found
}
