package fleet

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/connectors-node/connectors-node/test/apiserver"
	"github.com/connectors-node/connectors-node/test/servers/manifests"
)

// DaemonSetSettings are the memory settings of the connectors-node
// container in deploy/base/daemonset.yaml.
type DaemonSetSettings struct {
	// Env is GOGC and GOMEMLIMIT as NAME=value.
	Env []string
	// Args holds --max-connections.
	Args []string
	// MaxConnections is the value of --max-connections, 0 if unset.
	MaxConnections int
	// Request and Limit are the memory request and limit.
	Request, Limit string
}

// ReadDaemonSet reads the settings from the repository's DaemonSet, so a
// benchmark runs the binary as the DaemonSet does.
func ReadDaemonSet() (DaemonSetSettings, error) {
	var s DaemonSetSettings
	objs, err := manifests.Load(filepath.Join(apiserver.RepoRoot(), "deploy", "base", "daemonset.yaml"))
	if err != nil {
		return s, err
	}
	containers, _, err := unstructured.NestedSlice(objs[0].Object, "spec", "template", "spec", "containers")
	if err != nil {
		return s, err
	}
	for _, c := range containers {
		m, _ := c.(map[string]any)
		if m["name"] != "connectors-node" {
			continue
		}
		env, _, _ := unstructured.NestedSlice(m, "env")
		for _, e := range env {
			em, _ := e.(map[string]any)
			if name, _ := em["name"].(string); name == "GOGC" || name == "GOMEMLIMIT" {
				s.Env = append(s.Env, fmt.Sprintf("%s=%v", name, em["value"]))
			}
		}
		args, _, _ := unstructured.NestedStringSlice(m, "args")
		for _, a := range args {
			if v, ok := strings.CutPrefix(a, "--max-connections="); ok {
				s.Args = append(s.Args, a)
				if s.MaxConnections, err = strconv.Atoi(v); err != nil {
					return s, fmt.Errorf("deploy/base/daemonset.yaml: %s: %w", a, err)
				}
			}
		}
		s.Request, _, _ = unstructured.NestedString(m, "resources", "requests", "memory")
		s.Limit, _, _ = unstructured.NestedString(m, "resources", "limits", "memory")
		return s, nil
	}
	return s, fmt.Errorf("deploy/base/daemonset.yaml: no connectors-node container")
}
