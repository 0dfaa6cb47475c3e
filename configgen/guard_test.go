package configgen

import (
	"errors"
	"strings"
	"testing"

	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
)

// guardClass is a class as others may write it: every file prints a
// value as it is, with no escaping.
func guardClass(tpl string, params ...v1alpha1.ParamSpec) *v1alpha1.ConnectorClass {
	return newClass("raw", v1alpha1.Configuration{Name: "cfg", Params: params, Data: map[string]string{"out": tpl}})
}

func withAnnotation(k, v string) func(*v1alpha1.Connector) {
	return func(c *v1alpha1.Connector) {
		if c.Annotations == nil {
			c.Annotations = map[string]string{}
		}
		c.Annotations[k] = v
	}
}

func withCondition(message string) func(*v1alpha1.Connector) {
	return func(c *v1alpha1.Connector) {
		c.Status.Conditions = append(c.Status.Conditions, v1alpha1.Condition{Type: "Ready", Status: "False", Message: message})
	}
}

// lastApplied is kubectl's last-applied-configuration: JSON and a line
// break. Every Connector applied with kubectl carries one.
var lastApplied = withAnnotation("kubectl.kubernetes.io/last-applied-configuration",
	`{"apiVersion":"connectors.alauda.io/v1alpha1","kind":"Connector"}`+"\n")

