package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/connectors-node/connectors-node/csi"
	"github.com/connectors-node/connectors-node/grammar/publicurl"
	"github.com/connectors-node/connectors-node/kube"
	"github.com/connectors-node/connectors-node/kube/ca"
	"github.com/connectors-node/connectors-node/proxy"
)

// config is everything the command line sets.
type config struct {
	// showVersion asks for the version alone; nothing else is validated.
	showVersion bool
	nodeID      string
	kubeconfig  string
	namespace   string
	caSecret    string
	csiEndpoint string
	proxyListen string
	opsListen   string
	publicURL   string
	audience    string
	// public is publicURL, parsed once by validate; everything downstream
	// takes it.
	public publicurl.URL

	clusterDomain         string
	proxyPermissions      bool
	approval              bool
	allowUnmatchedTunnels bool
	allowLoopback         bool
	upstreamFastPath      bool
	denyCIDRs             string
	systemRoots           string
	tmpfsSize             string
	secretTTL             time.Duration
	tokenCacheTTL         time.Duration
	shutdownTimeout       time.Duration
	shutdownDelay         time.Duration
	verbosity             int
	auditLog              string

	apiOutageGrace time.Duration
	kubeletRoot    string
	maxConnections int
	// Per-source limits of the proxy's client connections.
	maxConnectionsPerSource     int
	maxUnauthenticatedPerSource int
	unauthenticatedIdleTimeout  time.Duration
	// Status reconciler.
	status              bool
	statusProbeInterval time.Duration
	// Topology: which roles this process serves, and the published CA
	// certificates.
	serve       string
	caConfigMap string
	// Pod binding of tokens.
	checkPodNode       bool
	checkPodSource     bool
	allowUnboundTokens bool
	// API client rate limits and the profiling endpoints.
	kubeAPIQPS   float64
	kubeAPIBurst int
	pprof        bool
	// metricsAuth guards /metrics and the profiles with a TokenReview and
	// a SubjectAccessReview.
	metricsAuth bool
	// Memory: drop the start-up pages of the executable once ready.
	releaseStartupPages bool
	// The Connectors API gateway: its listener ("" serves none) and
	// upstream's two feature flags.
	connectorsAPIListen  string
	apisPermissions      bool
	apisWritePassthrough bool
}

// Roles --serve names.
const (
	roleCSI   = "csi"
	roleProxy = "proxy"
)

// serves reports whether --serve lists role.
func (c *config) serves(role string) bool {
	return slices.Contains(c.roles(), role)
}

func (c *config) roles() []string {
	var roles []string
	for _, r := range strings.Split(c.serve, ",") {
		if r = strings.TrimSpace(r); r != "" {
			roles = append(roles, r)
		}
	}
	return roles
}

