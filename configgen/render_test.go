package configgen

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/connectors-node/connectors-node/grammar/publicurl"
	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
)

func TestRenderErrors(t *testing.T) {
	git := newClass("git",
		v1alpha1.Configuration{Name: "gitconfig", Data: map[string]string{".gitconfig": "x"}},
		v1alpha1.Configuration{
			Name:   "settings",
			Params: []v1alpha1.ParamSpec{param("mirror", nil), {Name: "mode", Enum: []string{"fast", "safe"}}},
			Data:   map[string]string{"settings.xml": "{{ .configurations.settings.mirror }}"},
		},
	)
	withData := func(key, tpl string) *v1alpha1.ConnectorClass {
		return newClass("bad", v1alpha1.Configuration{Name: "cfg", Data: map[string]string{"ok": "", key: tpl}})
	}
	required := v1alpha1.ParamSpec{Name: "registry", Annotations: map[string]string{v1alpha1.RequiredParamAnnotation: "true"}}
	npm := newClass("npm-like",
		v1alpha1.Configuration{Name: "npmrc", Params: []v1alpha1.ParamSpec{required}, Data: map[string]string{".npmrc": "{{ .configurations.registry }}"}},
		v1alpha1.Configuration{
			Name:        "open",
			Annotations: map[string]string{v1alpha1.UndeclaredParamsAnnotation: "allow"},
			Params:      []v1alpha1.ParamSpec{required},
			Data:        map[string]string{"open": "{{ .configurations.registry }}"},
		},
	)
	notJSON := jsonRaw("{not json")
	badDefault := newClass("bad", v1alpha1.Configuration{
		Name:   "cfg",
		Params: []v1alpha1.ParamSpec{{Name: "p", Default: &notJSON}},
		Data:   map[string]string{"ok": ""},
	})

	tests := []struct {
		name     string
		class    *v1alpha1.ConnectorClass
		edit     func(*Input)
		want     error  // sentinel, or nil for a caller error
		wantText string // part of the message
	}{
		{name: "unknown configuration", class: git,
			edit:     func(in *Input) { in.Configurations = []string{"maven"} },
			want:     ErrUnknownConfiguration,
			wantText: `configuration "maven" not found in the mounted connectors' classes or the built-in generators`},
		{name: "every configuration unknown", class: git,
			edit:     func(in *Input) { in.Configurations = []string{"maven", "npmrc", "maven"} },
			want:     ErrUnknownConfiguration,
			wantText: `configurations "maven", "npmrc" not found in`},
		{name: "unknown configuration with exclusions", class: git,
			edit:     func(in *Input) { in.Configurations = []string{"maven"}; in.Exclude = []string{"settings.xml", ".env"} },
			want:     ErrUnknownConfiguration,
			wantText: `"maven"`},
		{name: "unknown configuration wins over bad params", class: git,
			edit: func(in *Input) {
				in.Configurations = []string{"maven"}
				in.Params = map[string]map[string]any{"other": {"x": 1}}
			},
			want: ErrUnknownConfiguration},
		{name: "params for a configuration not listed", class: git,
			edit: func(in *Input) {
				in.Configurations = []string{"gitconfig"}
				in.Params = map[string]map[string]any{"settings": {"mirror": "m"}}
			},
			want:     ErrInvalid,
			wantText: `configuration.params: configuration "settings" is not listed in configuration.names`},
		{name: "undeclared param", class: git,
			edit: func(in *Input) {
				in.Configurations = []string{"settings"}
				in.Params = map[string]map[string]any{"settings": {"mirror": "m", "proxy": "p"}}
			},
			want:     ErrInvalid,
			wantText: `configuration.params: configuration "settings" has no param "proxy"`},
		{name: "param on a built-in generator", class: git,
			edit: func(in *Input) {
				in.Configurations = []string{"registry-config"}
				in.Params = map[string]map[string]any{"registry-config": {"x": 1}}
			},
			want:     ErrInvalid,
			wantText: `has no param "x"`},
		{name: "value outside enum", class: git,
			edit: func(in *Input) {
				in.Configurations = []string{"settings"}
				in.Params = map[string]map[string]any{"settings": {"mirror": "m", "mode": "slow"}}
			},
			want:     ErrInvalid,
			wantText: `param "mode" must be one of`},
		{name: "required param missing", class: npm,
			edit:     func(in *Input) { in.Configurations = []string{"npmrc"} },
			want:     ErrInvalid,
			wantText: `configuration.params: configuration "npmrc" of connectorclass "npm-like" needs param "registry"`},
		{name: "required param empty", class: npm,
			edit: func(in *Input) {
				in.Configurations = []string{"npmrc"}
				in.Params = map[string]map[string]any{"npmrc": {"registry": ""}}
			},
			want:     ErrInvalid,
			wantText: `needs param "registry"`},
		{name: "required param null", class: npm,
			edit: func(in *Input) {
				in.Configurations = []string{"npmrc"}
				in.Params = map[string]map[string]any{"npmrc": {"registry": nil}}
			},
			want:     ErrInvalid,
			wantText: `needs param "registry"`},
		{name: "undeclared param where another configuration allows them", class: npm,
			edit: func(in *Input) {
				in.Configurations = []string{"npmrc", "open"}
				in.Params = map[string]map[string]any{"npmrc": {"registry": "r", "strictSSL": "false"}, "open": {"registry": "r"}}
			},
			want:     ErrInvalid,
			wantText: `configuration "npmrc" has no param "strictSSL"`},
		{name: "required param missing where undeclared ones are allowed", class: npm,
			edit: func(in *Input) {
				in.Configurations = []string{"open"}
				in.Params = map[string]map[string]any{"open": {"other": "x"}}
			},
			want:     ErrInvalid,
			wantText: `configuration "open" of connectorclass "npm-like" needs param "registry"`},
		{name: "template calling a function wrongly", class: withData("cfg.txt", `{{ trimSuffix "/" }}`),
			edit:     func(in *Input) { in.Configurations = []string{"cfg"} },
			want:     ErrTemplate,
			wantText: `connectorclass "bad" configuration "cfg" file "cfg.txt"`},
		{name: "data key with slash", class: withData("../etc/passwd", ""),
			edit:     func(in *Input) { in.Configurations = []string{"cfg"} },
			want:     ErrInvalid,
			wantText: `connectorclass "bad" configuration "cfg" data key "../etc/passwd"`},
		{name: "data key ..data", class: withData("..data", ""),
			edit: func(in *Input) { in.Configurations = []string{"cfg"} }, want: ErrInvalid, wantText: `data key "..data"`},
		{name: "data key with leading dash", class: withData("-rf", ""),
			edit: func(in *Input) { in.Configurations = []string{"cfg"} }, want: ErrInvalid, wantText: `data key "-rf"`},
		{name: "data key with NUL", class: withData("a\x00b", ""),
			edit: func(in *Input) { in.Configurations = []string{"cfg"} }, want: ErrInvalid, wantText: `data key "a\x00b"`},
		{name: "empty data key", class: withData("", ""),
			edit: func(in *Input) { in.Configurations = []string{"cfg"} }, want: ErrInvalid, wantText: `data key ""`},
		{name: "template parse error", class: withData("x", "{{ if }}"),
			edit: func(in *Input) { in.Configurations = []string{"cfg"} }, want: ErrTemplate, wantText: `file "x"`},
		{name: "default that is not JSON", class: badDefault,
			edit:     func(in *Input) { in.Configurations = []string{"cfg"} },
			want:     ErrTemplate,
			wantText: `connectorclass "bad" configuration "cfg": param "p" default`},
		{name: "no connectors", class: git, edit: func(in *Input) { in.Connectors = nil }},
		{name: "no token", class: git, edit: func(in *Input) { in.Token = "" }},
		{name: "nil connector object", class: git, edit: func(in *Input) { in.Connectors[0].Object = nil }},
		{name: "no proxy address", class: git, edit: func(in *Input) { in.Connectors[0].ProxyAddress = "" }},
		{name: "no proxy URL", class: git, edit: func(in *Input) { in.ProxyURL = publicurl.URL{} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := baseInput(t, mount(newConnector("default", "c", tt.class.Name, "https://example.com"), tt.class))
			tt.edit(&in)
			files, err := Render(in)
			if err == nil {
				t.Fatal("no error")
			}
			if files != nil {
				t.Fatalf("partial result with %d files", len(files))
			}
			if strings.Contains(err.Error(), testToken) {
				t.Fatalf("error carries the token: %v", err)
			}
			for _, s := range []error{ErrUnknownConfiguration, ErrInvalid, ErrTemplate} {
				if got := errors.Is(err, s); got != errors.Is(tt.want, s) {
					t.Fatalf("errors.Is(%v, %v) = %v", err, s, got)
				}
			}
			if !strings.Contains(err.Error(), tt.wantText) {
				t.Fatalf("err = %q, want it to contain %q", err, tt.wantText)
			}
		})
	}
}

