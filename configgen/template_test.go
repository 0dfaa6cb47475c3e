package configgen

import (
	"encoding/base32"
	"encoding/base64"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
)

// upstreamGitTemplate is the .gitconfig data of the upstream Git
// ConnectorClass's gitconfig configuration.
const upstreamGitTemplate = `[http]
	extraHeader = Authorization: Basic {{ printf ":%s" .context.token | b64enc }}
{{- range .connectors }}
[url "{{ .status.proxyAddress }}"]
	insteadOf = {{ .spec.address }}
{{- end }}
`

func TestUpstreamGitTemplate(t *testing.T) {
	class := newClass("git", v1alpha1.Configuration{
		Name: "gitconfig",
		Data: map[string]string{".gitconfig": upstreamGitTemplate},
	})
	in := baseInput(t,
		mount(newConnector("team-a", "gitlab", "git", "https://gitlab.example.com/group"), class),
		mount(newConnector("team-b", "github", "git", "https://github.com", withParam("org", "acme")), class),
	)
	in.Configurations = []string{"gitconfig"}

	got := string(render(t, in)[".gitconfig"])

	header := base64.StdEncoding.EncodeToString([]byte(":" + testToken))
	want := "[http]\n" +
		"\textraHeader = Authorization: Basic " + header + "\n" +
		"[url \"http://connectors-proxy.connectors-system.svc/namespaces/team-a/connectors/gitlab\"]\n" +
		"\tinsteadOf = https://gitlab.example.com/group\n" +
		"[url \"http://connectors-proxy.connectors-system.svc/namespaces/team-b/connectors/github\"]\n" +
		"\tinsteadOf = https://github.com\n"
	if got != want {
		t.Fatalf(".gitconfig:\n%s\nwant:\n%s", got, want)
	}
}

// TestTemplateNodeFunctionsRemoved pins that templates cannot read the
// node: each of these fails to render with ErrTemplate.
func TestTemplateNodeFunctionsRemoved(t *testing.T) {
	for _, tpl := range []string{
		`{{ env "HOME" }}`,
		`{{ expandenv "$PATH" }}`,
		`{{ getHostByName "kubernetes.default" }}`,
		`{{ now }}`,
		`{{ randAlphaNum 8 }}`,
		`{{ uuidv4 }}`,
		`{{ genPrivateKey "ecdsa" }}`,
		`{{ "x" | bcrypt }}`,
	} {
		t.Run(tpl, func(t *testing.T) {
			_, err := Render(classInput(t, tpl, nil))
			if !errors.Is(err, ErrTemplate) {
				t.Fatalf("err = %v, want ErrTemplate", err)
			}
		})
	}
}

func TestFuncMapDropsEveryNodeFunction(t *testing.T) {
	fm := funcMap()
	for _, name := range nodeFuncs() {
		if _, ok := fm[name]; ok {
			t.Errorf("func map still has %q", name)
		}
	}
	for _, name := range []string{"b64enc", "toJson", "default", "dig", "hasKey", "trimSuffix", "urlParse", "sha256sum"} {
		if _, ok := fm[name]; !ok {
			t.Errorf("func map lacks %q", name)
		}
	}
}

