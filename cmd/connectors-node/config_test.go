package main

import (
	"bytes"
	"errors"
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestHelpExplainsEveryFlag(t *testing.T) {
	var out bytes.Buffer
	_, err := parseFlags([]string{"--help"}, &out)
	require.ErrorIs(t, err, flag.ErrHelp)
	help := out.String()
	require.Contains(t, help, "Usage: connectors-node")

	// Every registered flag appears in the help with a description.
	for _, name := range []string{
		"node-id", "kubeconfig", "namespace", "ca-secret", "csi-endpoint", "proxy-listen", "ops-listen",
		"public-url", "audience", "cluster-domain", "enable-connector-proxy-permissions", "enable-connectors-approval",
		"allow-unmatched-tunnels", "allow-loopback-upstreams", "deny-cidrs", "system-roots", "tmpfs-size",
		"secret-cache-ttl", "token-cache-ttl", "shutdown-timeout", "audit-log", "v",
		"status", "status-probe-interval",
		"serve", "ca-configmap",
		"kube-api-qps", "kube-api-burst", "pprof", "metrics-auth",
		"release-startup-pages",
		"max-connections", "max-connections-per-source", "max-unauthenticated-per-source", "unauthenticated-idle-timeout",
		"connectors-api-listen", "enable-connector-apis-permissions", "enable-connector-apis-write-passthrough",
	} {
		i := strings.Index(help, "  -"+name+" ")
		if i < 0 {
			i = strings.Index(help, "  -"+name+"\n")
		}
		require.GreaterOrEqual(t, i, 0, "--help does not list -%s", name)
		rest := help[i+len("  -"+name):]
		line := strings.SplitN(rest, "\n  -", 2)[0]
		require.Greater(t, len(strings.TrimSpace(line)), 20, "-%s has no real description", name)
	}
}

func TestFlagsDefaults(t *testing.T) {
	c, err := parseFlags([]string{"--node-id=n1"}, &bytes.Buffer{})
	require.NoError(t, err)
	require.Equal(t, "connectors-system", c.namespace)
	require.Equal(t, "http://connectors-proxy.connectors-system.svc", c.publicURL)
	require.Equal(t, c.publicURL, c.public.String(), "the typed value is what goes downstream")
	require.Equal(t, "cluster.local", c.clusterDomain)
	require.Equal(t, "connectors-proxy", c.audience)
	require.False(t, c.allowUnmatchedTunnels)
	require.False(t, c.allowLoopback)
	require.Equal(t, "-", c.auditLog, "audit lines go to standard output by default")
	require.True(t, c.status, "status is written unless an upstream controller owns it")
	require.True(t, c.serves(roleCSI) && c.serves(roleProxy), "one process serves both roles by default")
	require.Equal(t, "connectors-proxy-ca.crt", c.caConfigMap)
	require.False(t, c.pprof, "profiles are served only when asked for")
	require.True(t, c.metricsAuth, "/metrics needs a token and RBAC unless turned off")
	require.Empty(t, c.connectorsAPIListen, "the Connectors API gateway is served only when asked for")
	require.False(t, c.apisPermissions || c.apisWritePassthrough, "upstream's Connectors API flags default off")
	require.InDelta(t, 50, c.kubeAPIQPS, 0, "client-go's 5 per second queued the reviews of 100 new tokens past their timeout")
	require.Equal(t, 100, c.kubeAPIBurst)
	require.True(t, c.releaseStartupPages, "the binary's start-up pages are released unless turned off")
	require.Equal(t, 1500, c.maxConnections)
	require.Equal(t, 256, c.maxConnectionsPerSource)
	require.Equal(t, 64, c.maxUnauthenticatedPerSource)
	require.Equal(t, 10*time.Second, c.unauthenticatedIdleTimeout)
}

// --version prints the version alone, with no other flag required.
func TestVersionPrintsTheVersion(t *testing.T) {
	t.Setenv("NODE_NAME", "")
	var out, errOut bytes.Buffer
	require.NoError(t, run(t.Context(), []string{"--version"}, &out, &errOut))
	require.Equal(t, "connectors-node "+version+"\n", out.String())
	require.Empty(t, errOut.String())
}

func TestProxyOnlyNeedsNoNodeID(t *testing.T) {
	t.Setenv("NODE_NAME", "")
	c, err := parseFlags([]string{"--serve=proxy", "--check-pod-node=false"}, &bytes.Buffer{})
	require.NoError(t, err)
	require.True(t, c.serves(roleProxy))
	require.False(t, c.serves(roleCSI))
	// Without a node the node binding of tokens cannot be checked: the
	// error names both flags instead of failing later at startup.
	_, err = parseFlags([]string{"--serve=proxy"}, &bytes.Buffer{})
	require.ErrorContains(t, err, "--node-id")
	require.ErrorContains(t, err, "--check-pod-node")
}

func TestAuditLogFileIsOpenedBeforeAnythingStarts(t *testing.T) {
	var stderr bytes.Buffer
	err := run(t.Context(), []string{"--node-id=n", "--audit-log=" + t.TempDir() + "/missing/audit.log"}, &bytes.Buffer{}, &stderr)
	require.ErrorContains(t, err, "--audit-log")
	require.Empty(t, stderr.String(), "nothing started")
}

// The public URL is checked once, in the command: a bad one is a single
// error line naming the flag, before anything starts, and not a second
// complaint from the CSI plugin, the proxy or the status writer.
func TestBadPublicURLIsOneErrorNamingTheFlag(t *testing.T) {
	for _, bad := range []string{"ftp://proxy", "http://proxy/path", "proxy:8080", "http://proxy:99999"} {
		t.Run(bad, func(t *testing.T) {
			var stderr bytes.Buffer
			err := run(t.Context(), []string{"--node-id=n", "--public-url=" + bad}, &bytes.Buffer{}, &stderr)
			require.Error(t, err)
			msg := err.Error()
			require.True(t, strings.HasPrefix(msg, "--public-url: "), "error %q", msg)
			require.Contains(t, msg, bad)
			require.NotContains(t, msg, "\n", "one error, not one per package")
			require.Equal(t, 1, strings.Count(msg, "public"), "error %q", msg)
			require.Empty(t, stderr.String(), "nothing started")
		})
	}
}

func TestBadFlagsNameTheFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{}, "--node-id"},
		{[]string{"--node-id=n", "--csi-endpoint=/tmp/x.sock"}, "--csi-endpoint"},
		{[]string{"--node-id=n", "--proxy-listen=8080"}, "--proxy-listen"},
		{[]string{"--node-id=n", "--ops-listen=nope"}, "--ops-listen"},
		{[]string{"--node-id=n", "--public-url=ftp://x"}, "--public-url"},
		{[]string{"--node-id=n", "--public-url=http://x/path"}, "--public-url"},
		{[]string{"--node-id=n", "--deny-cidrs=10.0.0.0/8,bogus"}, "--deny-cidrs"},
		{[]string{"--node-id=n", "--cluster-domain=corp,example"}, "--cluster-domain"},
		{[]string{"--node-id=n", "--secret-cache-ttl=0s"}, "--secret-cache-ttl"},
		{[]string{"--node-id=n", "--audience="}, "--audience"},
		{[]string{"--node-id=n", "--audit-log="}, "--audit-log"},
		{[]string{"--node-id=n", "extra"}, "unexpected argument"},
		{[]string{"--node-id=n", "--serve="}, "--serve"},
		{[]string{"--node-id=n", "--serve=csi,web"}, "--serve"},
		{[]string{"--serve=csi"}, "--node-id"},
		{[]string{"--node-id=n", "--ca-configmap="}, "--ca-configmap"},
		{[]string{"--node-id=n", "--kube-api-qps=0"}, "--kube-api-qps"},
		{[]string{"--node-id=n", "--kube-api-burst=-1"}, "--kube-api-burst"},
		{[]string{"--node-id=n", "--max-connections-per-source=0"}, "--max-connections-per-source: must be positive"},
		{[]string{"--node-id=n", "--max-connections=100", "--max-connections-per-source=101", "--max-unauthenticated-per-source=10"}, "--max-connections-per-source: 101 is more than --max-connections=100"},
		{[]string{"--node-id=n", "--max-unauthenticated-per-source=-1"}, "--max-unauthenticated-per-source: must be positive"},
		{[]string{"--node-id=n", "--max-connections-per-source=32"}, "--max-unauthenticated-per-source: 64 is more than --max-connections-per-source=32"},
		{[]string{"--node-id=n", "--unauthenticated-idle-timeout=0s"}, "--unauthenticated-idle-timeout: must be positive"},
		{[]string{"--node-id=n", "--connectors-api-listen=8081"}, "--connectors-api-listen: \"8081\" is not host:port"},
		{[]string{"--node-id=n", "--serve=csi", "--connectors-api-listen=:8081"}, "--connectors-api-listen: the gateway runs in the proxy role"},
		{[]string{"--node-id=n", "--enable-connectors-approval"}, "--enable-connectors-approval: needs --enable-connector-proxy-permissions"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Setenv("NODE_NAME", "")
			_, err := parseFlags(tc.args, &bytes.Buffer{})
			require.Error(t, err)
			require.False(t, errors.Is(err, flag.ErrHelp))
			require.Contains(t, err.Error(), tc.want)
		})
	}
}
