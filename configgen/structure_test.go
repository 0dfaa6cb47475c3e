package configgen

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/BurntSushi/toml"
	yamlv3 "go.yaml.in/yaml/v3"
	"mvdan.cc/sh/v3/syntax"
	"sigs.k8s.io/yaml"

	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
)

// The structure property: whatever a user puts into a Connector or
// configuration.params, every file of every catalog class and every
// built-in file keeps the structure it has for benign values (the same
// sections, keys, elements and value types, read by the format's real
// parser), or the volume is refused with ErrInvalid.

// structure is the shape of a rendered file as its format's reader sees
// it: the paths of its sections, keys or elements, with the type of each
// value but not the value, in file order. Keys made from data (a host as
// a YAML key, a proxy URL as a git subsection) are written as "*". A file
// that does not parse is an error.
func structure(tb testing.TB, name string, content []byte) ([]string, error) {
	switch name {
	case FileGitconfig:
		return gitStructure(tb, content)
	case "settings.xml":
		return xmlStructure(content)
	case ".npmrc":
		return npmrcStructure(content)
	case "hosts.yml":
		return yamlStructure(content, "")
	case "config.yml":
		return yamlStructure(content, "hosts")
	case ".yarnrc.yml", "kubeconfig", "config.yaml":
		return yamlStructure(content, "-")
	case "sonar-project.properties":
		return propertiesStructure(content)
	case "pip.conf", ".pypirc":
		return iniStructure(content)
	case "registries.conf":
		return tomlStructure(content, "-")
	case FileBuildkitd:
		return tomlStructure(content, "registry")
	case FileRegistryConfig:
		return jsonStructure(content)
	case FileEnv:
		return envStructure(content)
	case FileToken, FileHTTPProxy, FileHTTPSProxy, FileProxyAddress, "HARBOR_ENCRYPTION_KEY":
		if bytes.ContainsAny(content, "\r\n") {
			return []string{"lines"}, nil
		}
		return []string{"one line"}, nil
	case FileCACert, FileContextCA, FileCACertLegacy, FileCABundle:
		return []string{string(content)}, nil
	}
	return nil, fmt.Errorf("no reader for %s", name)
}

// gitStructure is section.*.name for every entry with a subsection (the
// subsection is a proxy URL), section.name otherwise.
func gitStructure(tb testing.TB, content []byte) ([]string, error) {
	entries, err := gitConfigEntries(tb, content)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		first, last := strings.Index(e[0], "."), strings.LastIndex(e[0], ".")
		if first != last {
			out = append(out, e[0][:first]+".*"+e[0][last:])
			continue
		}
		out = append(out, e[0])
	}
	return out, nil
}

// xmlStructure is the path of every element and attribute, and any
// comment, processing instruction or directive, in document order.
func xmlStructure(content []byte) ([]string, error) {
	d := xml.NewDecoder(bytes.NewReader(content))
	var path, out []string
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			path = append(path, tok.Name.Local)
			p := strings.Join(path, "/")
			out = append(out, p)
			for _, a := range tok.Attr {
				out = append(out, p+"@"+a.Name.Space+":"+a.Name.Local)
			}
		case xml.EndElement:
			path = path[:len(path)-1]
		case xml.Comment:
			out = append(out, strings.Join(path, "/")+" comment")
		case xml.ProcInst:
			out = append(out, strings.Join(path, "/")+" ?"+tok.Target)
		case xml.Directive:
			out = append(out, strings.Join(path, "/")+" !directive")
		}
	}
}

// yamlStructure reads YAML as client-go does (sigs.k8s.io/yaml, YAML 1.1
// types, duplicate keys refused) and as gh and glab do (yaml.v3), and
// returns the paths of the first reading with each leaf's JSON type. The
// keys under dataKeys ("" for the top level, "-" for none) are "*".
func yamlStructure(content []byte, dataKeys string) ([]string, error) {
	var v3 yamlv3.Node
	if err := yamlv3.Unmarshal(content, &v3); err != nil {
		return nil, fmt.Errorf("yaml.v3: %w", err)
	}
	var tree any
	if err := yaml.UnmarshalStrict(content, &tree); err != nil {
		return nil, err
	}
	var out []string
	walkTree(tree, "", dataKeys, &out)
	return out, nil
}