func TestTemplateVariables(t *testing.T) {
	class := newClass("maven",
		v1alpha1.Configuration{
			Name:   "settings",
			Params: []v1alpha1.ParamSpec{param("mirror", "central"), param("offline", false)},
			Data:   map[string]string{"out": "x"},
		},
		v1alpha1.Configuration{Name: "other", Params: []v1alpha1.ParamSpec{param("level", 3)}, Data: map[string]string{"other.txt": ""}},
	)
	class.Status.Proxy = &v1alpha1.ProxyStatus{HTTPAddress: &v1alpha1.Addressable{URL: "https://maven-proxy.example.com"}}
	plain := newClass("plain", v1alpha1.Configuration{Name: "settings", Data: map[string]string{"out": "x"}})

	tests := []struct {
		name     string
		tpl      string
		class    *v1alpha1.ConnectorClass
		params   map[string]map[string]any
		want     string
		wantCode error
	}{
		{name: "connector name and namespace", tpl: `{{ .connector.namespace }}/{{ .connector.name }} {{ .connector.metadata.name }}`, want: "team-b/nexus nexus"},
		{name: "connector is the last", tpl: `{{ .connector.spec.address }}`, want: "https://nexus.example.com"},
		{name: "connectors in order", tpl: `{{ range .connectors }}{{ .name }},{{ end }}`, want: "central,nexus,"},
		{name: "status proxy address", tpl: `{{ .connector.status.proxyAddress }}`, want: "http://connectors-proxy.connectors-system.svc/namespaces/team-b/connectors/nexus"},
		{name: "spec params as list", tpl: `{{ range .connector.spec.params }}{{ .name }}={{ .value }}{{ end }}`, want: "repo=releases"},
		{name: "unset optional fields are empty", tpl: `{{ if .connectors | first | dig "spec" "params" list }}set{{ else }}empty{{ end }}|{{ len (index .connectors 0).spec.addressExtensions }}|{{ (index .connectors 0).spec.auth.name }}|{{ if .connector.spec.caCertSecretRef }}ref{{ end }}`, want: "empty|0||"},
		{name: "token", tpl: `{{ .context.token | len }}`, want: strconv.Itoa(len(testToken))},
		{name: "ca cert", tpl: `{{ .context.proxy.caCert | trim | splitList "\n" | first }}`, want: "-----BEGIN CERTIFICATE-----"},
		{name: "defaults", tpl: `{{ .configurations.settings.mirror }} {{ .configurations.settings.offline }}`, want: "central false"},
		{name: "given params override defaults", tpl: `{{ .configurations.settings.mirror }}`, params: map[string]map[string]any{"settings": {"mirror": "https://mirror"}}, want: "https://mirror"},
		{name: "other configuration params", tpl: `{{ .configurations.other.level }}`, want: "3"},
		{name: "class status alone does not set the class proxy address", tpl: `{{ .connectorclass.proxyAddress }} {{ .connectorclass.name }}`, want: testProxyURL + " maven"},
		{name: "class proxy address defaults to proxy URL", tpl: `{{ .connectorclass.proxyAddress }}`, class: plain, want: testProxyURL},
		{name: "flat params of this configuration", tpl: `{{ .configurations.mirror }} {{ .configurations.offline }}`, want: "central false"},
		{name: "flat given params", tpl: `{{ .configurations.mirror }}`, params: map[string]map[string]any{"settings": {"mirror": "https://mirror"}}, want: "https://mirror"},
		{name: "flat form is only this configuration's", tpl: `{{ .configurations.level }}`, want: "<no value>"},
		{name: "missing param renders as upstream", tpl: `{{ .configurations.settings.nope }}`, want: "<no value>"},
		{name: "missing connector field renders as upstream", tpl: `{{ .connector.spec.nope }}`, want: "<no value>"},
		{name: "missing key tests false", tpl: `{{ $u := urlParse "http://h.example.com" }}{{ if not $u.port }}80{{ end }}`, want: "80"},
		{name: "field of a missing key renders as upstream", tpl: `{{ .connector.spec.nope.deeper }}|{{ .connector.spec.caCertSecretRef.name }}`, want: "<no value>|<no value>"},
		{name: "field of a string is an error", tpl: `{{ .connector.spec.address.deeper }}`, wantCode: ErrTemplate},
		{name: "wrong function call is an error", tpl: `{{ b64enc 1 2 }}`, wantCode: ErrTemplate},
		{name: "unknown function is an error", tpl: `{{ nope .connector }}`, wantCode: ErrTemplate},
		{name: "hasKey tests a missing param", tpl: `{{ if hasKey .configurations.settings "nope" }}yes{{ else }}no{{ end }}`, want: "no"},
		{name: "parse error", tpl: `{{ .context.token `, wantCode: ErrTemplate},
		{name: "fail", tpl: `{{ fail "no mirror" }}`, wantCode: ErrTemplate},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.class
			if c == nil {
				c = class.DeepCopy()
			} else {
				c = c.DeepCopy()
			}
			c.Spec.Configurations[0].Data = map[string]string{"out": tt.tpl}
			in := baseInput(t,
				mount(newConnector("team-a", "central", c.Name, "https://repo.maven.apache.org/maven2"), c),
				mount(newConnector("team-b", "nexus", c.Name, "https://nexus.example.com", withParam("repo", "releases")), c),
			)
			in.Configurations = []string{"settings"}
			if len(c.Spec.Configurations) > 1 {
				in.Configurations = append(in.Configurations, "other")
			}
			in.Params = tt.params
			files, err := Render(in)
			if tt.wantCode != nil {
				if !errors.Is(err, tt.wantCode) {
					t.Fatalf("err = %v, want %v", err, tt.wantCode)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := string(files["out"]); got != tt.want {
				t.Fatalf("out = %q, want %q", got, tt.want)
			}
		})
	}
}

