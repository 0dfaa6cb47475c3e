package configgen

import (
	"encoding/xml"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
	yamlv3 "go.yaml.in/yaml/v3"
	"mvdan.cc/sh/v3/syntax"
	"sigs.k8s.io/yaml"

	"github.com/connectors-node/connectors-node/test/testenv"
)

// escapeCorpus are strings every escaping function must write faithfully
// or refuse: the characters that mean something in one of the formats,
// every control character, and look-alikes of other YAML types.
var escapeCorpus = func() []string {
	c := []string{
		"", "plain", "https://git.example.com/group/", " lead", "trail ", "a  b",
		`"`, `'`, `\`, `\\`, `\"`, `a\nb`, `x\`, "`id`", "$(id)", "${HOME}", `\${HOME}`, `\\${HOME}`,
		"${HOME?}", "${NOPE}", "${}", "${a", "$HOME", "#", ";", "=", "a=b", "a;b#c", "[core]", "x]", "]]>",
		"<", ">", "&", "&amp;", "</name>", "<!-- x -->", "<?xml?>", "<![CDATA[x]]>",
		": ", "- ", "a: b", "{", "}", "[", "]", "{a: 1}", "[1, 2]", "%", "%0A", "@", "!tag", "&anchor", "*alias", "|", ">-",
		"yes", "no", "on", "off", "y", "n", "true", "False", "null", "~", "1", "-1", "1.5", "0x1F", "0o7", "1e3", ".inf", ".NaN",
		"2001-12-14", "1:20", "<<", "=", "a:1", "a:", "a.b", "A-b/c:8080",
		"ü", "日本語", "😀", "\u00a0x", "x\u00a0", "\ufeffx", "\u200b",
		`https://git.example/x` + "\n[core]\n\tsshCommand = touch /tmp/pwned",
		`https://git.example/x` + "\r\n[core]\r\n\tsshCommand = touch /tmp/pwned",
		"https://repo.example/</name><mirrorOf>*</mirrorOf><url>http://elsewhere/</url></mirror><mirror><id>x</id><name>",
		"https://registry.example\nstrict-ssl=false\nscript-shell=/tmp/x",
	}
	for r := rune(0); r < 0x20; r++ {
		c = append(c, "a"+string(r)+"b")
	}
	return append(c, "a\x7fb", "a\u0085b", "a\u009fb", "a\u2028b", "a\u2029b", "a\uFFFEb", "a\uFFFFb", "a\xffb")
}()

func hasC0OrDEL(s string) bool { return strings.IndexFunc(s, isC0OrDEL) >= 0 }

