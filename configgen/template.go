package configgen

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig/v3"

	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
)

// MaxTemplateOutput bounds what one class template may write, so a
// runaway template cannot fill the node's memory or the volume.
const MaxTemplateOutput = 1 << 20

var errTooLarge = fmt.Errorf("output is larger than %d bytes", MaxTemplateOutput)

// funcMap returns the template functions: sprig's text/template functions
// minus nodeFuncs, with bounds, a urlParse that fails on what is not a
// URL, keys and values in key order, and the escaping functions. Each call
// builds a new map.
func funcMap() template.FuncMap {
	fm := sprig.TxtFuncMap()
	for _, name := range nodeFuncs() {
		delete(fm, name)
	}
	boundedFuncs(fm)
	valueFuncs(fm)
	for name, fn := range escapeFuncs() {
		fm[name] = fn
	}
	return fm
}

// valueFuncs replaces sprig functions whose result the guard cannot
// trust. urlParse panics on a value that is not a URL, and decodes %XX in
// the host, path and fragment, where %0A or %C2%85 would become a line
// break no check of the Connector's fields sees: this urlParse fails on
// both with a *valueError. keys and values range over a map in random order: these
// follow key order, so the same data always render the same bytes.
func valueFuncs(fm template.FuncMap) {
	parse, _ := fm["urlParse"].(func(string) map[string]any)
	fm["urlParse"] = func(s string) (map[string]any, error) {
		if _, err := url.Parse(s); err != nil {
			return nil, &valueError{fn: "urlParse", reason: "is not a URL"}
		}
		parts := parse(s)
		for _, part := range parts {
			if s, ok := part.(string); ok && strings.IndexFunc(s, isControl) >= 0 {
				return nil, &valueError{fn: "urlParse", reason: "holds or decodes to a control character"}
			}
		}
		return parts, nil
	}
	fm["keys"] = func(dicts ...map[string]any) []string {
		var out []string
		for _, d := range dicts {
			out = append(out, sortedKeys(d)...)
		}
		return out
	}
	fm["values"] = func(dict map[string]any) []any {
		out := make([]any, 0, len(dict))
		for _, k := range sortedKeys(dict) {
			out = append(out, dict[k])
		}
		return out
	}
}

// nodeFuncs are the sprig functions templates may not call: they read the
// node (environment, DNS, clock, local time zone) or draw random numbers,
// so the same Input would not always render the same bytes.
func nodeFuncs() []string {
	return []string{
		// Environment and network.
		"env", "expandenv", "getHostByName",
		// Clock and the node's time zone.
		"now", "ago", "date", "date_in_zone", "dateInZone", "htmlDate", "htmlDateInZone",
		"toDate", "mustToDate", "date_modify", "dateModify", "must_date_modify", "mustDateModify", "unixEpoch",
		// Randomness.
		"randAlphaNum", "randAlpha", "randAscii", "randNumeric", "randBytes", "randInt", "uuidv4", "shuffle",
		"genPrivateKey", "genCA", "genCAWithKey", "genSelfSignedCert", "genSelfSignedCertWithKey",
		"genSignedCert", "genSignedCertWithKey", "encryptAES", "bcrypt", "htpasswd",
	}
}

// renderClassUnit renders every file of a class configuration. Each file
// gets its own copy of the data, so one file's template cannot change
// another's.
func (r *renderer) renderClassUnit(u *unit, units []*unit, files map[string][]byte) error {
	taints, err := r.taints(u)
	if err != nil {
		return err
	}
	for _, key := range sortedKeys(u.config.Data) {
		// The default missingkey option, as upstream renders: a missing map
		// key is nil, which tests false and prints "<no value>".
		tpl, err := template.New(key).Option("missingkey=default").Funcs(r.funcs()).Parse(u.config.Data[key])
		if err == nil {
			files[key], err = r.renderFile(tpl, u, units, taints)
		}
		if err != nil {
			return r.fileError(u, key, err)
		}
	}
	return nil
}

// fileError is the error of one class file: the guard's *InvalidError as
// it is, a value a template function refused as an *InvalidError naming
// the file, anything else as a *TemplateError without the token.
func (r *renderer) fileError(u *unit, key string, err error) error {
	var invalid *InvalidError
	if errors.As(err, &invalid) {
		return invalid
	}
	var value *valueError
	if errors.As(err, &value) {
		return &InvalidError{Field: classField(u.class.Name, u.name, key), Reason: value.Error()}
	}
	return &TemplateError{Class: u.class.Name, Configuration: u.name, File: key, Err: r.redact(err)}
}