func TestRenderMergeRules(t *testing.T) {
	listNames := `{{ range .connectors }}{{ .namespace }}/{{ .name }} {{ end }}last={{ .connector.name }}`
	git := newClass("git",
		v1alpha1.Configuration{Name: "shared", Data: map[string]string{"shared.txt": "git:" + listNames}},
		v1alpha1.Configuration{Name: "first", Data: map[string]string{"same.txt": "from first", "first.txt": "1"}},
		v1alpha1.Configuration{Name: "second", Data: map[string]string{"same.txt": "from second"}},
		v1alpha1.Configuration{Name: "token", Data: map[string]string{"context.token": "overridden"}},
		v1alpha1.Configuration{Name: "gitconfig", Data: map[string]string{".gitconfig": "class gitconfig"}},
	)
	oci := newClass("oci",
		v1alpha1.Configuration{Name: "shared", Data: map[string]string{"shared.txt": "oci:" + listNames, "oci.txt": listNames}},
	)
	a := mount(newConnector("team-a", "gitlab", "git", "https://gitlab.example.com"), git)
	b := mount(newConnector("team-b", "harbor", "oci", "https://harbor.example.com"), oci)
	c := mount(newConnector("team-b", "github", "git", "https://github.com"), git)

	tests := []struct {
		name    string
		cs      []Connector
		names   []string
		exclude []string
		want    map[string]string // file -> content; "" content means absent
	}{
		{name: "same configuration over several connectors renders once",
			cs: []Connector{a, c}, names: []string{"shared"},
			want: map[string]string{"shared.txt": "git:team-a/gitlab team-b/github last=github"}},
		{name: "same name in two classes renders both, later class wins the shared file",
			cs: []Connector{a, b, c}, names: []string{"shared"},
			want: map[string]string{
				"shared.txt": "oci:team-b/harbor last=harbor",
				"oci.txt":    "team-b/harbor last=harbor",
			}},
		{name: "later configuration wins on equal file names",
			cs: []Connector{a}, names: []string{"first", "second"},
			want: map[string]string{"same.txt": "from second", "first.txt": "1"}},
		{name: "order of names decides",
			cs: []Connector{a}, names: []string{"second", "first"},
			want: map[string]string{"same.txt": "from first"}},
		{name: "class configuration overrides a built-in file",
			cs: []Connector{a}, names: []string{"token"},
			want: map[string]string{FileToken: "overridden"}},
		{name: "class configuration shadows the built-in generator of that name",
			cs: []Connector{a}, names: []string{"gitconfig"},
			want: map[string]string{".gitconfig": "class gitconfig"}},
		{name: "built-in generator when no class has the name",
			cs: []Connector{b}, names: []string{"gitconfig"},
			want: map[string]string{".gitconfig": "[http \"http://connectors-proxy.connectors-system.svc/namespaces/team-b/connectors/harbor/\"]"}},
		{name: "exclusions apply last, to built-ins too",
			cs: []Connector{a}, names: []string{"first", "second"}, exclude: []string{"same.txt", FileEnv, FileCACertLegacy, "no-such-file"},
			want: map[string]string{"same.txt": "", FileEnv: "", FileCACertLegacy: "", "first.txt": "1", FileCACert: "-----BEGIN"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := baseInput(t, tt.cs...)
			in.Configurations = tt.names
			in.Exclude = tt.exclude
			files := render(t, in)
			for name, want := range tt.want {
				got, ok := files[name]
				switch {
				case want == "" && ok:
					t.Errorf("%s written, want it absent", name)
				case want != "" && !strings.HasPrefix(string(got), want):
					t.Errorf("%s = %q, want %q", name, got, want)
				}
			}
		})
	}
}