// walkTree appends the path and type of every leaf of a decoded tree.
func walkTree(v any, path, dataKeys string, out *[]string) {
	switch v := v.(type) {
	case map[string]any:
		for _, k := range sortedKeys(v) {
			key := k
			if path == dataKeys {
				key = "*"
			}
			walkTree(v[k], strings.TrimPrefix(path+"."+key, "."), dataKeys, out)
		}
		if len(v) == 0 {
			*out = append(*out, path+" {}")
		}
	case []any:
		for i, e := range v {
			walkTree(e, path+"["+strconv.Itoa(i)+"]", dataKeys, out)
		}
		if len(v) == 0 {
			*out = append(*out, path+" []")
		}
	default:
		*out = append(*out, fmt.Sprintf("%s %T", path, v))
	}
}

// tomlStructure decodes TOML and returns the paths and types of its
// leaves; the keys of the table dataKeys are "*".
func tomlStructure(content []byte, dataKeys string) ([]string, error) {
	var tree map[string]any
	if _, err := toml.Decode(string(content), &tree); err != nil {
		return nil, err
	}
	var out []string
	walkTree(normalTOML(tree), "", dataKeys, &out)
	return out, nil
}

// normalTOML turns the []map[string]any of arrays of tables into []any.
func normalTOML(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			v[k] = normalTOML(e)
		}
		return v
	case []map[string]any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = normalTOML(e)
		}
		return out
	default:
		return v
	}
}

// jsonStructure decodes config.json; the keys of auths are "*".
func jsonStructure(content []byte) ([]string, error) {
	var tree any
	if err := json.Unmarshal(content, &tree); err != nil {
		return nil, err
	}
	var out []string
	walkTree(tree, "", "auths", &out)
	return out, nil
}

// iniStructure is every section and key; the sections named after a
// Connector (connectors-<namespace>-<name>) are "connectors-*".
func iniStructure(content []byte) ([]string, error) {
	sections, err := iniSections(string(content))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, s := range sections {
		name := s.name
		if strings.HasPrefix(name, "connectors-") {
			name = "connectors-*"
		}
		out = append(out, "["+name+"]")
		for _, k := range s.keys {
			out = append(out, name+"."+k)
		}
	}
	return out, nil
}

// envStructure parses .env as a POSIX shell script and returns the names
// it assigns. Anything but plain NAME='value' assignments is an error.
func envStructure(content []byte) ([]string, error) {
	f, err := syntax.NewParser(syntax.Variant(syntax.LangPOSIX)).Parse(bytes.NewReader(content), ".env")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, stmt := range f.Stmts {
		call, ok := stmt.Cmd.(*syntax.CallExpr)
		if !ok || len(call.Args) > 0 || len(stmt.Redirs) > 0 || stmt.Background || stmt.Negated {
			return nil, fmt.Errorf("line %d is not an assignment", stmt.Pos().Line())
		}
		for _, a := range call.Assigns {
			if a.Value == nil || len(a.Value.Parts) != 1 {
				return nil, fmt.Errorf("%s is not one quoted word", a.Name.Value)
			}
			if _, ok := a.Value.Parts[0].(*syntax.SglQuoted); !ok {
				return nil, fmt.Errorf("%s is not single-quoted", a.Name.Value)
			}
			out = append(out, a.Name.Value)
		}
	}
	return out, nil
}

// npmrcStructure is section.key of every entry, with //<host/path>/:_auth
// keys as //*:_auth.
func npmrcStructure(content []byte) ([]string, error) {
	var out []string
	for _, e := range npmrcEntries(string(content), nil) {
		key := e.key
		if strings.HasPrefix(key, "//") && strings.HasSuffix(key, ":_auth") {
			key = "//*:_auth"
		}
		out = append(out, fmt.Sprintf("%s.%s %T", e.section, key, e.value))
	}
	return out, nil
}

