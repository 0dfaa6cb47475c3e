package connref

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/types"
)

func TestParse(t *testing.T) {
	key := func(ns, name string) types.NamespacedName { return types.NamespacedName{Namespace: ns, Name: name} }
	cases := []struct {
		list, defNS string
		want        []types.NamespacedName
		err         string
	}{
		{"a/b", "", []types.NamespacedName{key("a", "b")}, ""},
		{" a/b , c/d.e ", "", []types.NamespacedName{key("a", "b"), key("c", "d.e")}, ""},
		{"git,shared/reg", "pod-ns", []types.NamespacedName{key("pod-ns", "git"), key("shared", "reg")}, ""},
		{"git", "", nil, `item "git" is not <namespace>/<name>`},
		{"", "pod-ns", nil, "item 1 is empty"},
		{"a/b,,c/d", "", nil, "item 2 is empty"},
		{"a/b/c", "pod-ns", nil, "more than one"},
		{"a/b,a/b", "", nil, "listed twice"},
		{"git,pod-ns/git", "pod-ns", nil, "listed twice"},
		{"A/b", "", nil, "namespace is not a valid namespace name"},
		{"a/B", "", nil, "name is not a valid object name"},
		{"a/b..c", "", nil, `contains ".."`},
		{"a.b/c", "", nil, "namespace is not a valid"},
		{"a/" + strings.Repeat("x", 254), "", nil, "name is not a valid"},
	}
	for _, tc := range cases {
		got, err := Parse(tc.list, tc.defNS)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: err %v, want %q", tc.list, err, tc.err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("%q: %v %v, want %v", tc.list, got, err, tc.want)
		}
	}
}

// The limit holds at Max and refuses one more.
func TestParseLimit(t *testing.T) {
	items := make([]string, Max+1)
	for i := range items {
		items[i] = fmt.Sprintf("ns/c%d", i)
	}
	if keys, err := Parse(strings.Join(items[:Max], ","), ""); err != nil || len(keys) != Max {
		t.Fatalf("%d items: %d keys, %v", Max, len(keys), err)
	}
	if _, err := Parse(strings.Join(items, ","), ""); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("at most %d", Max)) {
		t.Fatalf("%d items: err %v", Max+1, err)
	}
}

func TestFormatParsesBack(t *testing.T) {
	keys := []types.NamespacedName{{Namespace: "a", Name: "b"}, {Namespace: "c", Name: "d.e"}, {Namespace: "a", Name: "b"}}
	s := Format(keys)
	if s != "a/b,c/d.e" {
		t.Fatalf("Format: %q", s)
	}
	got, err := Parse(s, "")
	if err != nil || !slices.Equal(got, keys[:2]) {
		t.Fatalf("Parse(Format): %v %v", got, err)
	}
}
