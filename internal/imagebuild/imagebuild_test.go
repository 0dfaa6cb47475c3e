package imagebuild

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// HostFiles takes a directory tree as a package installs it: every file,
// relative and absolute symlinks with their targets (a file or a tree, in
// or out of the named directory), and not the symlinks whose target is
// missing (JDK's lib/src.zip when its source package is not installed);
// a missing named path stays an error.
func TestHostFilesTakesATreeAndLeavesOutItsDanglingLinks(t *testing.T) {
	root := t.TempDir()
	write := func(p, content string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	link := func(target, p string) {
		t.Helper()
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
	}
	tree := filepath.Join(root, "jvm")
	write(filepath.Join(tree, "release"), "JAVA_VERSION=17")
	write(filepath.Join(tree, "lib", "modules"), "modules")
	write(filepath.Join(root, "etc", "java", "net.properties"), "net")
	write(filepath.Join(root, "share", "java", "guava-31.jar"), "jar")
	link("../../etc/java/net.properties", filepath.Join(tree, "lib", "net.properties"))
	link(filepath.Join(root, "share", "java"), filepath.Join(tree, "jars"))
	link("../../openjdk-17/src.zip", filepath.Join(tree, "lib", "src.zip"))
	link(filepath.Join(root, "gone"), filepath.Join(tree, "gone"))
	link("guava-31.jar", filepath.Join(root, "share", "java", "guava.jar"))

	files, links, err := HostFiles(context.Background(), tree)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range files {
		got = append(got, strings.TrimPrefix(f.Path, root))
	}
	slices.Sort(got)
	want := []string{"/etc/java/net.properties", "/jvm/lib/modules", "/jvm/release", "/share/java/guava-31.jar"}
	if !slices.Equal(got, want) {
		t.Errorf("files %q, want %q", got, want)
	}
	wantLinks := map[string]string{
		filepath.Join(tree, "lib", "net.properties"):      "../../etc/java/net.properties",
		filepath.Join(tree, "jars"):                       filepath.Join(root, "share", "java"),
		filepath.Join(root, "share", "java", "guava.jar"): "guava-31.jar",
	}
	if len(links) != len(wantLinks) {
		t.Errorf("links %q, want %q", links, wantLinks)
	}
	for l, target := range wantLinks {
		if links[l] != target {
			t.Errorf("link %s -> %q, want %q", l, links[l], target)
		}
	}

	if _, _, err := HostFiles(context.Background(), filepath.Join(tree, "lib", "src.zip")); err == nil || !strings.Contains(err.Error(), "src.zip") {
		t.Errorf("a named link to a missing file: got %v, want an error naming it", err)
	}
	if _, _, err := HostFiles(context.Background(), filepath.Join(root, "missing")); err == nil {
		t.Error("a missing named path: got no error")
	}
}