// scenario renders one catalog class: all its configurations and the
// built-in generators, over two Connectors of the class; the last one (the
// one .connector is) gets the hostile value.
type scenario struct {
	file  string
	class *v1alpha1.ConnectorClass
}

// catalogScenarios reads every class of deploy/classes.
func catalogScenarios(tb testing.TB) []scenario {
	tb.Helper()
	files, err := filepath.Glob(filepath.Join("..", "deploy", "classes", "*.yaml"))
	if err != nil {
		tb.Fatal(err)
	}
	var out []scenario
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		out = append(out, scenario{file: filepath.Base(f), class: catalogClass(tb, filepath.Base(f))})
	}
	if len(out) < 8 {
		tb.Fatalf("found %d catalog classes", len(out))
	}
	return out
}

// A field sets a hostile value into the scenario's Input.
type field struct {
	name string
	set  func(in *Input, v string)
}

// onLast sets a field of the last Connector.
func onLast(set func(c *v1alpha1.Connector, v string)) func(*Input, string) {
	return func(in *Input, v string) { set(in.Connectors[len(in.Connectors)-1].Object, v) }
}

// hostileFields are every user-controlled place a value can go.
var hostileFields = []field{
	{"spec.address", onLast(func(c *v1alpha1.Connector, v string) { c.Spec.Address = v })},
	{"spec.address path", onLast(func(c *v1alpha1.Connector, v string) { c.Spec.Address = "https://tool.example.com/" + v })},
	{"spec.address host", onLast(func(c *v1alpha1.Connector, v string) { c.Spec.Address = "https://" + v + "/x" })},
	{"spec.addressExtensions", onLast(func(c *v1alpha1.Connector, v string) { withExtension("api", v)(c) })},
	{"spec.params", onLast(func(c *v1alpha1.Connector, v string) {
		withParam("p", v)(c)
		withParam("o", map[string]any{v: v})(c)
	})},
	{"spec.auth", onLast(func(c *v1alpha1.Connector, v string) {
		c.Spec.Auth.Name = v
		c.Spec.Auth.Params = []v1alpha1.Param{{Name: "x", Value: jsonValue(v)}}
	})},
	{"metadata", onLast(func(c *v1alpha1.Connector, v string) {
		withAnnotation("example.com/note", v)(c)
		lastApplied(c)
	})},
	{"status", onLast(func(c *v1alpha1.Connector, v string) {
		withCondition(v)(c)
		c.Status.Proxy = &v1alpha1.ProxyStatus{HTTPAddress: &v1alpha1.Addressable{URL: v}}
	})},
	{"proxy address", func(in *Input, v string) { in.Connectors[len(in.Connectors)-1].ProxyAddress += "/" + v }},
	{"configuration.params", func(in *Input, v string) {
		for name, params := range in.Params {
			for k := range params {
				in.Params[name][k] = v
			}
		}
	}},
}

// input builds the scenario's Input, with v in field f unless f is nil.
func (s scenario) input(tb testing.TB, f *field, v string) Input {
	first := newConnector("team-a", "first", s.class.Name, "https://first-0.example.invalid/a")
	last := newConnector("team-b", "last", s.class.Name, "https://tool.example.com")
	in := baseInput(tb,
		mount(first, s.class),
		// A host-form proxy address, as a status writer sets it.
		Connector{Object: last, Class: s.class, ProxyAddress: "http://c-last.team-b.svc:8080"},
	)
	in.Configurations = []string{GeneratorGitconfig, GeneratorRegistryConfig, GeneratorBuildkitd}
	in.Params = map[string]map[string]any{}
	for _, cfg := range s.class.Spec.Configurations {
		in.Configurations = append(in.Configurations, cfg.Name)
		for _, p := range cfg.Params {
			if in.Params[cfg.Name] == nil {
				in.Params[cfg.Name] = map[string]any{}
			}
			in.Params[cfg.Name][p.Name] = benignParam(p)
		}
	}
	if f != nil {
		f.set(&in, v)
	}
	return in
}

// benignParam is a param's default, or a repository-like name for a
// param without one (a required param).
func benignParam(p v1alpha1.ParamSpec) string {
	if p.Default == nil {
		return "repo-1"
	}
	return paramString(p.Default.Raw)
}

