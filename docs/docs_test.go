// Package docs holds the tests that keep the README and the pages of docs/
// true to the tree: every repository path and link they give exists, every
// test they cite is defined, every flag of the binary is in the flags table
// of operations.md with its default, and layout.md names every package.
package docs

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
	"unicode"
)

// root is the repository root, seen from this package's directory.
const root = ".."

// page is one Markdown file of the documentation.
type page struct {
	path string // relative to root, slash-separated
	text string
}

// pages reads the README and every page of docs/.
func pages(t *testing.T) []page {
	t.Helper()
	names := []string{"README.md"}
	matches, err := filepath.Glob("*.md")
	if err != nil {
		t.Fatal(err)
	}
	if len(matches) == 0 {
		t.Fatal("docs/ holds no page")
	}
	for _, m := range matches {
		names = append(names, "docs/"+m)
	}
	var out []page
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(n)))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, page{path: n, text: string(b)})
	}
	return out
}

var (
	fence    = regexp.MustCompile("(?ms)^```.*?^```")
	codeSpan = regexp.MustCompile("`([^`\n]+)`")
	link     = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	heading  = regexp.MustCompile(`(?m)^#{1,6} +(.+?)\s*$`)
	testName = regexp.MustCompile(`\b(?:Test|Benchmark|Fuzz)[A-Z][A-Za-z0-9_]*`)
	testFunc = regexp.MustCompile(`(?m)^func ((?:Test|Benchmark|Fuzz)[A-Za-z0-9_]*)\(`)
	angle    = regexp.MustCompile(`<[^<>/]*>`)
)

// prose is a page without its fenced code blocks: the commands and objects
// in them name paths inside pods and clusters, not in the repository.
func prose(text string) string { return fence.ReplaceAllString(text, "") }

// notRepoPaths are the first segments of spans that name build outputs,
// not files in the repository (bin/ is made by make and ignored by git).
var notRepoPaths = map[string]bool{"bin": true}

// repoPath reports whether a code span names a path in the repository:
// one whose first segment is an entry at the repository's top. Absolute,
// home, parent and URL-like spans are paths elsewhere (in a pod, on the
// node, beside the repository) and are skipped.
func repoPath(span string, top map[string]bool) bool {
	if strings.ContainsAny(span, " \t") || strings.Contains(span, "://") {
		return false
	}
	for _, p := range []string{"/", "~", "../", "$"} {
		if strings.HasPrefix(span, p) {
			return false
		}
	}
	first, _, _ := strings.Cut(span, "/")
	return top[first] && !notRepoPaths[first]
}

// exists reports whether a repository path exists; <placeholders> match
// any name (e2e/catalog_<tool>_test.go).
func exists(p string) bool {
	p = strings.TrimSuffix(p, "/")
	full := filepath.Join(root, filepath.FromSlash(p))
	if !angle.MatchString(p) {
		_, err := os.Stat(full)
		return err == nil
	}
	m, err := filepath.Glob(angle.ReplaceAllString(full, "*"))
	return err == nil && len(m) > 0
}

func topEntries(t *testing.T) map[string]bool {
	t.Helper()
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	top := map[string]bool{}
	for _, e := range entries {
		top[e.Name()] = true
	}
	// The project's top-level directories count even when one is gone, so
	// a path under a directory that was moved or removed is reported rather
	// than taken for something other than a path.
	for _, n := range []string{"cmd", "csi", "configgen", "proxy", "kube", "status", "deploy", "charts", "examples", "internal", "hack", "test", "build", "grammar", "e2e", "docs", ".ci"} {
		top[n] = true
	}
	return top
}

// TestDocsNameExistingPaths checks every repository path the README and the
// pages give in a code span.
func TestDocsNameExistingPaths(t *testing.T) {
	top := topEntries(t)
	checked := 0
	for _, pg := range pages(t) {
		for _, m := range codeSpan.FindAllStringSubmatch(prose(pg.text), -1) {
			span := m[1]
			if !repoPath(span, top) {
				continue
			}
			checked++
			if !exists(span) {
				t.Errorf("%s names `%s`, which does not exist", pg.path, span)
			}
		}
	}
	if checked < 50 {
		t.Errorf("only %d repository paths found in the docs: is the span pattern broken?", checked)
	}
}

