package configgen

import (
	"fmt"
	"testing"

	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
)

func benchInput(b *testing.B, n int) Input {
	cs := make([]Connector, n)
	for i := range cs {
		cs[i] = mount(newConnector(fmt.Sprintf("team-%d", i%3), fmt.Sprintf("tool-%d", i), "git",
			fmt.Sprintf("https://git%d.example.com/group", i)), nil)
	}
	return baseInput(b, cs...)
}

func BenchmarkRenderBuiltins(b *testing.B) {
	in := benchInput(b, 1)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Render(in); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRenderGenerators10(b *testing.B) {
	in := benchInput(b, 10)
	in.Configurations = []string{GeneratorGitconfig, GeneratorRegistryConfig}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Render(in); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRenderClassTemplate10 renders the upstream git template over 10
// Connectors of one class.
func BenchmarkRenderClassTemplate10(b *testing.B) {
	class := newClass("git", v1alpha1.Configuration{Name: "gitconfig", Data: map[string]string{".gitconfig": upstreamGitTemplate}})
	in := benchInput(b, 10)
	for i := range in.Connectors {
		in.Connectors[i].Class = class
	}
	in.Configurations = []string{"gitconfig"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Render(in); err != nil {
			b.Fatal(err)
		}
	}
}
