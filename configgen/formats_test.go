package configgen

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/connectors-node/connectors-node/test/testenv"
)

// Readers for the formats whose reader is a program, not a Go package:
// git itself, and Go readers that follow Python's configparser and npm's
// ini package step by step, checked against the real ones
// (TestINIReaderIsConfigparsers, TestNpmrcReaderIsNpms). The other formats
// are read with encoding/xml, encoding/json, sigs.k8s.io/yaml, yaml.v3,
// BurntSushi/toml and mvdan.cc/sh.

// gitConfigEntries lists the entries of a git config file as git reads
// it: git config --file <f> --list --null, key and value each.
func gitConfigEntries(tb testing.TB, content []byte) ([][2]string, error) {
	tb.Helper()
	git, err := exec.LookPath("git")
	if err != nil {
		testenv.SkipOrFail(tb, "no git: %v", err)
	}
	f := filepath.Join(tb.TempDir(), "config")
	if err := os.WriteFile(f, content, 0o600); err != nil {
		tb.Fatal(err)
	}
	cmd := exec.CommandContext(tb.Context(), git, "config", "--file", f, "--list", "--null")
	cmd.Env = []string{"HOME=" + tb.TempDir(), "GIT_CONFIG_NOSYSTEM=1", "PATH=" + os.Getenv("PATH")}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("git config: %w: %s", err, stderr.Bytes())
	}
	var entries [][2]string
	for _, e := range strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00") {
		if e == "" {
			continue
		}
		key, value, _ := strings.Cut(e, "\n")
		entries = append(entries, [2]string{key, value})
	}
	return entries, nil
}

// iniSection is one section of an INI file as configparser reads it.
type iniSection struct {
	name   string
	keys   []string
	values map[string][]string
}

// pySpace is Python's str.isspace.
func pySpace(r rune) bool { return unicode.IsSpace(r) || r >= 0x1c && r <= 0x1f }

// iniSections reads an INI file as Python's RawConfigParser reads it for
// pip and twine (its _read, with the default options): lines end at LF,
// CR or CRLF; lines starting with '#' or ';' are comments; a header is
// "[name]" (up to the last ']' that leaves a name); an option ends at the
// first '=' or ':', its name lower-cased; a line indented deeper than the
// option continues its value; a repeated section or option, a line before
// any header and a line that is none of these are errors.
func iniSections(content string) ([]*iniSection, error) {
	var out []*iniSection
	byName := map[string]*iniSection{}
	var cur *iniSection
	opt := ""
	indent := 0
	lines := strings.Split(strings.ReplaceAll(strings.ReplaceAll(content, "\r\n", "\n"), "\r", "\n"), "\n")
	for n, line := range lines {
		stripped := strings.TrimFunc(line, pySpace)
		if strings.HasPrefix(stripped, "#") || strings.HasPrefix(stripped, ";") {
			continue
		}
		if stripped == "" {
			if cur != nil && opt != "" {
				cur.values[opt] = append(cur.values[opt], "")
			}
			continue
		}
		level := len([]rune(line)) - len([]rune(strings.TrimLeftFunc(line, pySpace)))
		if cur != nil && opt != "" && level > indent {
			cur.values[opt] = append(cur.values[opt], stripped)
			continue
		}
		indent = level
		if name, ok := iniHeader(stripped); ok {
			if byName[name] != nil {
				return nil, fmt.Errorf("line %d: section %q again", n+1, name)
			}
			cur = &iniSection{name: name, values: map[string][]string{}}
			byName[name] = cur
			out = append(out, cur)
			opt = ""
			continue
		}
		if cur == nil {
			return nil, fmt.Errorf("line %d: no section header", n+1)
		}
		i := strings.IndexAny(stripped, "=:")
		name := strings.ToLower(strings.TrimRightFunc(stripped[:max(i, 0)], pySpace))
		if i < 0 || name == "" {
			return nil, fmt.Errorf("line %d: not an option", n+1)
		}
		if _, ok := cur.values[name]; ok {
			return nil, fmt.Errorf("line %d: option %q again", n+1, name)
		}
		opt = name
		cur.keys = append(cur.keys, name)
		cur.values[name] = []string{strings.TrimFunc(stripped[i+1:], pySpace)}
	}
	return out, nil
}

