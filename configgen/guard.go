package configgen

import (
	"bytes"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"text/template"
)

// The structural guard: no value a Connector or configuration.params
// brings into a rendered file may hold a control character, whatever the
// template does with it. A line break in an address must not become a line
// of .gitconfig or .npmrc, also in a class that forgets to escape it.
//
// The guard looks at what a file is made of, not at every field: a
// Connector applied with kubectl carries its last-applied-configuration
// annotation, which ends in a line break, and a status condition message
// may span lines; neither matters to a template that does not read them.
// So a file whose data hold such values is rendered twice, once as it is
// and once with those values' control characters replaced. Identical
// output means none of them reached the file: the output is that of
// values without control characters. Any difference (or an error only one
// of the two renders gives) fails the volume with an *InvalidError naming
// the value that made it.

// controlError is the *InvalidError for a field whose value holds a control
// character, or nil when it holds none. It names the character and where
// it is, never the value.
func controlError(field, s string) error {
	i := strings.IndexFunc(s, isControl)
	if i < 0 {
		return nil
	}
	r := []rune(s[i:])[0]
	return &InvalidError{
		Field:  field,
		Reason: fmt.Sprintf("holds control character %U at byte %d; a value that reaches a rendered file may hold none", r, i),
	}
}

// maxGuardProbes bounds the renders spent finding which value made a file
// differ; past it the error names the first value with a control
// character.
const maxGuardProbes = 8

// tainted is a value of a unit's template data that holds a control
// character.
type tainted struct {
	field string
	value string
}

// taints lists the values of the unit's template data that hold a control
// character and come from a Connector (its own fields, not the class
// defaults added to spec.params), configuration.params or the class's
// status proxy address, in a stable order. The token and the CA are the
// renderer's own and are not listed.
func (r *renderer) taints(u *unit) ([]tainted, error) {
	var out []tainted
	add := func(field string) func(path, s string) {
		return func(path, s string) {
			if strings.IndexFunc(s, isControl) >= 0 {
				out = append(out, tainted{field: strings.TrimSpace(field + " " + path), value: s})
			}
		}
	}
	for _, c := range u.connectors {
		m, err := connectorData(c, nil)
		if err != nil {
			return nil, err
		}
		walkStrings(m, "", add(fmt.Sprintf("connector %q", c.Object.Key())))
	}
	for _, name := range sortedKeys(r.in.Params) {
		walkStrings(r.in.Params[name], paramsField+"."+pathKey(name), add(""))
	}
	if p := u.class.Status.Proxy; p != nil && p.HTTPAddress != nil {
		add(fmt.Sprintf("connectorclass %q", u.class.Name))("status.proxy.httpAddress.url", p.HTTPAddress.URL)
	}
	return out, nil
}

// identifier is a map key written after a dot in a field path; other keys
// are written in brackets.
var identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]*$`)

func pathKey(k string) string {
	if identifier.MatchString(k) {
		return k
	}
	return "[" + k + "]"
}

// joinPath appends a map key to a field path.
func joinPath(path, k string) string {
	if k = pathKey(k); path == "" || strings.HasPrefix(k, "[") {
		return path + k
	}
	return path + "." + k
}

// walkStrings calls found for every string of a decoded JSON value, map
// keys included, with its field path: map keys after dots or in brackets
// (metadata.annotations[example.com/x]), list items by index, or by name
// for the named items of spec.params, spec.addressExtensions and
// spec.auth.params (spec.params[foo], whose value is spec.params[foo]
// itself). A name or key that holds a control character is never written
// into a path.
func walkStrings(v any, path string, found func(path, s string)) {
	switch v := v.(type) {
	case string:
		found(path, v)
	case map[string]any:
		for _, k := range sortedKeys(v) {
			if strings.IndexFunc(k, isControl) >= 0 {
				found(path+" (a key)", k)
				walkStrings(v[k], path+"[?]", found)
				continue
			}
			walkStrings(v[k], joinPath(path, k), found)
		}
	case []any:
		for i, e := range v {
			if name, ok := namedItem(e); ok {
				walkStrings(e.(map[string]any)["value"], path+"["+name+"]", found)
				continue
			}
			walkStrings(e, path+"["+strconv.Itoa(i)+"]", found)
		}
	}
}

// namedItem reports the name of a {name, value} list item whose name is
// safe to write into a path.
func namedItem(e any) (string, bool) {
	m, ok := e.(map[string]any)
	if !ok {
		return "", false
	}
	name, ok := m["name"].(string)
	if !ok || name == "" || strings.IndexFunc(name, isControl) >= 0 {
		return "", false
	}
	for k := range m {
		if k != "name" && k != "value" {
			return "", false
		}
	}
	return name, true
}

// scrub replaces, in v, every string (map keys too) that is in set by the
// same string with each control character replaced by U+FFFD. v is
// changed in place; a map whose keys change is rebuilt.
func scrub(v any, set map[string]bool) any {
	switch v := v.(type) {
	case string:
		if set[v] {
			return scrubbed(v)
		}
		return v
	case map[string]any:
		var renamed []string
		for k, e := range v {
			v[k] = scrub(e, set)
			if set[k] {
				renamed = append(renamed, k)
			}
		}
		for _, k := range renamed {
			e := v[k]
			delete(v, k)
			v[scrubbed(k)] = e
		}
		return v
	case []any:
		for i, e := range v {
			v[i] = scrub(e, set)
		}
		return v
	default:
		return v
	}
}

func scrubbed(s string) string {
	return strings.Map(func(r rune) rune {
		if isControl(r) {
			return '\uFFFD'
		}
		return r
	}, s)
}

// renderFile executes a class template for the unit, under the guard.
func (r *renderer) renderFile(tpl *template.Template, u *unit, units []*unit, taints []tainted) ([]byte, error) {
	out, err := r.execute(tpl, u, units, nil)
	if len(taints) == 0 {
		return out, err
	}
	all := make(map[string]bool, len(taints))
	for _, t := range taints {
		all[t.value] = true
	}
	clean, cleanErr := r.execute(tpl, u, units, all)
	switch {
	case err == nil && cleanErr == nil && bytes.Equal(out, clean):
		return out, nil
	case err != nil && cleanErr != nil:
		// The template fails with or without the control characters.
		return nil, err
	}
	t := r.culprit(tpl, u, units, taints, all, clean, cleanErr)
	return nil, controlError(t.field, t.value)
}

// culprit finds a value whose control characters change the file: with
// only that value left as it is, the render differs from the scrubbed
// one.
func (r *renderer) culprit(tpl *template.Template, u *unit, units []*unit, taints []tainted, all map[string]bool, clean []byte, cleanErr error) tainted {
	tried := make(map[string]bool, maxGuardProbes)
	for _, t := range taints {
		if tried[t.value] {
			continue
		}
		if len(tried) == maxGuardProbes {
			break
		}
		tried[t.value] = true
		others := make(map[string]bool, len(all))
		for v := range all {
			others[v] = v != t.value
		}
		out, err := r.execute(tpl, u, units, others)
		if (err != nil) != (cleanErr != nil) || !bytes.Equal(out, clean) {
			return t
		}
	}
	return taints[0]
}