// setParam is "" for set == "", else a benign value that is not empty:
// the first such member of the param's enum, its default, or a name.
func setParam(p v1alpha1.ParamSpec, set string) string {
	if set == "" {
		return ""
	}
	for _, e := range p.Enum {
		if e != "" {
			return e
		}
	}
	if v := benignParam(p); v != "" {
		return v
	}
	return "repo-1"
}

// benignTwin is the benign value whose structure a hostile one's must
// match. The files depend on the address scheme (yarn's plain-HTTP
// allow-list), so an http address is compared with an http one. A
// configuration param may turn a part of a file on (a mirror, a
// strict-ssl line) when it is not empty, so an empty one is compared with
// empty params and any other with params that are all set.
func benignTwin(f *field, v string) (*field, string) {
	if f != nil && f.name == "configuration.params" {
		return &field{name: f.name + " (benign)", set: func(in *Input, set string) {
			for _, cfg := range in.Connectors[len(in.Connectors)-1].Class.Spec.Configurations {
				for _, p := range cfg.Params {
					in.Params[cfg.Name][p.Name] = setParam(p, set)
				}
			}
		}}, map[bool]string{true: "", false: "set"}[v == ""]
	}
	if f == nil || f.name != "spec.address" {
		return nil, ""
	}
	if u, err := url.Parse(v); err == nil && u.Scheme == "http" {
		return f, "http://tool.example.com"
	}
	return nil, ""
}

// structures caches the structure of rendered files by content: git runs
// once per distinct .gitconfig.
type structures struct {
	mu      sync.Mutex
	cache   map[[2]string]structureResult
	renders map[[2]string]map[string][]byte
}

// benign renders the benign twin of v in f, once per scenario and twin.
func (c *structures) benign(tb testing.TB, s scenario, f *field, v string) map[string][]byte {
	tb.Helper()
	twinField, twinValue := benignTwin(f, v)
	key := [2]string{s.file, twinValue}
	c.mu.Lock()
	files, ok := c.renders[key]
	c.mu.Unlock()
	if ok {
		return files
	}
	files, err := Render(s.input(tb, twinField, twinValue))
	if err != nil {
		tb.Fatalf("%s: the benign render fails: %v", s.file, err)
	}
	c.mu.Lock()
	if c.renders == nil {
		c.renders = map[[2]string]map[string][]byte{}
	}
	c.renders[key] = files
	c.mu.Unlock()
	return files
}

type structureResult struct {
	paths []string
	err   error
}

func (c *structures) of(tb testing.TB, name string, content []byte) ([]string, error) {
	key := [2]string{name, string(content)}
	c.mu.Lock()
	r, ok := c.cache[key]
	c.mu.Unlock()
	if !ok {
		r.paths, r.err = structure(tb, name, content)
		c.mu.Lock()
		if c.cache == nil || len(c.cache) > 4096 {
			c.cache = map[[2]string]structureResult{} // bounded for long fuzz runs
		}
		c.cache[key] = r
		c.mu.Unlock()
	}
	return r.paths, r.err
}

// checkStructure renders s with v in f and fails tb unless the render is
// refused with ErrInvalid or every file has the benign twin's structure.
func (c *structures) checkStructure(tb testing.TB, s scenario, f *field, v string) {
	tb.Helper()
	if v == "" && strings.HasPrefix(f.name, "spec.address") {
		return // no address is no hostile one: git gets the header section only
	}
	got, err := Render(s.input(tb, f, v))
	if err != nil {
		if !errors.Is(err, ErrInvalid) {
			tb.Errorf("%s, %s = %q: refused with %v, want ErrInvalid", s.file, f.name, v, err)
		}
		return
	}
	want := c.benign(tb, s, f, v)
	if !slices.Equal(sortedKeys(got), sortedKeys(want)) {
		tb.Errorf("%s, %s = %q: files %q, want %q", s.file, f.name, v, sortedKeys(got), sortedKeys(want))
		return
	}
	for _, name := range sortedKeys(want) {
		wantPaths, err := c.of(tb, name, want[name])
		if err != nil {
			tb.Fatalf("%s: benign %s does not parse: %v\n%s", s.file, name, err, want[name])
		}
		gotPaths, err := c.of(tb, name, got[name])
		if err != nil || !slices.Equal(gotPaths, wantPaths) {
			tb.Errorf("%s, %s = %q: %s has another structure (%v):\n%q\nwant\n%q\n%s", s.file, f.name, v, name, err, gotPaths, wantPaths, got[name])
		}
	}
}

