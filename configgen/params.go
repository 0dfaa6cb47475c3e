package configgen

import (
	"encoding/json"
	"fmt"
	"slices"

	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
)

// applyParams checks the given configuration.params against the units and
// sets each unit's params: the defaults its configuration declares, then
// the given values. A configuration that is not being rendered, a param
// the configuration does not declare (unless it allows undeclared params,
// v1alpha1.UndeclaredParamsAnnotation), a value outside a declared enum and
// a required param (v1alpha1.RequiredParamAnnotation) without a value are
// *InvalidError for configuration.params; a default that is not JSON is a
// *TemplateError. Params for a listed configuration that nothing provides
// (missing) are ignored with it.
func applyParams(units []*unit, given map[string]map[string]any, missing []string) error {
	byName := make(map[string][]*unit, len(units))
	for _, u := range units {
		byName[u.name] = append(byName[u.name], u)
	}
	for _, name := range sortedKeys(given) {
		us := byName[name]
		if len(us) == 0 && slices.Contains(missing, name) {
			continue
		}
		if len(us) == 0 {
			return &InvalidError{Field: paramsField, Reason: fmt.Sprintf("configuration %q is not listed in %s", name, namesField)}
		}
		for _, key := range sortedKeys(given[name]) {
			spec := declaredParam(us, key)
			if spec == nil && allowsUndeclared(us) {
				continue
			}
			if spec == nil {
				return &InvalidError{Field: paramsField, Reason: fmt.Sprintf("configuration %q has no param %q", name, key)}
			}
			if err := checkEnum(name, spec, given[name][key]); err != nil {
				return err
			}
		}
	}
	for _, u := range units {
		params, err := u.defaults()
		if err != nil {
			return err
		}
		for k, v := range given[u.name] {
			params[k] = v
		}
		if err := checkRequired(u, params); err != nil {
			return err
		}
		u.params = params
	}
	return nil
}

// allowsUndeclared reports whether a unit of the configuration takes
// params it does not declare.
func allowsUndeclared(us []*unit) bool {
	for _, u := range us {
		if u.config != nil && u.config.Annotations[v1alpha1.UndeclaredParamsAnnotation] == "allow" {
			return true
		}
	}
	return false
}

// checkRequired fails when a param the unit's configuration marks required
// has no value, or null, or "".
func checkRequired(u *unit, params map[string]any) error {
	if u.config == nil {
		return nil
	}
	for _, p := range u.config.Params {
		if p.Annotations[v1alpha1.RequiredParamAnnotation] != "true" {
			continue
		}
		if v, ok := params[p.Name]; !ok || v == nil || v == "" {
			return &InvalidError{Field: paramsField, Reason: fmt.Sprintf(
				"configuration %q of connectorclass %q needs param %q: give it as %s {%q: {%q: \"...\"}}",
				u.name, u.class.Name, p.Name, paramsField, u.name, p.Name)}
		}
	}
	return nil
}

// declaredParam finds the first declaration of a param among the units of
// one configuration name.
func declaredParam(us []*unit, key string) *v1alpha1.ParamSpec {
	for _, u := range us {
		if u.config == nil {
			continue
		}
		if i := slices.IndexFunc(u.config.Params, func(p v1alpha1.ParamSpec) bool { return p.Name == key }); i >= 0 {
			return &u.config.Params[i]
		}
	}
	return nil
}

func checkEnum(configuration string, spec *v1alpha1.ParamSpec, value any) error {
	if len(spec.Enum) == 0 {
		return nil
	}
	if s, ok := value.(string); ok && slices.Contains(spec.Enum, s) {
		return nil
	}
	return &InvalidError{
		Field:  paramsField,
		Reason: fmt.Sprintf("configuration %q param %q must be one of %q", configuration, spec.Name, spec.Enum),
	}
}

// defaults decodes the defaults of the unit's configuration params.
func (u *unit) defaults() (map[string]any, error) {
	params := make(map[string]any)
	if u.config == nil {
		return params, nil
	}
	for _, p := range u.config.Params {
		if p.Default == nil || len(p.Default.Raw) == 0 {
			continue
		}
		var v any
		if err := json.Unmarshal(p.Default.Raw, &v); err != nil {
			return nil, &TemplateError{Class: u.class.Name, Configuration: u.name, Err: fmt.Errorf("param %q default: %w", p.Name, err)}
		}
		params[p.Name] = v
	}
	return params, nil
}

// paramString returns a JSON string value, or "" when raw is not a string.
func paramString(raw []byte) string {
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return ""
	}
	return s
}

// deepCopy copies the maps and slices of a decoded JSON value, so a
// template that changes its data (sprig's set, unset, append on dicts)
// never changes the caller's values or another file's data.
func deepCopy(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[k] = deepCopy(e)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = deepCopy(e)
		}
		return out
	default:
		return v
	}
}
