package status_test

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/connectors-node/connectors-node/status"
	"github.com/connectors-node/connectors-node/test/apiserver"
	"github.com/connectors-node/connectors-node/test/testenv"
)

// TestKubectlGetConnectorsShowsStatus runs the pinned kubectl (make
// testbin builds it, the API server's version) against the
// real API server: once the node has written status, `kubectl get
// connectors` prints Ready True, and `-o wide` the host-form address, by
// the CRD's printer columns.
func TestKubectlGetConnectorsShowsStatus(t *testing.T) {
	kubectl, err := apiserver.Kubectl()
	if err != nil {
		testenv.SkipOrFail(t, "%v", err)
	}
	env := apiserver.Shared(t)
	ns := env.Namespace(t, "kubectl")
	up := startUpstream(t)
	startNode(t, env, nodeOptions{identity: "node-a", leaseNS: ns})
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	require.NoError(t, env.WriteAdminKubeconfig(kubeconfig))

	cls := gitClass("git-"+ns, nil)
	create(t, env, cls, basicSecret(ns, "git-auth", upstreamPass), gitConnector(t, ns, "git", cls.Name, up.URL, "git-auth"))
	waitReady(t, env, ns, "git", status.True, "")

	get := func(args ...string) string {
		var out, errb bytes.Buffer
		cmd := exec.CommandContext(t.Context(), kubectl, append([]string{"--kubeconfig=" + kubeconfig, "-n", ns, "get", "connectors"}, args...)...) //nolint:gosec // the test's own arguments
		cmd.Stdout, cmd.Stderr = &out, &errb
		require.NoError(t, cmd.Run(), "kubectl get connectors %v: %s", args, errb.String())
		t.Logf("$ kubectl get connectors %v\n%s", args, out.String())
		return out.String()
	}
	require.Regexp(t, `(?m)^NAME\s+CLASS\s+ADDRESS\s+READY\s+REASON\s+AGE$`, get())
	require.Regexp(t, `(?m)^git\s+`+regexp.QuoteMeta(cls.Name)+`\s+`+regexp.QuoteMeta(up.URL)+`\s+True\s+`, get())
	require.Regexp(t, `(?m)^git\s+.*\s+True\s+.*\s`+regexp.QuoteMeta("http://c-git."+ns+".svc.cluster.local")+`$`, get("-o", "wide"))
}