// classInput is an Input with one Connector whose class has configuration
// "cfg" writing file "out" from tpl.
func classInput(t testing.TB, tpl string, params []v1alpha1.ParamSpec) Input {
	class := newClass("test", v1alpha1.Configuration{Name: "cfg", Params: params, Data: map[string]string{"out": tpl}})
	in := baseInput(t, mount(newConnector("default", "c", "test", "https://example.com"), class))
	in.Configurations = []string{"cfg"}
	return in
}

func TestTemplateErrorNeverCarriesToken(t *testing.T) {
	for _, tpl := range []string{
		`{{ fail .context.token }}`,
		`{{ fail (printf ":%s" .context.token | b64enc) }}`,
		`{{ fail (.context.token | b64enc) }}`,
		`{{ .context.token | int | fail }}`,
		// Regression: transformed tokens got past a redaction of exact strings.
		`{{ fail (substr 1 -1 .context.token) }}`,
		`{{ fail (.context.token | upper) }}`,
		`{{ fail (.context.token | b32enc) }}`,
		`{{ fail (splitList "." .context.token | join " ") }}`,
		`{{ .context.token | trimPrefix "ey" | lower | fail }}`,
		`{{ .context.token | atoi | div 0 }}`,
	} {
		t.Run(tpl, func(t *testing.T) {
			_, err := Render(classInput(t, tpl, nil))
			if !errors.Is(err, ErrTemplate) {
				t.Fatalf("err = %v, want ErrTemplate", err)
			}
			requireNoTokenFragment(t, err.Error())
		})
	}
}

// TestValueErrorNeverCarriesToken pins that a template function refusing
// a value made of the token (urlParse, an escaping function) fails with
// ErrInvalid and does not repeat the value.
func TestValueErrorNeverCarriesToken(t *testing.T) {
	for _, tpl := range []string{
		`{{ urlParse (printf "%%zz%s" .context.token) }}`,
		`{{ urlParse (printf "http://h/%%0A%s" .context.token) }}`,
		`{{ printf "%s\n" .context.token | gitConfigValue }}`,
		`{{ printf "%s\n" .context.token | gitConfigSubsection }}`,
		`{{ printf "%s\x00" .context.token | xmlText }}`,
		`{{ printf "%s\x01" .context.token | xmlAttr }}`,
		`{{ printf " %s" .context.token | iniValue }}`,
		`{{ printf "%s\r" .context.token | npmrcValue }}`,
		`{{ printf "%s\xff" .context.token | yamlString }}`,
		`{{ printf "%s\xff" .context.token | yamlKey }}`,
		`{{ printf "%s\xff" .context.token | tomlString }}`,
		`{{ printf "%s\x00" .context.token | shellQuote }}`,
	} {
		t.Run(tpl, func(t *testing.T) {
			_, err := Render(classInput(t, tpl, nil))
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
			requireNoTokenFragment(t, err.Error())
		})
	}
}

// requireNoTokenFragment fails when msg holds any 8 characters of the token
// or of its base64 and base32 encodings, in any letter case.
func requireNoTokenFragment(t *testing.T, msg string) {
	t.Helper()
	lower := strings.ToLower(msg)
	for _, form := range []string{
		testToken,
		base64.StdEncoding.EncodeToString([]byte(":" + testToken)),
		base64.StdEncoding.EncodeToString([]byte(testToken)),
		base32.StdEncoding.EncodeToString([]byte(testToken)),
	} {
		form = strings.ToLower(form)
		for i := 0; i+8 <= len(form); i++ {
			if strings.Contains(lower, form[i:i+8]) {
				t.Fatalf("error carries part of the token (%q): %s", form[i:i+8], msg)
			}
		}
	}
}