// checkEscape runs fn over the corpus: where refuse says a string cannot be
// written, fn must fail with a *valueError that does not repeat it;
// otherwise roundTrip must read back the same string.
func checkEscape(t *testing.T, fn func(string) (string, error), refuse func(string) bool, roundTrip func(t *testing.T, s, escaped string)) {
	t.Helper()
	for _, s := range escapeCorpus {
		got, err := fn(s)
		if refuse(s) {
			var ve *valueError
			if !errors.As(err, &ve) {
				t.Errorf("%q: got %q, %v; want a *valueError", s, got, err)
			} else if len(s) > 3 && strings.Contains(err.Error(), s) {
				t.Errorf("%q: the error repeats the value: %v", s, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", s, err)
			continue
		}
		roundTrip(t, s, got)
	}
}

func TestGitConfigEscaping(t *testing.T) {
	type pair struct{ in, sub, value string }
	var pairs []pair
	checkEscape(t, gitConfigValue, hasC0OrDEL, func(t *testing.T, s, escaped string) {
		sub, err := gitConfigSubsection(s)
		if err != nil {
			t.Fatalf("%q: gitConfigSubsection: %v", s, err)
		}
		pairs = append(pairs, pair{s, sub, escaped})
	})
	checkEscape(t, gitConfigSubsection, hasC0OrDEL, func(*testing.T, string, string) {})
	// One file for the whole corpus, read by git itself.
	var b strings.Builder
	for i, p := range pairs {
		fmt.Fprintf(&b, "[s%d %s]\n\tk = %s\n", i, p.sub, p.value)
	}
	entries, err := gitConfigEntries(t, []byte(b.String()))
	if err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	if len(entries) != len(pairs) {
		t.Fatalf("git read %d entries from %d sections:\n%s", len(entries), len(pairs), b.String())
	}
	for i, p := range pairs {
		if want := fmt.Sprintf("s%d.%s.k", i, p.in); entries[i][0] != want || entries[i][1] != p.in {
			t.Errorf("%q: git read %q = %q", p.in, entries[i][0], entries[i][1])
		}
	}
}

func TestGitConfigValueKeepsPlainValues(t *testing.T) {
	for _, s := range []string{"https://github.com/", "Authorization: Basic OmFiYw==", "a b"} {
		if got, err := gitConfigValue(s); err != nil || got != s {
			t.Errorf("gitConfigValue(%q) = %q, %v; want it unchanged", s, got, err)
		}
	}
}

func TestXMLEscaping(t *testing.T) {
	// XML 1.0 holds tab, LF, CR and everything from U+0020 but U+FFFE and
	// U+FFFF; xmlText and xmlAttr refuse the rest and invalid UTF-8.
	refuse := func(s string) bool {
		return strings.ContainsFunc(s, func(r rune) bool {
			return r < 0x20 && r != '\t' && r != '\n' && r != '\r' || r == 0xFFFE || r == 0xFFFF
		}) || strings.Contains(s, "\xff")
	}
	checkEscape(t, xmlText, refuse, func(t *testing.T, s, escaped string) {
		var v struct {
			Text string `xml:",chardata"`
		}
		if err := xml.Unmarshal([]byte("<r>"+escaped+"</r>"), &v); err != nil || v.Text != s {
			t.Errorf("%q: encoding/xml read %q, %v", s, v.Text, err)
		}
	})
	checkEscape(t, xmlAttr, refuse, func(t *testing.T, s, escaped string) {
		for _, q := range []string{`"`, `'`} {
			var v struct {
				A string `xml:"a,attr"`
			}
			if err := xml.Unmarshal([]byte("<r a="+q+escaped+q+"/>"), &v); err != nil || v.A != s {
				t.Errorf("%q: encoding/xml read %q, %v", s, v.A, err)
			}
		}
	})
}

func TestYAMLEscaping(t *testing.T) {
	refuse := func(s string) bool { return strings.Contains(s, "\xff") }
	readBack := func(t *testing.T, s, doc string) {
		t.Helper()
		var k8s map[string]any
		if err := yaml.UnmarshalStrict([]byte(doc), &k8s); err != nil || len(k8s) != 1 {
			t.Errorf("%q: sigs.k8s.io/yaml read %v, %v from %q", s, k8s, err, doc)
			return
		}
		var v3 map[string]any
		if err := yamlv3.Unmarshal([]byte(doc), &v3); err != nil || len(v3) != 1 {
			t.Errorf("%q: yaml.v3 read %v, %v from %q", s, v3, err, doc)
			return
		}
		for name, m := range map[string]map[string]any{"sigs.k8s.io/yaml": k8s, "yaml.v3": v3} {
			for k, v := range m {
				if k != s && v != s {
					t.Errorf("%q: %s read %q: %#v from %q", s, name, k, v, doc)
				}
			}
		}
	}
	checkEscape(t, yamlString, refuse, func(t *testing.T, s, escaped string) {
		readBack(t, s, "k: "+escaped+"\n")
	})
	checkEscape(t, yamlKey, refuse, func(t *testing.T, s, escaped string) {
		readBack(t, s, escaped+": k\n")
	})
	for _, s := range []string{"github.example.com:8443", "api.github.com", "connectors-proxy.connectors-system.svc"} {
		if got, _ := yamlKey(s); got != s {
			t.Errorf("yamlKey(%q) = %q, want it plain", s, got)
		}
	}
}

func TestTOMLEscaping(t *testing.T) {
	checkEscape(t, tomlString, func(s string) bool { return strings.Contains(s, "\xff") }, func(t *testing.T, s, escaped string) {
		var v map[string]any
		if _, err := toml.Decode("k = "+escaped+"\n", &v); err != nil || len(v) != 1 || v["k"] != s {
			t.Errorf("%q: BurntSushi/toml read %#v, %v from %q", s, v, err, escaped)
		}
	})
}

func TestShellQuote(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		testenv.SkipOrFail(t, "no sh: %v", err)
	}
	var script strings.Builder
	var want []string
	checkEscape(t, shellQuote, func(s string) bool { return hasC0OrDEL(s) || strings.Contains(s, "\xff") }, func(t *testing.T, s, escaped string) {
		line := "X=" + escaped
		f, err := syntax.NewParser(syntax.Variant(syntax.LangPOSIX)).Parse(strings.NewReader(line), "")
		if err != nil || len(f.Stmts) != 1 {
			t.Errorf("%q: mvdan.cc/sh read %d statements, %v from %q", s, len(f.Stmts), err, line)
			return
		}
		fmt.Fprintf(&script, "%s; printf '%%s\\0' \"$X\"\n", line)
		want = append(want, s)
	})
	out, err := exec.CommandContext(t.Context(), sh, "-c", script.String()).Output()
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
	if strings.Join(got, "\x00") != strings.Join(want, "\x00") {
		t.Errorf("sh read back\n%q\nwant\n%q", got, want)
	}
}

// TestINIValue reads every accepted value back with Python's
// configparser, as pip and twine do.
func TestINIValue(t *testing.T) {
	var texts, want []string
	checkEscape(t, iniValue, func(s string) bool {
		return hasC0OrDEL(s) || strings.TrimSpace(s) != s || strings.Trim(s, "\ufeff") != s || strings.Contains(s, "\xff")
	},
		func(_ *testing.T, s, escaped string) {
			texts = append(texts, "[s]\nk = "+escaped+"\n")
			want = append(want, s)
		})
	for i, got := range pythonRead(t, texts) {
		if v, _ := got["s"].(map[string]any); len(got) != 1 || v["k"] != want[i] || len(v) != 1 {
			t.Errorf("%q: configparser read %v from %q", want[i], got, texts[i])
		}
	}
}

// TestNpmrcValue reads every accepted string back as a key and as a value
// with npm's own ini and env-replace code, and with the Go reader.
func TestNpmrcValue(t *testing.T) {
	var texts, want []string
	checkEscape(t, npmrcValue, func(s string) bool {
		return hasC0OrDEL(s) || strings.TrimSpace(s) != s || strings.Trim(s, "\ufeff") != s || strings.Contains(s, "\xff")
	},
		func(t *testing.T, s, escaped string) {
			text := "k=" + escaped + "\n" + escaped + "=v\n"
			got := npmrcValues([]byte(text))
			if len(got) != 2 || fmt.Sprint(got["k"]) != s || got[s] != "v" {
				if s != "k" && !isNpmLiteral(s) {
					t.Errorf("%q: the Go reader read %q from %q", s, got, text)
				}
			}
			texts = append(texts, text)
			want = append(want, s)
		})
	for i, got := range npmRead(t, texts) {
		s := want[i]
		if s == "k" || isNpmLiteral(s) {
			continue
		}
		keys := map[string]string{}
		for _, e := range got {
			keys[fmt.Sprint(e[1])] = fmt.Sprint(e[2])
		}
		if len(got) != 2 || keys["k"] != s || keys[s] != "v" {
			t.Errorf("%q: npm read %q from %q", s, got, texts[i])
		}
	}
}

// isNpmLiteral reports the values npm's ini turns into JSON literals
// whatever their quoting.
func isNpmLiteral(s string) bool { return s == "true" || s == "false" || s == "null" }

func TestNpmrcValueKeepsPlainValues(t *testing.T) {
	for _, s := range []string{"https://registry.npmjs.org/", "//registry.npmjs.org/:_auth", "http://team-a%2Fnpm:eyJ.eyJ.c2ln@proxy.svc/"} {
		if got, err := npmrcValue(s); err != nil || got != s {
			t.Errorf("npmrcValue(%q) = %q, %v; want it unchanged", s, got, err)
		}
	}
}

// TestEscapeFunctionsInTemplates pins the template forms: numbers and
// bools are written as text/template prints them, a missing value is an
// ErrTemplate (the template's fault), a value the format cannot hold is
// an ErrInvalid naming the function.
func TestEscapeFunctionsInTemplates(t *testing.T) {
	tests := []struct {
		tpl, want string
		wantErr   error
	}{
		{tpl: `{{ 30 | iniValue }} {{ true | yamlString }} {{ 1.5 | tomlString }}`, want: `30 "true" "1.5"`},
		{tpl: `{{ .connector.spec.address | xmlText }}`, want: "https://example.com"},
		{tpl: `{{ .nothing | iniValue }}`, wantErr: ErrTemplate},
		{tpl: `{{ .connector.spec | yamlString }}`, wantErr: ErrTemplate},
		{tpl: `{{ " x" | iniValue }}`, wantErr: ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.tpl, func(t *testing.T) {
			files, err := Render(classInput(t, tt.tpl, nil))
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil || string(files["out"]) != tt.want {
				t.Fatalf("out = %q, %v; want %q", files["out"], err, tt.want)
			}
		})
	}
}

// TestTemplateFuncsAreDeterministic pins keys and values in key order and
// urlParse refusing what it would decode into a control character.
func TestTemplateFuncsAreDeterministic(t *testing.T) {
	for range 20 {
		files := render(t, classInput(t, `{{ $d := dict "c" 3 "a" 1 "b" 2 "d" 4 "e" 5 }}{{ keys $d | join "," }} {{ values $d | join "," }}`, nil))
		if got := string(files["out"]); got != "a,b,c,d,e 1,2,3,4,5" {
			t.Fatalf("out = %q", got)
		}
	}
	for _, addr := range []string{"https://h/%0A[core]", "https://h/x#%0D", "https://h%C2%85x/", "%zz"} {
		_, err := Render(classInput(t, `{{ (urlParse "`+addr+`").path }}`, nil))
		var invalid *InvalidError
		if !errors.As(err, &invalid) || !strings.Contains(err.Error(), "urlParse") {
			t.Errorf("urlParse %q: err = %v, want an ErrInvalid from urlParse", addr, err)
		}
	}
}
