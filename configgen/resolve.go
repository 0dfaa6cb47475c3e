package configgen

import (
	"slices"

	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
)

// unit is one configuration rendered once: a class configuration over the
// mounted Connectors of that class, or a built-in generator over all of
// them.
type unit struct {
	name string
	// class and config are set for a class configuration.
	class  *v1alpha1.ConnectorClass
	config *v1alpha1.Configuration
	// gen is set for a built-in generator.
	gen generator
	// connectors are the Connectors the unit renders over, in volume order,
	// without repeats.
	connectors []Connector
	// params are the configuration's params: defaults, then given values.
	params map[string]any
}

// resolve turns the configuration names into units, in the order of the
// names. A name resolves to the configurations of that name in the mounted
// Connectors' classes (one unit per class, in the order the classes first
// appear among the Connectors) and, only when no class has it, to a
// built-in generator. A name nothing provides is skipped, as upstream does,
// and returned in missing; when names were given and none resolves, the
// error names them all. The class configurations' file names are checked.
func resolve(in *Input) (units []*unit, missing []string, err error) {
	done := make(map[string]bool, len(in.Configurations))
	for _, name := range in.Configurations {
		if done[name] {
			continue
		}
		done[name] = true
		found := classUnits(in.Connectors, name)
		if len(found) == 0 {
			gen, ok := builtinGenerator(name)
			if !ok {
				missing = append(missing, name)
				continue
			}
			found = []*unit{{name: name, gen: gen, connectors: unique(in.Connectors)}}
		}
		units = append(units, found...)
	}
	if len(units) == 0 && len(missing) > 0 {
		return nil, missing, &UnknownConfigurationError{Names: missing}
	}
	for _, u := range units {
		if err := u.checkFileNames(); err != nil {
			return nil, missing, err
		}
	}
	return units, missing, nil
}

// Missing returns the names of in.Configurations that neither a mounted
// Connector's class nor a built-in generator provides, in order. Render
// skips them when at least one name is found; the caller reports them.
func Missing(in Input) []string {
	var missing []string
	seen := make(map[string]bool, len(in.Configurations))
	for _, name := range in.Configurations {
		if seen[name] {
			continue
		}
		seen[name] = true
		if _, ok := builtinGenerator(name); ok || len(classUnits(in.Connectors, name)) > 0 {
			continue
		}
		missing = append(missing, name)
	}
	return missing
}

// classUnits finds the configuration name in the Connectors' classes.
func classUnits(cs []Connector, name string) []*unit {
	var units []*unit
	byClass := make(map[string]*unit)
	seenClass := make(map[string]bool)
	for _, c := range unique(cs) {
		if c.Class == nil {
			continue
		}
		class := c.Class.Name
		if seenClass[class] {
			if u := byClass[class]; u != nil {
				u.connectors = append(u.connectors, c)
			}
			continue
		}
		seenClass[class] = true
		i := slices.IndexFunc(c.Class.Spec.Configurations, func(cfg v1alpha1.Configuration) bool { return cfg.Name == name })
		if i < 0 {
			continue
		}
		u := &unit{name: name, class: c.Class, config: &c.Class.Spec.Configurations[i], connectors: []Connector{c}}
		byClass[class] = u
		units = append(units, u)
	}
	return units
}

// checkFileNames rejects a class configuration whose data keys are not safe
// file names.
func (u *unit) checkFileNames() error {
	if u.config == nil {
		return nil
	}
	for _, key := range sortedKeys(u.config.Data) {
		if reason := fileNameProblem(key); reason != "" {
			return &InvalidError{Field: classField(u.class.Name, u.name, key), Reason: reason}
		}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