// TestGuardRefusesControlCharactersInFiles pins the structural guard: a
// class that prints a Connector's or configuration.params' value as it is
// cannot write a control character from it; the volume fails with
// ErrInvalid naming the Connector and the field, never the value.
func TestGuardRefusesControlCharactersInFiles(t *testing.T) {
	const hostile = "https://x.example/\n[core]\n\tsshCommand = touch /tmp/pwned"
	tests := []struct {
		name   string
		tpl    string
		opts   []func(*v1alpha1.Connector)
		params map[string]any
		field  string
	}{
		{name: "address LF", tpl: `insteadOf = {{ .connector.spec.address }}`, opts: []func(*v1alpha1.Connector){func(c *v1alpha1.Connector) { c.Spec.Address = hostile }}, field: `connector "team-a/c" spec.address`},
		{name: "address in a range", tpl: `{{ range .connectors }}{{ .spec.address }}{{ end }}`, opts: []func(*v1alpha1.Connector){func(c *v1alpha1.Connector) { c.Spec.Address = "https://x\r\n[core]" }}, field: `connector "team-a/c" spec.address`},
		{name: "address transformed", tpl: `{{ .connector.spec.address | upper | trimSuffix "/" }}`, opts: []func(*v1alpha1.Connector){func(c *v1alpha1.Connector) { c.Spec.Address = "https://x\x00" }}, field: `connector "team-a/c" spec.address`},
		{name: "address only tested", tpl: `{{ if contains "\n" .connector.spec.address }}strict-ssl=false{{ end }}`, opts: []func(*v1alpha1.Connector){func(c *v1alpha1.Connector) { c.Spec.Address = "https://x\n" }}, field: `connector "team-a/c" spec.address`},
		{name: "DEL", tpl: `{{ .connector.spec.address }}`, opts: []func(*v1alpha1.Connector){func(c *v1alpha1.Connector) { c.Spec.Address = "https://x\x7f" }}, field: `connector "team-a/c" spec.address`},
		{name: "C1 NEL", tpl: `{{ .connector.spec.address }}`, opts: []func(*v1alpha1.Connector){func(c *v1alpha1.Connector) { c.Spec.Address = "https://x\u0085y" }}, field: `connector "team-a/c" spec.address`},
		{name: "line separator", tpl: `{{ .connector.spec.address }}`, opts: []func(*v1alpha1.Connector){func(c *v1alpha1.Connector) { c.Spec.Address = "https://x\u2028y" }}, field: `connector "team-a/c" spec.address`},
		{name: "paragraph separator", tpl: `{{ .connector.spec.address }}`, opts: []func(*v1alpha1.Connector){func(c *v1alpha1.Connector) { c.Spec.Address = "https://x\u2029y" }}, field: `connector "team-a/c" spec.address`},
		{name: "tab", tpl: `{{ .connector.spec.address }}`, opts: []func(*v1alpha1.Connector){func(c *v1alpha1.Connector) { c.Spec.Address = "https://x\ty" }}, field: `connector "team-a/c" spec.address`},
		{name: "param", tpl: `{{ range .connector.spec.params }}{{ .value }}{{ end }}`, opts: []func(*v1alpha1.Connector){withParam("foo", "a\nb")}, field: `connector "team-a/c" spec.params[foo]`},
		{name: "param object", tpl: `{{ range .connector.spec.params }}{{ .value.x }}{{ end }}`, opts: []func(*v1alpha1.Connector){withParam("foo", map[string]any{"x": "a\nb"})}, field: `connector "team-a/c" spec.params[foo].x`},
		{name: "param object key", tpl: `{{ range .connector.spec.params }}{{ range $k, $v := .value }}{{ $k }}{{ end }}{{ end }}`, opts: []func(*v1alpha1.Connector){withParam("foo", map[string]any{"a\nb": 1})}, field: `connector "team-a/c" spec.params[foo] (a key)`},
		{name: "address extension", tpl: `{{ range .connector.spec.addressExtensions }}{{ .value }}{{ end }}`, opts: []func(*v1alpha1.Connector){withExtension("api", "https://api\n")}, field: `connector "team-a/c" spec.addressExtensions[api]`},
		{name: "annotation", tpl: `{{ index .connector.metadata.annotations "example.com/note" }}`, opts: []func(*v1alpha1.Connector){withAnnotation("example.com/note", "a\nb")}, field: `connector "team-a/c" metadata.annotations[example.com/note]`},
		{name: "condition message", tpl: `{{ range .connector.status.conditions }}{{ .message }}{{ end }}`, opts: []func(*v1alpha1.Connector){withCondition("failed:\nx")}, field: `connector "team-a/c" status.conditions[0].message`},
		{name: "status proxy url", tpl: `{{ .connector.status.proxy.httpAddress.url }}`, opts: []func(*v1alpha1.Connector){func(c *v1alpha1.Connector) {
			c.Status.Proxy = &v1alpha1.ProxyStatus{HTTPAddress: &v1alpha1.Addressable{URL: "http://p\n"}}
		}}, field: `connector "team-a/c" status.proxy.httpAddress.url`},
		{name: "configuration param", tpl: `x = {{ .configurations.x }}`, params: map[string]any{"x": "1\ny = 2"}, field: `configuration.params.cfg.x`},
		{name: "configuration param nested", tpl: `x = {{ .configurations.cfg.x.settings.y }}`, params: map[string]any{"x": map[string]any{"settings": map[string]any{"y": "1\n"}}}, field: `configuration.params.cfg.x.settings.y`},
		{
			// The last-applied annotation also holds a line break, but the
			// file does not use it: the error names the value it does use.
			name: "the used value is named", tpl: `{{ .connector.spec.address }}`,
			opts:  []func(*v1alpha1.Connector){lastApplied, withCondition("a\nb"), func(c *v1alpha1.Connector) { c.Spec.Address = hostile }},
			field: `connector "team-a/c" spec.address`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			class := guardClass(tt.tpl, param("x", nil))
			c := mount(newConnector("team-a", "c", "raw", "https://example.com", tt.opts...), class)
			c.ProxyAddress = testProxyURL + "/namespaces/team-a/connectors/c"
			in := baseInput(t, c)
			in.Configurations = []string{"cfg"}
			if tt.params != nil {
				in.Params = map[string]map[string]any{"cfg": tt.params}
			}
			files, err := Render(in)
			var invalid *InvalidError
			if !errors.As(err, &invalid) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, files = %q; want an ErrInvalid", err, files["out"])
			}
			if invalid.Field != tt.field || !strings.Contains(invalid.Reason, "control character") {
				t.Errorf("err = %v, want field %s and the control character", err, tt.field)
			}
			for _, part := range []string{"[core]", "sshCommand", "y = 2", "failed:", "example.com/\n"} {
				if strings.Contains(err.Error(), part) {
					t.Errorf("err = %v repeats the value", err)
				}
			}
			requireNoTokenFragment(t, err.Error())
		})
	}
}