// hostileValues are the escaping corpus and random strings drawn from the
// characters that mean something somewhere.
func hostileValues(n int) []string {
	out := slices.Clone(escapeCorpus)
	alphabet := []rune("aZ09 \t\r\n\x00\x1b\x7f\u0085\u2028\u2029\"'\\`$(){}[]<>&;#=:-!%*|?,.@/~^+\u00e9\u65e5\U0001F600")
	rng := rand.New(rand.NewPCG(1, 2)) //nolint:gosec // a fixed seed keeps the property test reproducible
	for range n {
		r := make([]rune, 1+rng.IntN(24))
		for i := range r {
			r[i] = alphabet[rng.IntN(len(alphabet))]
		}
		out = append(out, string(r))
	}
	return out
}

// TestRenderStructureWithHostileValues is the structure property over
// every catalog class, every hostile field and the hostile values (more
// random ones come from FuzzRenderStructure).
func TestRenderStructureWithHostileValues(t *testing.T) {
	var c structures
	values := hostileValues(8)
	for _, s := range catalogScenarios(t) {
		t.Run(strings.TrimSuffix(s.file, ".yaml"), func(t *testing.T) {
			t.Parallel()
			for i := range hostileFields {
				for _, v := range values {
					c.checkStructure(t, s, &hostileFields[i], v)
				}
			}
		})
	}
}

// TestRenderStructureWithOtherNames renders the catalog with other valid
// namespaces and names: the names are data, not structure.
func TestRenderStructureWithOtherNames(t *testing.T) {
	var c structures
	for _, s := range catalogScenarios(t) {
		want := render(t, s.input(t, nil, ""))
		for _, names := range [][2]string{{"a", "b"}, {"x-1", "tool.v2"}, {"n" + strings.Repeat("0", 62), strings.Repeat("n.", 100) + "z"}} {
			in := s.input(t, nil, "")
			last := in.Connectors[1].Object
			last.Namespace, last.Name = names[0], names[1]
			in.Connectors[1].ProxyAddress = fmt.Sprintf("http://c-%s.%s.svc:8080", names[1], names[0])
			got := render(t, in)
			for name := range want {
				wantPaths, err := c.of(t, name, want[name])
				if err != nil {
					t.Fatal(err)
				}
				if gotPaths, err := c.of(t, name, got[name]); err != nil || !slices.Equal(gotPaths, wantPaths) {
					t.Errorf("%s %s: %s has another structure (%v):\n%s", s.file, names, name, err, got[name])
				}
			}
		}
	}
}

// FuzzRenderStructure is the structure property with fuzzed values: the
// seed corpus holds the three findings of the outside review.
func FuzzRenderStructure(f *testing.F) {
	for i := range hostileFields {
		for _, v := range []string{
			"https://git.example/x\n[core]\n\tsshCommand = touch /tmp/pwned",
			"https://git.example/x\r\n[core]\r\n\tsshCommand = touch /tmp/pwned",
			"https://repo.example/</name><mirrorOf>*</mirrorOf><url>http://elsewhere/</url></mirror><mirror><id>x</id><name>",
			"https://registry.example\nstrict-ssl=false\nscript-shell=/tmp/x",
			"https://r.example/${HOME};x#y",
		} {
			f.Add(uint8(i), v)
		}
	}
	scenarios := catalogScenarios(f)
	var c structures
	f.Fuzz(func(t *testing.T, which uint8, v string) {
		fld := &hostileFields[int(which)%len(hostileFields)]
		for _, s := range scenarios {
			c.checkStructure(t, s, fld, v)
		}
	})
}
