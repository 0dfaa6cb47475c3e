package configgen

import "text/template"

// Render returns the volume's files, file name to content. It never
// returns a partial result: on error the map is nil.
//
// The files are, in the order later ones overwrite earlier ones of the same
// name: the built-in files; then each configuration in the order of
// in.Configurations, a class configuration rendered once per class over
// that class's mounted Connectors, a built-in generator over all of them.
// Finally every name in in.Exclude is removed, built-in or not.
//
// A configuration name nothing provides is skipped (see Missing), unless no
// name is found at all: then the error is ErrUnknownConfiguration naming
// every one.
//
// Checks come in this order: the Input itself, configuration names
// (ErrUnknownConfiguration), class file names and configuration.params
// (ErrInvalid), then class templates (ErrTemplate, or ErrInvalid for a
// control character from a Connector or configuration.params that reaches
// a file, and for a value a template function cannot write).
func Render(in Input) (map[string][]byte, error) {
	proxy, err := checkInput(&in)
	if err != nil {
		return nil, err
	}
	units, missing, err := resolve(&in)
	if err != nil {
		return nil, err
	}
	if err := applyParams(units, in.Params, missing); err != nil {
		return nil, err
	}

	r := renderer{in: &in}
	files := make(map[string][]byte, 16)
	if err := addBuiltins(&in, proxy, files); err != nil {
		return nil, err
	}
	for _, u := range units {
		if err := r.renderUnit(u, units, files); err != nil {
			return nil, err
		}
	}
	for _, name := range in.Exclude {
		delete(files, name)
	}
	return files, nil
}

// renderer holds what one Render call shares between units.
type renderer struct {
	in      *Input
	funcMap template.FuncMap
}

// renderUnit renders one unit into files.
func (r *renderer) renderUnit(u *unit, units []*unit, files map[string][]byte) error {
	if u.config != nil {
		return r.renderClassUnit(u, units, files)
	}
	content, err := u.gen.render(u.connectors, r.in.Token)
	if err != nil {
		return err
	}
	files[u.gen.file] = content
	return nil
}
