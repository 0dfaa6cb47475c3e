package policy

import "sort"

// Class is the compiled policies of one ConnectorClass generation.
type Class struct {
	name       string
	generators map[string]*Generator // by auth type name
	extractor  *Extractor
	errs       map[string]*Error // by rule
}

// Name is the class name.
func (c *Class) Name() string { return c.name }

// Generator returns the generator of an auth type: nil and no error when
// the auth type has none, an *Error when it does not compile.
func (c *Class) Generator(authName string) (*Generator, error) {
	if err, ok := c.errs[GeneratorRule(authName)]; ok {
		return nil, err
	}
	return c.generators[authName], nil
}

// Extractor returns the class's token extractor: nil and no error when it
// has none, an *Error when it does not compile.
func (c *Class) Extractor() (*Extractor, error) {
	if err, ok := c.errs[ExtractorRule]; ok {
		return nil, err
	}
	return c.extractor, nil
}

// Errors lists the rules that do not compile, by rule.
func (c *Class) Errors() []*Error {
	out := make([]*Error, 0, len(c.errs))
	for _, err := range c.errs {
		out = append(out, err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Rule < out[j].Rule })
	return out
}