// TestRenderIsDeterministic pins that equal Inputs give equal bytes, which
// the CSI layer relies on to swap only changed content on republish.
func TestRenderIsDeterministic(t *testing.T) {
	class := newClass("git", v1alpha1.Configuration{Name: "cfg", Data: map[string]string{
		"a": `{{ toJson .connector }}`, "b": `{{ toJson .configurations }}`, "c": `{{ .connector | keys | sortAlpha | join "," }}`,
	}})
	in := baseInput(t,
		mount(newConnector("team-a", "one", "git", "https://a.example.com", withParam("x", map[string]any{"k": 1, "j": []any{1, 2}})), class),
		mount(newConnector("team-b", "two", "git", "https://b.example.com", withExtension("e", "https://e.example.com")), class),
	)
	in.Configurations = []string{"cfg", "gitconfig", "registry-config", "buildkitd"}
	first := render(t, in)
	for range 20 {
		if got := render(t, in); !reflect.DeepEqual(got, first) {
			t.Fatal("two renders of one Input differ")
		}
	}
}

func TestRenderDoesNotModifyInput(t *testing.T) {
	class := newClass("git", v1alpha1.Configuration{
		Name:   "cfg",
		Params: []v1alpha1.ParamSpec{param("opts", map[string]any{"d": 1})},
		Data: map[string]string{
			"a": `{{ $_ := set .connector.spec "address" "changed" }}{{ $_ := set .configurations.cfg.opts "d" 2 }}`,
		},
	})
	obj := newConnector("team-a", "one", "git", "https://a.example.com", withParam("x", "y"))
	in := baseInput(t, mount(obj, class))
	in.Configurations = []string{"cfg", "gitconfig"}
	in.Params = map[string]map[string]any{"cfg": {"opts": map[string]any{"k": "v"}}}
	objBefore, classBefore := obj.DeepCopy(), class.DeepCopy()

	render(t, in)

	if !reflect.DeepEqual(obj, objBefore) || !reflect.DeepEqual(class, classBefore) {
		t.Fatal("Render modified the Connector or its class")
	}
	if !reflect.DeepEqual(in.Params, map[string]map[string]any{"cfg": {"opts": map[string]any{"k": "v"}}}) {
		t.Fatalf("Render modified Params: %v", in.Params)
	}
}

