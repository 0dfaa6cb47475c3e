package nodeproc

import (
	"context"
	"slices"
	"testing"
)

func TestWithEnvSetsOverTheCallers(t *testing.T) {
	got := withEnv([]string{"PATH=/usr/bin", "HOME=/root", "PATHX=1"}, []string{"PATH=", "GOGC=50"})
	want := []string{"HOME=/root", "PATHX=1", "PATH=", "GOGC=50"}
	if !slices.Equal(got, want) {
		t.Fatalf("withEnv = %q, want %q", got, want)
	}
}

func TestStartNamesTheMissingOptions(t *testing.T) {
	_, err := Start(context.Background(), Options{Binary: "connectors-node", Name: "n"})
	if err == nil {
		t.Fatal("Start without Kubeconfig and Work succeeded")
	}
}
