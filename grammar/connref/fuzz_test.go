package connref

import (
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
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

// The hand checks accept exactly what apimachinery's validation accepts.
func FuzzHandChecksMatchApimachinery(f *testing.F) {
	for _, s := range []string{"", "a", "a-b", "-a", "a-", "a.b", "a..b", ".a", "a.", "A", "a_b", "a.-b", "9", "\xff",
		strings.Repeat("a", 63), strings.Repeat("a", 64), strings.Repeat("a.", 126) + "a", strings.Repeat("a", 254)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := isDNS1123Label(s), len(validation.IsDNS1123Label(s)) == 0; got != want {
			t.Fatalf("isDNS1123Label(%q) = %v, apimachinery says %v", s, got, want)
		}
		if got, want := isDNS1123Subdomain(s), len(validation.IsDNS1123Subdomain(s)) == 0; got != want {
			t.Fatalf("isDNS1123Subdomain(%q) = %v, apimachinery says %v", s, got, want)
		}
	})
}

func BenchmarkValid(b *testing.B) {
	k := types.NamespacedName{Namespace: "team-a", Name: "git.example-connector"}
	b.ReportAllocs()
	for b.Loop() {
		if !Valid(k) {
			b.Fatal("invalid")
		}
	}
}