// execute renders tpl over the unit's template data, with the strings in
// set (if any) scrubbed of control characters first.
func (r *renderer) execute(tpl *template.Template, u *unit, units []*unit, set map[string]bool) ([]byte, error) {
	data, err := r.templateData(u, units)
	if err != nil {
		return nil, err
	}
	if set != nil {
		for k, v := range data {
			if k != "context" {
				data[k] = scrub(v, set)
			}
		}
	}
	out := limitedBuffer{max: MaxTemplateOutput}
	if err := tpl.Execute(&out, data); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// funcs builds the function map on first use.
func (r *renderer) funcs() template.FuncMap {
	if r.funcMap == nil {
		r.funcMap = funcMap()
	}
	return r.funcMap
}

// templateData is the dot of a class template:
//
//	.connector                    the last of .connectors
//	.connectors                   the unit's Connectors: name, namespace,
//	                              metadata, spec, status (with proxyAddress)
//	.context.token                the pod's token
//	.context.proxy.caCert         the proxy CA, PEM
//	.configurations.<param>       params of this configuration (flat, upstream's form)
//	.configurations.<name>        params of every rendered configuration (nested)
//	.connectorclass.name          the class name
//	.connectorclass.proxyAddress  the class's proxy address, else ProxyURL
func (r *renderer) templateData(u *unit, units []*unit) (map[string]any, error) {
	connectors := make([]any, 0, len(u.connectors))
	for _, c := range u.connectors {
		m, err := connectorData(c, c.Class)
		if err != nil {
			return nil, err
		}
		connectors = append(connectors, m)
	}
	configurations := make(map[string]any, len(units)+len(u.params))
	for _, other := range units {
		if _, ok := configurations[other.name]; !ok {
			configurations[other.name] = deepCopy(other.params)
		}
	}
	configurations[u.name] = deepCopy(u.params)
	// The flat form wins over the nested one on a collision: upstream
	// classes read .configurations.<param>, and a migrated class must
	// render as it did there.
	for k, v := range u.params {
		configurations[k] = deepCopy(v)
	}

	return map[string]any{
		"connector":  connectors[len(connectors)-1],
		"connectors": connectors,
		"context": map[string]any{
			"token": r.in.Token,
			"proxy": map[string]any{"caCert": string(r.in.CACertPEM)},
		},
		"configurations": configurations,
		"connectorclass": map[string]any{
			"name":         u.class.Name,
			"proxyAddress": classProxyAddress(u, r.in.ProxyURL.String()),
		},
	}, nil
}

// classProxyAddress is the proxy that serves the unit's Connectors: the
// class's own proxy when it has one, else the built-in proxy at this node's
// public URL. The class status's address is not read here: the caller
// passes it as ClassProxyURL when it names a proxy other than this node's
// (ConnectorClass.OwnProxy), and when it names this node's proxy, which a
// status writer with another public URL may have written, the node's own
// URL is the address that reaches it.
func classProxyAddress(u *unit, fallback string) string {
	for _, c := range u.connectors {
		if c.ClassProxyURL != "" {
			return c.ClassProxyURL
		}
	}
	return fallback
}

// connectorView is what a template sees of a Connector, before the unset
// fields are filled in.
type connectorView struct {
	Metadata connectorMeta            `json:"metadata"`
	Spec     v1alpha1.ConnectorSpec   `json:"spec"`
	Status   v1alpha1.ConnectorStatus `json:"status"`
}

type connectorMeta struct {
	Name        string            `json:"name"`
	Namespace   string            `json:"namespace"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

// connectorData is the map form of a Connector as its JSON: every spec and
// status field is present (empty when unset) so templates can range over
// and test optional fields, spec.params holds the class's param defaults
// the Connector does not set, and status.proxyAddress is the Connector's
// reverse-proxy address.
func connectorData(c Connector, class *v1alpha1.ConnectorClass) (map[string]any, error) {
	o := c.Object
	view := o.Spec
	view.Params = withClassDefaults(o.Spec.Params, class)
	raw, err := json.Marshal(connectorView{
		Metadata: connectorMeta{Name: o.Name, Namespace: o.Namespace, Labels: o.Labels, Annotations: o.Annotations},
		Spec:     view,
		Status:   o.Status,
	})
	if err != nil {
		return nil, fmt.Errorf("encoding connector %s: %w", o.Key(), err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("decoding connector %s: %w", o.Key(), err)
	}
	meta, _ := m["metadata"].(map[string]any)
	spec, _ := m["spec"].(map[string]any)
	status, _ := m["status"].(map[string]any)
	fill(meta, "labels", map[string]any{})
	fill(meta, "annotations", map[string]any{})
	fill(spec, "connectorClassName", "")
	fill(spec, "address", "")
	fill(spec, "addressExtensions", []any{})
	fill(spec, "params", []any{})
	fill(spec, "auth", map[string]any{})
	auth, _ := spec["auth"].(map[string]any)
	fill(auth, "name", "")
	fill(auth, "params", []any{})
	// Unset object fields stay missing, as in upstream's JSON form: a
	// missing key is nil and so is every field under it, where a present
	// nil would fail the template.
	fill(status, "observedGeneration", float64(0))
	fill(status, "conditions", []any{})
	fill(status, "annotations", map[string]any{})
	status["proxyAddress"] = c.ProxyAddress

	m["name"] = o.Name
	m["namespace"] = o.Namespace
	return m, nil
}

// withClassDefaults returns the Connector's params followed by the class's
// spec.params defaults for the names the Connector does not set, in class
// order. The Connector's slice is not modified.
func withClassDefaults(params []v1alpha1.Param, class *v1alpha1.ConnectorClass) []v1alpha1.Param {
	if class == nil {
		return params
	}
	var out []v1alpha1.Param
	for _, p := range class.Spec.Params {
		if p.Default == nil || len(p.Default.Raw) == 0 ||
			slices.ContainsFunc(params, func(q v1alpha1.Param) bool { return q.Name == p.Name }) {
			continue
		}
		if out == nil {
			out = slices.Clone(params)
		}
		out = append(out, v1alpha1.Param{Name: p.Name, Value: *p.Default.DeepCopy()})
	}
	if out == nil {
		return params
	}
	return out
}

// fill sets m[key] when m has no such key.
func fill(m map[string]any, key string, value any) {
	if m == nil {
		return
	}
	if _, ok := m[key]; !ok {
		m[key] = value
	}
}

// redact keeps what an error says about where a template failed and drops
// what it says about values: a template can put the token, transformed in
// any way, into an error (fail, an index key, a bad argument), so the text
// after the failing action is withheld. The token and its usual encodings
// are removed from what is left as well. The cause's type is dropped with
// it: template errors carry no sentinel.
func (r *renderer) redact(err error) error {
	msg := err.Error()
	var execErr template.ExecError
	if errors.As(err, &execErr) {
		msg = withholdDetails(msg)
	}
	for _, s := range []string{
		r.in.Token,
		base64.StdEncoding.EncodeToString([]byte(":" + r.in.Token)),
		base64.StdEncoding.EncodeToString([]byte(r.in.Token)),
	} {
		msg = strings.ReplaceAll(msg, s, "[redacted]")
	}
	return errors.New(msg)
}

// withholdDetails cuts an execution error after its location and action,
// `template: f:3:7: executing "f" at <fail .x>`, keeping the name of a
// failing function call.
func withholdDetails(msg string) string {
	end := strings.Index(msg, ">: ")
	if end < 0 {
		return "template execution failed (details withheld)"
	}
	out := msg[:end+1]
	rest := msg[end+3:]
	if fn, ok := strings.CutPrefix(rest, "error calling "); ok {
		if i := strings.Index(fn, ":"); i > 0 {
			out += ": error calling " + fn[:i]
		}
	}
	return out + ": details withheld, they may hold the token"
}

// limitedBuffer fails a write that would take it past max bytes.
type limitedBuffer struct {
	buf bytes.Buffer
	max int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if b.buf.Len()+len(p) > b.max {
		return 0, errTooLarge
	}
	return b.buf.Write(p)
}

// Bytes returns what was written.
func (b *limitedBuffer) Bytes() []byte { return b.buf.Bytes() }

// FuncMap returns the functions class templates may call: sprig's
// text/template functions minus those that read the node, the clock or
// randomness, with output bounds. Other templates of a ConnectorClass (probe
// paths and headers) use the same set.
func FuncMap() template.FuncMap { return funcMap() }