// TestGuardPassesValuesNoFileUses pins that control characters a file
// does not use change nothing: kubectl's last-applied-configuration, a
// multi-line condition message, a multi-line param the class ignores.
func TestGuardPassesValuesNoFileUses(t *testing.T) {
	opts := []func(*v1alpha1.Connector){
		lastApplied, withCondition("probe failed:\nconnection refused"), withParam("notes", "line 1\nline 2"),
	}
	for _, s := range catalogScenarios(t) {
		t.Run(s.file, func(t *testing.T) {
			class := s.class
			plain := newConnector("team-a", "c", class.Name, "https://tool.example.com")
			noisy := newConnector("team-a", "c", class.Name, "https://tool.example.com", opts...)
			var names []string
			for _, cfg := range class.Spec.Configurations {
				names = append(names, cfg.Name)
			}
			in := baseInput(t, mount(plain, class))
			in.Configurations = append(names, GeneratorGitconfig, GeneratorRegistryConfig, GeneratorBuildkitd)
			in.Params = s.input(t, nil, "").Params
			want := render(t, in)
			in.Connectors = []Connector{mount(noisy, class)}
			got := render(t, in)
			for name, content := range want {
				if string(got[name]) != string(content) {
					t.Errorf("%s changed:\n%s\nwant:\n%s", name, got[name], content)
				}
			}
		})
	}
}

// TestGuardChecksProxyAddressesUpFront pins that the proxy addresses every
// volume's files are made of are checked before anything renders.
func TestGuardChecksProxyAddressesUpFront(t *testing.T) {
	for _, tt := range []struct {
		name, field string
		edit        func(*Connector)
	}{
		{name: "proxy address", field: `connector "team-a/c" proxy address`, edit: func(c *Connector) { c.ProxyAddress += "/\u2028" }},
		{name: "class proxy", field: `connector "team-a/c" class proxy address`, edit: func(c *Connector) { c.ClassProxyURL = "http://p\n" }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := mount(newConnector("team-a", "c", "git", "https://github.com"), nil)
			tt.edit(&c)
			_, err := Render(baseInput(t, c))
			var invalid *InvalidError
			if !errors.As(err, &invalid) || invalid.Field != tt.field {
				t.Fatalf("err = %v, want an ErrInvalid for %s", err, tt.field)
			}
		})
	}
}

// TestBuiltinGitconfigRefusesEveryControlCharacter pins the same rule in
// the built-in gitconfig generator, which reads spec.address itself.
func TestBuiltinGitconfigRefusesEveryControlCharacter(t *testing.T) {
	for _, r := range []string{"\n", "\r", "\x00", "\t", "\x7f", "\u0085", "\u2028", "\u2029"} {
		in := baseInput(t, mount(newConnector("team-a", "c", "git", "https://x.example/"+r+"[core]"), nil))
		in.Configurations = []string{GeneratorGitconfig}
		_, err := Render(in)
		var invalid *InvalidError
		if !errors.As(err, &invalid) || invalid.Field != `connector "team-a/c" spec.address` {
			t.Errorf("%q: err = %v, want an ErrInvalid for spec.address", r, err)
		}
	}
}

func TestWalkStringsPaths(t *testing.T) {
	c := newConnector("team-a", "c", "raw", "a", withParam("foo", map[string]any{"x": []any{"y"}}),
		withExtension("api", "b"), withAnnotation("example.com/note", "n"), withCondition("m"))
	m, err := connectorData(Connector{Object: c, ProxyAddress: "p"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	walkStrings(m, "", func(path, s string) { got[path] = s })
	for path, want := range map[string]string{
		"spec.address":                           "a",
		"spec.params[foo].x[0]":                  "y",
		"spec.addressExtensions[api]":            "b",
		"metadata.annotations[example.com/note]": "n",
		"status.conditions[0].message":           "m",
		"status.proxyAddress":                    "p",
	} {
		if got[path] != want {
			t.Errorf("%s = %q, want %q (all: %q)", path, got[path], want, got)
		}
	}
}