// parseFlags reads args into a config, validating every value. With -h or
// --help it prints the usage to out and returns flag.ErrHelp.
func parseFlags(args []string, out io.Writer) (*config, error) {
	c := &config{}
	fs := flag.NewFlagSet("connectors-node", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() {
		_, _ = fmt.Fprintf(out, "Usage: connectors-node [flags]\n\n"+
			"Runs on every node: the %s CSI node plugin, which mounts Connector\n"+
			"configuration into pods, and the Connectors proxy, which checks the pod's\n"+
			"token and RBAC and injects the tool's credential.\n\nFlags:\n", csi.DriverName)
		fs.PrintDefaults()
	}
	fs.StringVar(&c.nodeID, "node-id", os.Getenv("NODE_NAME"), "name of this node, reported to kubelet (default $NODE_NAME)")
	fs.StringVar(&c.kubeconfig, "kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig file; empty means the in-cluster ServiceAccount (default $KUBECONFIG)")
	fs.StringVar(&c.namespace, "namespace", "connectors-system", "namespace of the service, where the proxy CA Secret lives")
	fs.StringVar(&c.caSecret, "ca-secret", "connectors-proxy-ca", "name of the Secret holding the proxy CA; created on first start if absent")
	fs.StringVar(&c.csiEndpoint, "csi-endpoint", csi.DefaultEndpoint, "CSI gRPC endpoint, unix://<path>; replaces a socket there (a stale one, or an older instance's during an upgrade); on exit the socket is removed only while it is still this process's")
	fs.StringVar(&c.proxyListen, "proxy-listen", ":8080", "address the forward and reverse proxy listens on")
	fs.StringVar(&c.opsListen, "ops-listen", ":9090", "address serving /healthz, /readyz and /metrics (see --metrics-auth)")
	fs.StringVar(&c.publicURL, "public-url", publicurl.Default, "public address of the proxy as pods reach it, http(s)://host[:port]; written into volumes and the base of path-form Connector addresses")
	fs.StringVar(&c.audience, "audience", csi.DefaultAudience, "token audience of the proxy; must match the CSIDriver's tokenRequests")
	fs.StringVar(&c.clusterDomain, "cluster-domain", publicurl.DefaultClusterDomain, "cluster DNS domain, for host-form addresses c-<name>.<ns>.svc.<domain> and the cluster-local no_proxy suffixes written into volumes")
	fs.BoolVar(&c.proxyPermissions, "enable-connector-proxy-permissions", false, "also require get on the connectors/proxy subresource to use a Connector")
	fs.BoolVar(&c.approval, "enable-connectors-approval", false, "approval-gated use of Connectors (docs/approvals.md): a pod without connectors/proxy gets an AccessRequest and mounts once a pod-scoped grant is synced; the status leader runs the approval controller. Needs --enable-connector-proxy-permissions")
	fs.BoolVar(&c.allowUnmatchedTunnels, "allow-unmatched-tunnels", false, "let CONNECT to hosts no listed Connector serves through as blind tunnels (no credential); off, they get 403")
	fs.BoolVar(&c.allowLoopback, "allow-loopback-upstreams", false, "allow Connector addresses on loopback (for local testing); link-local, metadata and the proxy's own address stay refused")
	fs.BoolVar(&c.upstreamFastPath, "upstream-fast-path", true, "send requests without a body that may be repeated (GET, HEAD, OPTIONS, TRACE) to plain http:// upstreams through the proxy's lean HTTP/1.1 client (a keep-alive pool, strict response parsing); every other request, and every response it does not read exactly as net/http does, goes through net/http's transport. Off sends every request through net/http's transport")
	fs.StringVar(&c.denyCIDRs, "deny-cidrs", "", "comma-separated extra CIDRs the proxy never connects to")
	fs.StringVar(&c.systemRoots, "system-roots", "/etc/ssl/certs/ca-certificates.crt", "PEM bundle of trusted roots, written with the proxy CA into ca-bundle.crt; empty to write the proxy CA alone")
	fs.StringVar(&c.tmpfsSize, "tmpfs-size", csi.DefaultTmpfsSize, "size limit of each volume's tmpfs")
	fs.DurationVar(&c.secretTTL, "secret-cache-ttl", kube.DefaultSecretTTL, "how long a credential Secret read stays cached; a Secret whose credential an upstream refuses (401 or 403) is read again at once, at most every 10s")
	fs.DurationVar(&c.tokenCacheTTL, "token-cache-ttl", 5*time.Minute, "upper bound on caching a token review; never past the token's expiry")
	fs.DurationVar(&c.shutdownTimeout, "shutdown-timeout", 20*time.Second, "how long to drain in-flight requests and CSI calls on SIGTERM")
	fs.DurationVar(&c.shutdownDelay, "shutdown-delay", 0, "on SIGTERM, first answer /readyz with 503 and keep serving every listener this long, so Service endpoints (kube-proxy) move new connections to another instance before the listeners close; then drain within --shutdown-timeout. 0 closes at once")
	fs.StringVar(&c.auditLog, "audit-log", "-", "where the proxy writes its audit log, one JSON line per proxied request: - for standard output, or a file, appended to")
	fs.StringVar(&c.serve, "serve", roleCSI+","+roleProxy, "roles to serve, a comma list: csi (the node plugin; reads Connectors and the published CA certificates, never a Secret) and proxy (holds Secret access and the CA key; publishes the CA certificates)")
	fs.StringVar(&c.caConfigMap, "ca-configmap", ca.DefaultConfigMap, "name of the ConfigMap in --namespace that publishes the proxy CA certificates without the key; the proxy role writes it, a csi-only node reads only it")
	fs.IntVar(&c.verbosity, "v", 0, "verbosity of the node log on standard error: 0 logs start, stop, warnings and errors; 2 adds volume publishes; 5 every CSI call")
	fs.DurationVar(&c.apiOutageGrace, "api-outage-grace", kube.DefaultOutageGrace, "while the Kubernetes API is unavailable, keep serving cached allow decisions, token reviews and Secrets this long past their TTL; new tokens and decisions fail closed")
	fs.StringVar(&c.kubeletRoot, "kubelet-root", csi.DefaultKubeletRoot, "kubelet's root directory: every volume target path must lie under it")
	fs.IntVar(&c.maxConnections, "max-connections", proxy.DefaultMaxConnections, "most client connections (tunnels included) the proxy serves at once; beyond it a connection is answered 503 and closed")
	fs.IntVar(&c.maxConnectionsPerSource, "max-connections-per-source", proxy.DefaultMaxConnectionsPerSource, "most client connections the proxy serves at once from one source IP address (an IPv4-mapped IPv6 address counts as the IPv4 one); beyond it a connection is answered 503 and closed. At most --max-connections")
	fs.IntVar(&c.maxUnauthenticatedPerSource, "max-unauthenticated-per-source", proxy.DefaultMaxUnauthenticatedPerSource, "most client connections from one source IP address that have not yet carried a request whose token passed review; beyond it a connection is answered 503 and closed. At most --max-connections-per-source")
	fs.DurationVar(&c.unauthenticatedIdleTimeout, "unauthenticated-idle-timeout", proxy.DefaultUnauthenticatedIdleTimeout, "close a client connection that never authenticated once it has waited this long for a request; authenticated keep-alive connections stay open for 2m")
	fs.BoolVar(&c.status, "status", true, "write Connector and ConnectorClass status (addresses, conditions, probes) and the host-form Services c-<name>, from the one node that holds the status Lease; turn off when an upstream controller owns status")
	fs.DurationVar(&c.statusProbeInterval, "status-probe-interval", 5*time.Minute, "time between liveness and auth probes of a healthy Connector (with jitter; failures retry sooner with backoff), and between status resyncs")
	fs.BoolVar(&c.checkPodNode, "check-pod-node", true, "refuse a token whose pod is bound to another node than --node-id; turn off only for a proxy that serves pods of other nodes (a central proxy)")
	fs.BoolVar(&c.checkPodSource, "check-pod-source-address", true, "refuse a connection whose source address is not the IP of the pod its token is bound to (one cached get of the pod per token); turn off where source addresses are rewritten: hostNetwork pods, SNAT, masquerade-all")
	fs.BoolVar(&c.allowUnboundTokens, "allow-unbound-tokens", false, "accept tokens bound to no pod (TokenRequest without a bound object); off, they get 401/407")
	fs.Float64Var(&c.kubeAPIQPS, "kube-api-qps", 50, "most requests per second to the Kubernetes API (client-side, over every client of the process); reviews, pod and Secret reads of new tokens wait beyond it")
	fs.IntVar(&c.kubeAPIBurst, "kube-api-burst", 100, "requests to the Kubernetes API allowed in a burst above --kube-api-qps")
	fs.BoolVar(&c.pprof, "pprof", false, "serve Go's /debug/pprof/ profiles on --ops-listen (heap, goroutines, CPU), to the users --metrics-auth allows; off by default")
	fs.BoolVar(&c.metricsAuth, "metrics-auth", true, "serve /metrics (and /debug/pprof/ with --pprof) only to a bearer token the API server accepts (TokenReview) whose user may get the path (a SubjectAccessReview on the non-resource URL, such as the ClusterRole connectors-node-metrics-reader grants); /healthz and /readyz stay open. Off serves them to anyone who reaches --ops-listen")
	fs.StringVar(&c.connectorsAPIListen, "connectors-api-listen", "", "address the Connectors API gateway listens on, host:port (/connectors/v1alpha1/<namespace>/<connector>/path/<api-path> for callers with their own Kubernetes token, on a listener apart from the workload proxy's so that it alone can be exposed through an Ingress); empty serves no gateway. Needs the proxy role")
	fs.BoolVar(&c.apisPermissions, "enable-connector-apis-permissions", false, "at the Connectors API gateway, also require the request method's verb (get, create, update, delete, patch) on the connectors/apis/<class> subresource, or on connectors/apis/<class>/<path> for a path of the class's OpenAPI description; off, get on the Connector is enough")
	fs.BoolVar(&c.apisWritePassthrough, "enable-connector-apis-write-passthrough", false, "let POST, PUT, DELETE and PATCH through the Connectors API gateway; off, they are answered 405 and only GET, HEAD and OPTIONS are served")
	fs.BoolVar(&c.releaseStartupPages, "release-startup-pages", true, "once the caches are synced and the servers listen, drop the resident pages of the binary's own code and read-only data that start-up touched (madvise MADV_PAGEOUT, then MADV_DONTNEED; MADV_RANDOM against read-ahead): they fault back in from the file as serving needs them, so RSS holds the serving working set, not the whole binary (about 14 instead of 57 MiB of file-backed RSS). Linux only; off keeps them resident")
	fs.BoolVar(&c.showVersion, "version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if c.showVersion {
		return c, nil
	}
	return c, c.validate()
}

func (c *config) validate() error {
	var errs []error
	bad := func(flag, format string, args ...any) {
		errs = append(errs, fmt.Errorf("--%s: %s", flag, fmt.Sprintf(format, args...)))
	}
	roles := c.roles()
	if len(roles) == 0 {
		bad("serve", "names no role: want csi, proxy or both")
	}
	for _, r := range roles {
		if r != roleCSI && r != roleProxy {
			bad("serve", "unknown role %q: want csi, proxy or both", r)
		}
	}
	if c.nodeID == "" && c.serves(roleCSI) {
		bad("node-id", "required (or set $NODE_NAME)")
	} else if c.nodeID == "" && c.checkPodNode {
		bad("node-id", "required by --check-pod-node (or set $NODE_NAME); a central proxy runs with --check-pod-node=false")
	}
	if c.caConfigMap == "" {
		bad("ca-configmap", "required")
	}
	if c.approval && !c.proxyPermissions {
		bad("enable-connectors-approval", "needs --enable-connector-proxy-permissions: approval gates the connectors/proxy permission")
	}
	if c.namespace == "" {
		bad("namespace", "required")
	}
	if c.caSecret == "" {
		bad("ca-secret", "required")
	}
	if c.auditLog == "" {
		bad("audit-log", "required: - for standard output, or a file")
	}
	if c.audience == "" {
		bad("audience", "required")
	}
	if !strings.HasPrefix(c.csiEndpoint, "unix://") || len(c.csiEndpoint) == len("unix://") {
		bad("csi-endpoint", "%q is not unix://<path>", c.csiEndpoint)
	}
	for name, addr := range map[string]string{"proxy-listen": c.proxyListen, "ops-listen": c.opsListen} {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			bad(name, "%q is not host:port", addr)
		}
	}
	if c.connectorsAPIListen != "" {
		if _, _, err := net.SplitHostPort(c.connectorsAPIListen); err != nil {
			bad("connectors-api-listen", "%q is not host:port", c.connectorsAPIListen)
		} else if !c.serves(roleProxy) {
			bad("connectors-api-listen", "the gateway runs in the proxy role, which --serve=%s leaves out", c.serve)
		}
	}
	if pub, err := publicurl.Parse(c.publicURL); err != nil {
		bad("public-url", "%v", err)
	} else {
		c.public = pub
	}
	if err := publicurl.CheckClusterDomain(c.clusterDomain); err != nil {
		bad("cluster-domain", "%v", err)
	}
	if _, err := c.denyNets(); err != nil {
		bad("deny-cidrs", "%v", err)
	}
	for name, d := range map[string]time.Duration{"secret-cache-ttl": c.secretTTL, "token-cache-ttl": c.tokenCacheTTL, "shutdown-timeout": c.shutdownTimeout, "api-outage-grace": c.apiOutageGrace, "status-probe-interval": c.statusProbeInterval} {
		if d <= 0 {
			bad(name, "must be positive, got %s", d)
		}
	}
	if c.shutdownDelay < 0 {
		bad("shutdown-delay", "must not be negative, got %s", c.shutdownDelay)
	}
	if c.kubeletRoot == "" || !filepath.IsAbs(c.kubeletRoot) {
		bad("kubelet-root", "%q is not an absolute path", c.kubeletRoot)
	}
	if c.maxConnections <= 0 {
		bad("max-connections", "must be positive, got %d", c.maxConnections)
	}
	switch {
	case c.maxConnectionsPerSource <= 0:
		bad("max-connections-per-source", "must be positive, got %d", c.maxConnectionsPerSource)
	case c.maxConnections > 0 && c.maxConnectionsPerSource > c.maxConnections:
		bad("max-connections-per-source", "%d is more than --max-connections=%d", c.maxConnectionsPerSource, c.maxConnections)
	}
	switch {
	case c.maxUnauthenticatedPerSource <= 0:
		bad("max-unauthenticated-per-source", "must be positive, got %d", c.maxUnauthenticatedPerSource)
	case c.maxConnectionsPerSource > 0 && c.maxUnauthenticatedPerSource > c.maxConnectionsPerSource:
		bad("max-unauthenticated-per-source", "%d is more than --max-connections-per-source=%d", c.maxUnauthenticatedPerSource, c.maxConnectionsPerSource)
	}
	if c.unauthenticatedIdleTimeout <= 0 {
		bad("unauthenticated-idle-timeout", "must be positive, got %s", c.unauthenticatedIdleTimeout)
	}
	if c.kubeAPIQPS <= 0 {
		bad("kube-api-qps", "must be positive, got %g", c.kubeAPIQPS)
	}
	if c.kubeAPIBurst <= 0 {
		bad("kube-api-burst", "must be positive, got %d", c.kubeAPIBurst)
	}
	if c.verbosity < 0 {
		bad("v", "must not be negative")
	}
	return errors.Join(errs...)
}

func (c *config) denyNets() ([]netip.Prefix, error) {
	var nets []netip.Prefix
	for _, s := range strings.Split(c.denyCIDRs, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		n, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("%q is not a CIDR", s)
		}
		nets = append(nets, n.Masked())
	}
	return nets, nil
}
