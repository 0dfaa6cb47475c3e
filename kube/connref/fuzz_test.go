package connref

import (
	"slices"
	"testing"
)

func FuzzParse(f *testing.F) {
	for _, s := range [][2]string{{"a/b", ""}, {"git,shared/reg", "pod"}, {" a/b , c/d ", ""}, {"a/b/c", ""}, {",", "x"}, {"a/b..c", ""}, {"A/b", ""}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, list, defaultNamespace string) {
		keys, err := Parse(list, defaultNamespace)
		if err != nil {
			return
		}
		if len(keys) == 0 || len(keys) > Max {
			t.Fatalf("%d keys accepted", len(keys))
		}
		for _, k := range keys {
			if !Valid(k) {
				t.Fatalf("invalid key %v accepted", k)
			}
		}
		again, err := Parse(Format(keys), "")
		if err != nil || !slices.Equal(again, keys) {
			t.Fatalf("Format(%v) = %q parses to %v, %v", keys, Format(keys), again, err)
		}
	})
}