func TestConnectorWithoutClass(t *testing.T) {
	in := baseInput(t, mount(newConnector("a", "c", "git", "https://github.com"), nil))
	in.Configurations = []string{"gitconfig"}
	if _, ok := render(t, in)[FileGitconfig]; !ok {
		t.Fatal("no .gitconfig")
	}
}

// TestPartlyMissingConfigurations: a volume renders when at least one
// listed configuration is found; the others are skipped and reported by
// Missing, and params given for them are ignored.
func TestPartlyMissingConfigurations(t *testing.T) {
	class := newClass("git", v1alpha1.Configuration{Name: "config", Data: map[string]string{"config.txt": "x"}})
	in := baseInput(t, mount(newConnector("default", "git", "git", "https://git.example.com"), class))
	in.Configurations = []string{"maven", "config", "gitconfig", "npmrc"}
	in.Params = map[string]map[string]any{"maven": {"mirror": "m"}}
	files := render(t, in)
	for _, f := range []string{"config.txt", FileGitconfig, FileToken} {
		if _, ok := files[f]; !ok {
			t.Errorf("no %s", f)
		}
	}
	if got := Missing(in); !slices.Equal(got, []string{"maven", "npmrc"}) {
		t.Errorf("Missing = %q", got)
	}
	in.Configurations = []string{"config"}
	if got := Missing(in); got != nil {
		t.Errorf("Missing = %q, want none", got)
	}
}

// TestUndeclaredParamsOptIn pins the opt-in of upstream's JFrog class:
// a configuration annotated with v1alpha1.UndeclaredParamsAnnotation
// "allow" takes params it does not declare, and its template reads them
// as .configurations.<param>; any other value of the annotation, or none,
// refuses them.
func TestUndeclaredParamsOptIn(t *testing.T) {
	for _, tt := range []struct {
		annotation string
		want       error
	}{
		{annotation: "allow"},
		{annotation: "true", want: ErrInvalid},
		{annotation: "", want: ErrInvalid},
	} {
		t.Run("annotation="+tt.annotation, func(t *testing.T) {
			cfg := v1alpha1.Configuration{
				Name: "settings",
				Data: map[string]string{"settings.xml": `{{ if .configurations.mirrorRepository }}{{ .configurations.mirrorRepository | xmlText }}{{ end }}`},
			}
			if tt.annotation != "" {
				cfg.Annotations = map[string]string{v1alpha1.UndeclaredParamsAnnotation: tt.annotation}
			}
			class := newClass("jfrog", cfg)
			in := baseInput(t, mount(newConnector("default", "c", "jfrog", "https://jfrog.example.com"), class))
			in.Configurations = []string{"settings"}
			in.Params = map[string]map[string]any{"settings": {"mirrorRepository": "libs-release"}}
			files, err := Render(in)
			if tt.want != nil {
				if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), `configuration "settings" has no param "mirrorRepository"`) {
					t.Fatalf("err = %v, want %v naming the param", err, tt.want)
				}
				return
			}
			if err != nil || string(files["settings.xml"]) != "libs-release" {
				t.Fatalf("settings.xml = %q, %v; want libs-release", files["settings.xml"], err)
			}
		})
	}
}