// slug is the anchor GitHub gives a heading.
func slug(h string) string {
	h = strings.ToLower(strings.ReplaceAll(h, "`", ""))
	var b strings.Builder
	for _, r := range h {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

func anchors(text string) map[string]bool {
	a := map[string]bool{}
	for _, m := range heading.FindAllStringSubmatch(prose(text), -1) {
		a[slug(m[1])] = true
	}
	return a
}

// TestDocsLinksResolve checks every relative link of the README and the
// pages: its file exists, and its anchor is a heading of that file.
func TestDocsLinksResolve(t *testing.T) {
	all := pages(t)
	byPath := map[string]page{}
	for _, pg := range all {
		byPath[pg.path] = pg
	}
	for _, pg := range all {
		for _, m := range link.FindAllStringSubmatch(prose(pg.text), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			file, anchor, _ := strings.Cut(target, "#")
			dest := pg.path
			if file != "" {
				dest = filepath.ToSlash(filepath.Join(filepath.Dir(pg.path), file))
				if !exists(dest) {
					t.Errorf("%s links to %s, which does not exist", pg.path, target)
					continue
				}
			}
			if anchor == "" {
				continue
			}
			to, ok := byPath[dest]
			if !ok {
				t.Errorf("%s links to %s: an anchor in a file that is not a page", pg.path, target)
				continue
			}
			if !anchors(to.text)[anchor] {
				t.Errorf("%s links to %s: %s has no heading #%s", pg.path, target, dest, anchor)
			}
		}
	}
}

// TestDocsCiteExistingTests checks that every TestXxx, BenchmarkXxx and
// FuzzXxx the docs cite is defined in a _test.go file of the tree.
func TestDocsCiteExistingTests(t *testing.T) {
	defined := map[string]bool{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "bin" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(p, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(p) //nolint:gosec // a file of the repository
		if err != nil {
			return err
		}
		for _, m := range testFunc.FindAllStringSubmatch(string(b), -1) {
			defined[m[1]] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	cited := 0
	for _, pg := range pages(t) {
		for _, name := range testName.FindAllString(pg.text, -1) {
			cited++
			if !defined[name] {
				t.Errorf("%s cites %s, which no _test.go file defines", pg.path, name)
			}
		}
	}
	if cited == 0 {
		t.Error("the docs cite no test: is the name pattern broken?")
	}
}

// helpFlag is one flag as connectors-node --help prints it.
type helpFlag struct {
	name, kind, def string
	hasDefault      bool
}

var (
	helpLine    = regexp.MustCompile(`^  -(\S+)(?: (\S+))?$`)
	helpDefault = regexp.MustCompile(`\(default (.*)\)$`)
	flagRow     = regexp.MustCompile("(?m)^\\| `--?([a-z0-9-]+)` \\| `([^`]*)` \\|")
)

// binaryFlags builds the binary and parses the flags its --help prints, so
// the check covers the flags the binary has, not a list kept beside it.
func binaryFlags(t *testing.T) []helpFlag {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "connectors-node")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/connectors-node")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	help := exec.CommandContext(ctx, bin, "--help") //nolint:gosec // the binary just built
	// Defaults taken from the environment print as the variable's name.
	help.Env = []string{"PATH=" + os.Getenv("PATH")}
	var out bytes.Buffer
	help.Stdout, help.Stderr = &out, &out
	_ = help.Run() // -h exits non-zero by the flag package's convention
	var flags []helpFlag
	var cur *helpFlag
	for _, line := range strings.Split(out.String(), "\n") {
		if m := helpLine.FindStringSubmatch(line); m != nil {
			flags = append(flags, helpFlag{name: m[1], kind: m[2]})
			cur = &flags[len(flags)-1]
			continue
		}
		if cur != nil && strings.HasPrefix(line, "    \t") {
			if m := helpDefault.FindStringSubmatch(line); m != nil {
				cur.def, cur.hasDefault = strings.Trim(m[1], `"`), true
			}
		}
	}
	if len(flags) < 20 {
		t.Fatalf("parsed only %d flags from --help:\n%s", len(flags), out.String())
	}
	return flags
}

// zero is what --help leaves unsaid: the zero value of the flag's kind.
func zero(kind string) string {
	switch kind {
	case "":
		return "false"
	case "string":
		return ""
	default:
		return "0"
	}
}

func sameDefault(doc, bin string) bool {
	if doc == `""` {
		doc = ""
	}
	if doc == bin {
		return true
	}
	d1, err1 := time.ParseDuration(doc)
	d2, err2 := time.ParseDuration(bin)
	return err1 == nil && err2 == nil && d1 == d2
}

// TestOperationsListsEveryFlag checks that the flags table of
// docs/operations.md has a row for every flag of the binary, with its
// default, and no row for a flag the binary lacks.
func TestOperationsListsEveryFlag(t *testing.T) {
	b, err := os.ReadFile("operations.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := map[string]string{}
	for _, m := range flagRow.FindAllStringSubmatch(string(b), -1) {
		doc[m[1]] = m[2]
	}
	seen := map[string]bool{}
	for _, f := range binaryFlags(t) {
		seen[f.name] = true
		want := f.def
		if !f.hasDefault {
			want = zero(f.kind)
		}
		got, ok := doc[f.name]
		switch {
		case !ok:
			t.Errorf("operations.md's flags table has no row for --%s (default %q)", f.name, want)
		case !sameDefault(got, want):
			t.Errorf("operations.md gives --%s the default `%s`; the binary's is %q", f.name, got, want)
		}
	}
	var stale []string
	for name := range doc {
		if !seen[name] {
			stale = append(stale, name)
		}
	}
	sort.Strings(stale)
	if len(stale) > 0 {
		t.Errorf("operations.md lists flags the binary does not have: %v", stale)
	}
}

// TestLayoutNamesEveryPackage checks that layout.md names every directory
// that holds Go code.
func TestLayoutNamesEveryPackage(t *testing.T) {
	b, err := os.ReadFile("layout.md")
	if err != nil {
		t.Fatal(err)
	}
	named := map[string]bool{}
	for _, m := range codeSpan.FindAllStringSubmatch(string(b), -1) {
		named[strings.TrimSuffix(m[1], "/")] = true
	}
	dirs := map[string]bool{}
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && p != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "bin" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(p, ".go") {
			rel, err := filepath.Rel(root, filepath.Dir(p))
			if err != nil {
				return err
			}
			dirs[filepath.ToSlash(rel)] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var missing []string
	for d := range dirs {
		if !named[d] {
			missing = append(missing, d)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("layout.md does not name these directories of Go code: %s", fmt.Sprint(missing))
	}
}