// value is an option's value as configparser joins its lines.
func (s *iniSection) value(key string) string {
	return strings.TrimRightFunc(strings.Join(s.values[key], "\n"), pySpace)
}

// iniHeader matches configparser's \[(?P<header>.+)\] at the start of a
// stripped line: the name runs to the last ']' after at least one
// character.
func iniHeader(line string) (string, bool) {
	if !strings.HasPrefix(line, "[") {
		return "", false
	}
	end := strings.LastIndex(line, "]")
	if end < 2 {
		return "", false
	}
	return line[1:end], true
}

// npmrcEntry is one key of .npmrc as npm reads it.
type npmrcEntry struct {
	section, key string
	value        any
}

// jsSpace is what JavaScript's \s and trim() take for white space.
const jsSpace = `\t\n\v\f\r \x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}\x{feff}`

var (
	npmLines   = regexp.MustCompile(`[\r\n]+`)
	npmSkip    = regexp.MustCompile(`^[` + jsSpace + `]*([;#]|$)`)
	npmLine    = regexp.MustCompile(`^\[([^\]]*)\][` + jsSpace + `]*$|^([^=]+)(=([^\n\r\x{2028}\x{2029}]*))?$`)
	npmTrimSet = func(r rune) bool {
		return strings.ContainsRune("\t\n\v\f\r \u00a0\u1680\u2028\u2029\u202f\u205f\u3000\ufeff", r) || (r >= 0x2000 && r <= 0x200a)
	}
)

// npmrcEntries reads .npmrc as npm does: its ini package's decode (lines
// split at CR and LF, comments, sections, keys up to the first '=',
// values unquoted as JSON or unescaped, "true", "false" and "null" as
// JSON), then ${NAME} in keys and string values expanded from env.
func npmrcEntries(content string, env map[string]string) []npmrcEntry {
	var out []npmrcEntry
	section := ""
	for _, line := range npmLines.Split(content, -1) {
		if line == "" || npmSkip.MatchString(line) {
			continue
		}
		m := npmLine.FindStringSubmatchIndex(line)
		if m == nil {
			continue
		}
		if m[2] >= 0 {
			section = fmt.Sprint(npmUnsafe(line[m[2]:m[3]]))
			continue
		}
		key := fmt.Sprint(npmUnsafe(line[m[4]:m[5]]))
		var value any = true
		if m[6] >= 0 {
			value = npmUnsafe(line[m[8]:m[9]])
			if s, ok := value.(string); ok && (s == "true" || s == "false" || s == "null") {
				_ = json.Unmarshal([]byte(s), &value)
			}
		}
		if s, ok := value.(string); ok {
			value = npmEnvReplace(s, env)
		}
		out = append(out, npmrcEntry{section: section, key: npmEnvReplace(key, env), value: value})
	}
	return out
}

// npmUnsafe is the ini package's unsafe(): a quoted value is JSON-decoded
// (single quotes dropped first), an unquoted one ends at the first ';' or
// '#' not escaped by '\'.
func npmUnsafe(val string) any {
	val = strings.TrimFunc(val, npmTrimSet)
	if len(val) > 0 && (val[0] == '"' && val[len(val)-1] == '"' || val[0] == '\'' && val[len(val)-1] == '\'') {
		if val[0] == '\'' {
			val = strings.TrimSuffix(val[1:], "'")
		}
		var v any
		if json.Unmarshal([]byte(val), &v) == nil {
			return v
		}
		return val
	}
	var b strings.Builder
	esc := false
	for _, c := range val {
		switch {
		case esc:
			if !strings.ContainsRune(`\;#`, c) {
				b.WriteByte('\\')
			}
			b.WriteRune(c)
			esc = false
		case c == ';' || c == '#':
			return strings.TrimFunc(b.String(), npmTrimSet)
		case c == '\\':
			esc = true
		default:
			b.WriteRune(c)
		}
	}
	if esc {
		b.WriteByte('\\')
	}
	return strings.TrimFunc(b.String(), npmTrimSet)
}