func TestTemplateFunctionsAreBounded(t *testing.T) {
	for _, tpl := range []string{
		`{{ range until 5000000 }}{{ end }}`,
		`{{ range untilStep 0 100000000 3 }}{{ end }}`,
		`{{ seq 1 99999999 }}`,
		`{{ repeat 100000000 "xy" }}`,
		`{{ indent 100000000 "a" }}`,
		`{{ nindent 2000 (repeat 1000 "\n") }}`,
		`{{ range until (int .configurations.cfg.n) }}{{ end }}`,
	} {
		t.Run(tpl, func(t *testing.T) {
			// A pod's configuration.params can feed a size to the template.
			in := classInput(t, tpl, []v1alpha1.ParamSpec{{Name: "n", Type: "string"}})
			in.Params = map[string]map[string]any{"cfg": {"n": "99999999"}}
			_, err := Render(in)
			if !errors.Is(err, ErrTemplate) {
				t.Fatalf("err = %v, want ErrTemplate", err)
			}
		})
	}
	// Ordinary sizes still work.
	files, err := Render(classInput(t, `{{ range until 3 }}{{ . }}{{ end }}{{ seq 3 }}{{ repeat 2 "x" }}{{ indent 2 "a" }}`, nil))
	if err != nil {
		t.Fatal(err)
	}
	if got := string(files["out"]); got != "0121 2 3xx  a" {
		t.Fatalf("out = %q", got)
	}
}

func TestTemplateErrorNamesClassConfigurationAndFile(t *testing.T) {
	_, err := Render(classInput(t, `{{ env "HOME" }}`, nil))
	var te *TemplateError
	if !errors.As(err, &te) {
		t.Fatalf("err = %v, want *TemplateError", err)
	}
	if te.Class != "test" || te.Configuration != "cfg" || te.File != "out" {
		t.Fatalf("TemplateError = %+v", te)
	}
	want := `connectorclass "test" configuration "cfg" file "out": `
	if !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("message %q does not start with %q", err, want)
	}
}

func TestTemplateOutputIsBounded(t *testing.T) {
	_, err := Render(classInput(t, `{{ range until 2000 }}{{ repeat 1024 "x" }}{{ end }}`, nil))
	if !errors.Is(err, ErrTemplate) || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("err = %v, want an ErrTemplate about the size", err)
	}
}

// TestTemplateCannotChangeCallerParams pins that sprig's set on the data
// changes neither Input.Params nor another file's data.
func TestTemplateCannotChangeCallerParams(t *testing.T) {
	class := newClass("test", v1alpha1.Configuration{
		Name:   "cfg",
		Params: []v1alpha1.ParamSpec{param("opts", nil)},
		Data: map[string]string{
			"a": `{{ $_ := set .configurations.cfg.opts "k" "changed" }}{{ .configurations.cfg.opts.k }}`,
			"b": `{{ .configurations.cfg.opts.k }}`,
		},
	})
	in := baseInput(t, mount(newConnector("default", "c", "test", "https://example.com"), class))
	in.Configurations = []string{"cfg"}
	in.Params = map[string]map[string]any{"cfg": {"opts": map[string]any{"k": "given"}}}
	want := map[string]map[string]any{"cfg": {"opts": map[string]any{"k": "given"}}}

	files := render(t, in)

	if string(files["a"]) != "changed" || string(files["b"]) != "given" {
		t.Fatalf("a = %q, b = %q", files["a"], files["b"])
	}
	if !reflect.DeepEqual(in.Params, want) {
		t.Fatalf("Params changed to %v", in.Params)
	}
}

func TestClassParamDefaultsInConnectorParams(t *testing.T) {
	class := newClass("git", v1alpha1.Configuration{Name: "config", Data: map[string]string{
		"out": `{{ range .connector.spec.params }}{{ .name }}={{ .value }};{{ end }}`,
	}})
	class.Spec.Params = []v1alpha1.ParamSpec{param("sslVerify", "true"), param("depth", "1"), param("noDefault", nil)}
	set := newConnector("default", "set", "git", "https://git.example.com", withParam("sslVerify", "false"))
	unset := newConnector("default", "unset", "git", "https://git.example.com")
	for _, tt := range []struct {
		c    *v1alpha1.Connector
		want string
	}{
		{c: set, want: "sslVerify=false;depth=1;"},
		{c: unset, want: "sslVerify=true;depth=1;"},
	} {
		in := baseInput(t, mount(tt.c, class))
		in.Configurations = []string{"config"}
		files := render(t, in)
		if got := string(files["out"]); got != tt.want {
			t.Errorf("%s: out = %q, want %q", tt.c.Name, got, tt.want)
		}
		if tt.c == set && len(tt.c.Spec.Params) != 1 {
			t.Errorf("the Connector's params were modified: %v", tt.c.Spec.Params)
		}
	}
}
