package apiserver

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/connectors-node/connectors-node/test/testenv"
)

// children lists the names of this process's child processes.
func children(t *testing.T) []string {
	t.Helper()
	procs, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		t.Fatal(err)
	}
	self := strconv.Itoa(os.Getpid())
	var names []string
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // the process ended
		}
		// pid (comm) state ppid ...; comm may hold spaces and ')'.
		s := string(b)
		end := strings.LastIndexByte(s, ')')
		fields := strings.Fields(s[end+1:])
		if len(fields) > 1 && fields[1] == self {
			names = append(names, s[strings.IndexByte(s, '(')+1:end])
		}
	}
	return names
}

// TestFailedStartStopsTheControlPlane pins the cleanup of a failed start:
// before it, a CRD install that failed left etcd and kube-apiserver
// running until they were killed by hand.
func TestFailedStartStopsTheControlPlane(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the test API server; skipped with -short (make test-unit)")
	}
	if _, err := BinaryDir(); err != nil {
		testenv.SkipOrFail(t, "%v (make testbin builds it)", err)
		return
	}
	dir := t.TempDir()
	// A CRD whose name does not match its plural and group: the API
	// server refuses it.
	bad := `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: broken.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
    - name: v1
      served: true
      storage: true
      schema: {openAPIV3Schema: {type: object}}
`
	if err := os.WriteFile(filepath.Join(dir, "broken.yaml"), []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	e, err := start(Options{CRDDirs: []string{dir}})
	if err == nil {
		_ = e.Stop()
		t.Fatal("a CRD the API server refuses started the environment")
	}
	for _, name := range children(t) {
		if name == "etcd" || name == "kube-apiserver" {
			t.Errorf("%s still runs after the failed start (%v)", name, err)
		}
	}
}