// npmEnvReplace is npm's config env-replace: ${NAME} or ${NAME?} after an
// even run of backslashes becomes half of them and the variable (or,
// unset, the reference itself, or nothing with '?'); after an odd run it
// stays, with half the backslashes and one fewer.
func npmEnvReplace(s string, env map[string]string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		if s[i] != '\\' && s[i] != '$' {
			b.WriteByte(s[i])
			i++
			continue
		}
		j := i
		for j < len(s) && s[j] == '\\' {
			j++
		}
		run := j - i
		if !isNpmEnvRef(s[j:]) {
			b.WriteString(s[i:j])
			if j < len(s) {
				b.WriteByte(s[j])
			}
			i = j + 1
			continue
		}
		end := j + strings.IndexByte(s[j:], '}') + 1
		ref := s[j:end]
		name := strings.TrimSuffix(strings.TrimSuffix(strings.TrimPrefix(ref, "${"), "}"), "?")
		if run%2 == 1 {
			b.WriteString(strings.Repeat(`\`, (run-1)/2) + ref)
		} else {
			val, ok := env[name]
			if !ok && !strings.HasSuffix(ref, "?}") {
				val = "${" + name + "}"
			}
			b.WriteString(strings.Repeat(`\`, run/2) + val)
		}
		i = end
	}
	return b.String()
}

// npmrcValues maps the keys of .npmrc (no section) to their values.
func npmrcValues(content []byte) map[string]any {
	out := map[string]any{}
	for _, e := range npmrcEntries(string(content), nil) {
		if e.section == "" {
			out[e.key] = e.value
		}
	}
	return out
}

// runTool runs a real tool's reader over inputs in one process: it writes
// the inputs as a JSON list to the tool's stdin and decodes its JSON
// answer into out. A missing tool skips the test (fails it in CI).
func runTool(t *testing.T, out any, inputs any, name string, args ...string) {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		testenv.SkipOrFail(t, "no %s: %v", name, err)
	}
	in, err := json.Marshal(inputs)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), path, args...)
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	got, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v: %s", name, err, stderr.Bytes())
	}
	if err := json.Unmarshal(got, out); err != nil {
		t.Fatalf("%s answered %q: %v", name, got, err)
	}
}

// npmPackageDir finds npm's own node_modules, where its ini package and
// @npmcli/config live.
func npmPackageDir(t *testing.T) string {
	t.Helper()
	npm, err := exec.LookPath("npm")
	if err != nil {
		testenv.SkipOrFail(t, "no npm: %v", err)
	}
	out, err := exec.CommandContext(t.Context(), npm, "root", "-g").Output()
	if err != nil {
		testenv.SkipOrFail(t, "npm root -g: %v", err)
	}
	dir := filepath.Join(strings.TrimSpace(string(out)), "npm", "node_modules")
	for _, p := range []string{"ini", "@npmcli/config/lib/env-replace.js"} {
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			testenv.SkipOrFail(t, "npm's %s: %v", p, err)
		}
	}
	return dir
}

// npmReadScript reads each input as npm reads .npmrc: its ini package's
// decode, then env-replace on keys and string values (HOME=/home/npm), and
// answers [[section, key, value], ...] per input.
const npmReadScript = `
const dir = process.argv[1];
const ini = require(dir + "/ini");
const envReplace = require(dir + "/@npmcli/config/lib/env-replace.js");
const env = {HOME: "/home/npm"};
let input = "";
process.stdin.on("data", d => input += d);
process.stdin.on("end", () => {
  const out = JSON.parse(input).map(text => {
    const entries = [];
    const walk = (obj, section) => {
      for (const [k, v] of Object.entries(obj)) {
        if (v !== null && typeof v === "object" && !Array.isArray(v)) { walk(v, section ? section + "." + k : k); continue; }
        entries.push([section, envReplace(k, env), typeof v === "string" ? envReplace(v, env) : v]);
      }
    };
    walk(ini.decode(text), "");
    return entries;
  });
  process.stdout.write(JSON.stringify(out));
});
`

// npmRead reads every text with npm's own code (see npmReadScript).
func npmRead(t *testing.T, texts []string) [][][3]any {
	t.Helper()
	var out [][][3]any
	runTool(t, &out, texts, "node", "-e", npmReadScript, npmPackageDir(t))
	return out
}

// pythonReadScript reads each input with Python's RawConfigParser, as pip
// and twine read their files (universal newlines), and answers
// {section: {key: value}} per input, or {"error": <exception>}.
const pythonReadScript = `
import configparser, io, json, sys
out = []
for text in json.load(sys.stdin):
    p = configparser.RawConfigParser()
    try:
        p.read_file(io.StringIO(text, newline=None))
        out.append({s: dict(p.items(s)) for s in p.sections()})
    except configparser.Error as e:
        out.append({"error": type(e).__name__})
json.dump(out, sys.stdout)
`

// TestINIReaderIsConfigparsers checks the Go INI reader against Python's
// configparser on the escaping corpus as values and as section names.
func TestINIReaderIsConfigparsers(t *testing.T) {
	var texts []string
	for _, s := range escapeCorpus {
		if utf8.ValidString(s) {
			texts = append(texts, "[s]\nk = "+s+"\nj = 1\n", "["+s+"]\nk = v\n", "[s]\n"+s+" = v\n")
		}
	}
	got := pythonRead(t, texts)
	for i, text := range texts {
		want := map[string]any{}
		sections, err := iniSections(text)
		if err != nil {
			if _, ok := got[i]["error"]; !ok {
				t.Errorf("%q: the Go reader fails (%v), configparser reads %v", text, err, got[i])
			}
			continue
		}
		for _, sec := range sections {
			values := map[string]any{}
			for _, k := range sec.keys {
				values[k] = sec.value(k)
			}
			want[sec.name] = values
		}
		if fmt.Sprint(got[i]) != fmt.Sprint(want) {
			t.Errorf("%q: configparser reads %v, the Go reader %v", text, got[i], want)
		}
	}
}

// pythonRead reads every text with Python's configparser.
func pythonRead(t *testing.T, texts []string) []map[string]any {
	t.Helper()
	var out []map[string]any
	runTool(t, &out, texts, "python3", "-c", pythonReadScript)
	return out
}

// TestNpmrcReaderIsNpms checks the Go .npmrc reader against npm's own ini
// and env-replace code on the escaping corpus, as npm's reader folds it:
// the last of repeated keys wins.
func TestNpmrcReaderIsNpms(t *testing.T) {
	var texts []string
	for _, s := range escapeCorpus {
		texts = append(texts, "k="+s+"\n"+s+"=v\n")
		if q, err := npmrcValue(s); err == nil {
			texts = append(texts, "k="+q+"\n"+q+"=v\n")
		}
	}
	got := npmRead(t, texts)
	env := map[string]string{"HOME": "/home/npm"}
	for i, text := range texts {
		last := map[[2]string]any{}
		for _, e := range npmrcEntries(text, env) {
			last[[2]string{e.section, e.key}] = e.value
		}
		var want, have []string
		for k, v := range last {
			want = append(want, fmt.Sprintf("%q %q %v", k[0], k[1], v))
		}
		for _, e := range got[i] {
			have = append(have, fmt.Sprintf("%q %q %v", e[0], e[1], e[2]))
		}
		slices.Sort(want)
		slices.Sort(have)
		if !slices.Equal(have, want) {
			t.Errorf("%q: npm reads\n%q\nthe Go reader\n%q", text, have, want)
		}
	}
}
