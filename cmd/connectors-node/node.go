package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/connectors-node/connectors-node/csi"
	"github.com/connectors-node/connectors-node/kube"
	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
	"github.com/connectors-node/connectors-node/kube/ca"
	"github.com/connectors-node/connectors-node/proxy"
	"github.com/connectors-node/connectors-node/proxy/policy"
	"github.com/connectors-node/connectors-node/status"
)

// node is the running service: caches, reviewer, the CSI server and the
// proxy (each nil when --serve leaves its role out) and the ops endpoints.
type node struct {
	cfg   *config
	log   logr.Logger
	cache *kube.Cache
	csi   *csi.Server
	proxy *proxy.Server
	// gateway serves the Connectors API; nil without --connectors-api-listen.
	gateway *proxy.Server
	ops     *http.Server
	// status writes Connector status while it holds the lease; nil with --status=false.
	status *status.Reconciler
	// ready reports whether the caches are synced and the CA loaded.
	ready func(context.Context) error
	// stopping is set on SIGTERM: /readyz fails from then on, while the
	// listeners serve on for --shutdown-delay.
	stopping atomic.Bool
}

func restConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig == "" {
		return rest.InClusterConfig()
	}
	return clientcmd.BuildConfigFromFlags("", kubeconfig)
}

func newNode(ctx context.Context, cfg *config, log logr.Logger, audit io.Writer) (*node, error) {
	rc, err := restConfig(cfg.kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client config: %w", err)
	}
	rc.UserAgent = "connectors-node/" + version
	rc.QPS, rc.Burst = float32(cfg.kubeAPIQPS), cfg.kubeAPIBurst
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, err
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	// One breaker for every client of the API server: an outage seen by
	// the reviews also fails uncached Secret reads fast, and back.
	breaker, err := kube.NewBreaker(kube.BreakerOptions{Probe: kube.ProbeVersion(client), Registerer: reg})
	if err != nil {
		return nil, err
	}
	cache, err := kube.NewCache(kube.CacheOptions{
		Config:      rc,
		SecretTTL:   cfg.secretTTL,
		OutageGrace: cfg.apiOutageGrace,
		Breaker:     breaker,
		Log:         log.WithName("cache"),
	})
	if err != nil {
		return nil, err
	}
	if err := cache.Start(ctx); err != nil {
		return nil, err
	}
	reviewMetrics := kube.NewReviewMetrics(reg)
	reviewer, err := kube.NewReviewer(kube.ReviewerOptions{
		Client:          client,
		Audience:        cfg.audience,
		ProxyPermission: cfg.proxyPermissions,
		// A pod-scoped grant counts for a token bound to that pod.
		PodProxyPermission: cfg.approval,
		TokenTTL:           cfg.tokenCacheTTL,
		Metrics:            reviewMetrics,
		OutageGrace:        cfg.apiOutageGrace,
		Breaker:            breaker,
	})
	if err != nil {
		return nil, err
	}
	binding, err := kube.NewPodBinding(kube.PodBindingOptions{
		Client:       client,
		NodeName:     cfg.nodeID,
		CheckNode:    cfg.checkPodNode,
		CheckSource:  cfg.checkPodSource,
		AllowUnbound: cfg.allowUnboundTokens,
		PodTTL:       cfg.tokenCacheTTL,
		OutageGrace:  cfg.apiOutageGrace,
		Breaker:      breaker,
	})
	if err != nil {
		return nil, err
	}
	cas, err := newCASource(ctx, cfg, client, log.WithName("ca"))
	if err != nil {
		return nil, err
	}
	var roots []byte
	if cfg.systemRoots != "" {
		if roots, err = os.ReadFile(cfg.systemRoots); err != nil { //nolint:gosec // the operator names the bundle with a flag
			return nil, fmt.Errorf("--system-roots: %w", err)
		}
	}

	// The roots for TLS to tools: the system pool plus the global CA
	// Secrets of the service's namespace, followed as they change.
	systemPool, err := x509.SystemCertPool()
	if err != nil {
		systemPool = x509.NewCertPool()
	}

	n := &node{cfg: cfg, log: log, cache: cache}
	var globalCAs *ca.GlobalCAs
	var pods *kube.PodWatch
	if cfg.serves(roleCSI) {
		events, err := kube.NewEventRecorder(ctx, client, csi.DriverName)
		if err != nil {
			return nil, err
		}
		var approvals csi.Approvals
		if cfg.approval {
			cl, err := newClient(rc)
			if err != nil {
				return nil, err
			}
			approvals = &kube.AccessRequests{Client: cl}
		}
		n.csi, err = csi.NewServer(csi.Options{
			NodeID:          cfg.nodeID,
			Endpoint:        cfg.csiEndpoint,
			Version:         version,
			Objects:         cache,
			Services:        cache,
			Authorizer:      reviewer,
			Approvals:       approvals,
			Ready:           func() bool { return cache.Synced() && cas.loaded() },
			Audience:        cfg.audience,
			PublicURL:       cfg.public,
			ClusterDomain:   cfg.clusterDomain,
			CABundle:        cas.bundle,
			SystemRootsPEM:  roots,
			TmpfsSize:       cfg.tmpfsSize,
			KubeletRoot:     cfg.kubeletRoot,
			ShutdownTimeout: cfg.shutdownTimeout,
			Log:             log,
			Registerer:      reg,
			Events:          events,
		})
		if err != nil {
			return nil, err
		}
	}

	if cfg.serves(roleProxy) {
		// Only the proxy role reads Secrets, the global CA ones included.
		globalCAs, err = ca.NewGlobalCAs(client, cfg.namespace, systemPool, log.WithName("global-ca"))
		if err != nil {
			return nil, err
		}
		globalCAs.Start(ctx)
		if pods, err = watchPods(ctx, cfg, rc, breaker, reviewer, binding, log); err != nil {
			return nil, err
		}
		// A class whose Rego policy does not compile is reported when it is
		// listed at startup and whenever it changes, not only on first use.
		policies := policy.New(policy.Options{Log: log.WithName("policy"), Registerer: reg})
		if err := cache.OnConnectorClass(ctx, func(cc *v1alpha1.ConnectorClass) { policies.Check(cc) }, policies.Forget); err != nil {
			return nil, err
		}
		denied, _ := cfg.denyNets()
		p, err := proxy.New(proxy.Options{
			Policies:              policies,
			Objects:               cache,
			Auth:                  reviewer,
			Binding:               binding,
			SigningCA:             cas.signing,
			PublicURL:             cfg.public,
			ClusterDomain:         cfg.clusterDomain,
			AllowUnmatchedTunnels: cfg.allowUnmatchedTunnels,
			AllowLoopback:         cfg.allowLoopback,
			UpstreamFastPath:      cfg.upstreamFastPath,
			DenyCIDRs:             denied,
			Roots:                 globalCAs,
			AuditLog:              audit,
			Log:                   log.WithName("proxy"),
			Registerer:            reg,
		})
		if err != nil {
			return nil, err
		}
		limits := proxy.ServerOptions{
			Addr:                        cfg.proxyListen,
			MaxConnections:              cfg.maxConnections,
			MaxConnectionsPerSource:     cfg.maxConnectionsPerSource,
			MaxUnauthenticatedPerSource: cfg.maxUnauthenticatedPerSource,
			UnauthenticatedIdleTimeout:  cfg.unauthenticatedIdleTimeout,
		}
		n.proxy = p.NewServer(limits)
		if cfg.connectorsAPIListen != "" {
			if n.gateway, err = newGateway(cfg, client, p, breaker, reviewMetrics, limits); err != nil {
				return nil, err
			}
		}
		// Probes send the Connector's credential, so the status writer
		// runs where the proxy (and its Secret access) does.
		if cfg.status {
			if n.status, err = newStatus(cfg, rc, client, cache, p, cas.bundle(), log, reg); err != nil {
				return nil, err
			}
		}
	}
	ready := func(context.Context) error {
		if n.stopping.Load() {
			return errors.New("shutting down")
		}
		if !cache.Synced() {
			return errors.New("caches not synced")
		}
		if globalCAs != nil && !globalCAs.Synced() {
			return errors.New("global CA secrets not synced")
		}
		if pods != nil && !pods.Synced() {
			return errors.New("pod watch not synced")
		}
		if !cas.loaded() {
			return errors.New("proxy CA certificates not loaded")
		}
		return nil
	}
	n.ready = ready
	var guard func(http.Handler) http.Handler
	if cfg.metricsAuth {
		if guard, err = newOpsGuard(cfg, rc, reviewMetrics, log.WithName("ops")); err != nil {
			return nil, err
		}
	}
	n.ops = &http.Server{
		Addr:              cfg.opsListen,
		Handler:           newOpsHandler(ready, reg, cfg.pprof, guard),
		ReadHeaderTimeout: 5 * time.Second,
	}
	return n, nil
}

// newGateway builds the Connectors API gateway's server: a reviewer of its
// own for the API server's audiences (people's and ServiceAccounts' own
// tokens), sharing the proxy's client, breaker and review metrics (as the
// api-token and api-access series), with the proxy's connection limits.
func newGateway(cfg *config, client kubernetes.Interface, p *proxy.Proxy, breaker *kube.Breaker,
	metrics *kube.ReviewMetrics, limits proxy.ServerOptions) (*proxy.Server, error) {
	reviewer, err := kube.NewReviewer(kube.ReviewerOptions{
		Client:        client,
		APIAudiences:  true,
		TokenTTL:      cfg.tokenCacheTTL,
		Metrics:       metrics,
		MetricsPrefix: "api-",
		OutageGrace:   cfg.apiOutageGrace,
		Breaker:       breaker,
	})
	if err != nil {
		return nil, err
	}
	h, err := p.Gateway(proxy.GatewayOptions{
		Auth:             reviewer,
		APIPermissions:   cfg.apisPermissions,
		WritePassthrough: cfg.apisWritePassthrough,
	})
	if err != nil {
		return nil, err
	}
	limits.Addr = cfg.connectorsAPIListen
	return p.NewGatewayServer(h, limits), nil
}

// watchPods starts the watch that ends a deleted pod's tokens within
// seconds: the pods of this node (kubelet's scope) with --check-pod-node,
// else every pod, for a proxy that serves them all. Both are metadata
// only, trimmed to names and UIDs.
func watchPods(ctx context.Context, cfg *config, rc *rest.Config, breaker *kube.Breaker, reviewer *kube.Reviewer, binding *kube.PodBinding, log logr.Logger) (*kube.PodWatch, error) {
	node := ""
	if cfg.checkPodNode {
		node = cfg.nodeID
	}
	w, err := kube.NewPodWatch(kube.PodWatchOptions{
		Config:   rc,
		NodeName: node,
		Breaker:  breaker,
		Log:      log.WithName("pods"),
		Deleted: func(pod kube.PodRef) {
			reviewer.ForgetPod(pod.UID)
			binding.ForgetPod(pod)
		},
	})
	if err != nil {
		return nil, err
	}
	w.Start(ctx)
	return w, nil
}

// failed reports whether ctx ended because a server failed, not on a signal.
func failed(ctx context.Context) bool {
	err := context.Cause(ctx)
	return err != nil && !errors.Is(err, context.Canceled)
}

// csiDone is closed when the CSI server stops serving; never without one.
func (n *node) csiDone() <-chan struct{} {
	if n.csi == nil {
		return nil
	}
	return n.csi.Done()
}

// serve runs every server until ctx ends or one fails, then stops them in
// order: the proxy drains its requests, the CSI server its calls, and the ops
// endpoints go last so probes answer during the drain.
func (n *node) serve(ctx context.Context) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	if n.csi != nil {
		if err := n.csi.Start(); err != nil {
			return err
		}
		go func() {
			select {
			case <-n.csi.Done():
				cancel(fmt.Errorf("csi server stopped: %w", n.csi.Err()))
			case <-ctx.Done():
			}
		}()
	}
	listen := func(addr, what string, serve func(net.Listener) error) error {
		var lc net.ListenConfig
		ln, err := lc.Listen(ctx, "tcp", addr)
		if err != nil {
			return fmt.Errorf("%s listener: %w", what, err)
		}
		// Neither listener may be a target of the proxy.
		if n.proxy != nil {
			n.proxy.RefuseAddr(ln.Addr())
		}
		go func() {
			if err := serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				cancel(fmt.Errorf("%s server: %w", what, err))
			}
		}()
		n.log.Info("listening", "server", what, "address", ln.Addr().String())
		return nil
	}
	if err := listen(n.ops.Addr, "ops", n.ops.Serve); err != nil {
		return err
	}
	if n.proxy != nil {
		if err := listen(n.proxy.HTTP.Addr, "proxy", n.proxy.Serve); err != nil {
			return err
		}
	}
	if n.gateway != nil {
		if err := listen(n.gateway.HTTP.Addr, "connectors-api", n.gateway.Serve); err != nil {
			return err
		}
	}
	statusDone := n.runStatus(ctx)
	go n.releaseStartupPages(ctx)
	<-ctx.Done()
	n.stopping.Store(true)
	n.log.Info("shutting down", "delay", n.cfg.shutdownDelay.String())
	// The status writer stops first and releases its lease, so another
	// node takes over at once.
	<-statusDone
	// Not ready from now on, but still serving: endpoints drop this pod
	// and kube-proxy moves new connections to another instance (the one a
	// surge started on this node) before the listeners close. A failed
	// server ends the wait.
	if n.cfg.shutdownDelay > 0 && !failed(ctx) {
		t := time.NewTimer(n.cfg.shutdownDelay)
		select {
		case <-t.C:
		case <-n.csiDone():
		}
		t.Stop()
	}

	stopCtx, stop := context.WithTimeout(context.Background(), n.cfg.shutdownTimeout)
	defer stop()
	if n.gateway != nil {
		if err := n.gateway.Shutdown(stopCtx); err != nil {
			n.log.Error(err, "connectors API gateway did not drain in time")
		}
	}
	if n.proxy != nil {
		if err := n.proxy.Shutdown(stopCtx); err != nil {
			n.log.Error(err, "proxy did not drain in time")
		}
	}
	if n.csi != nil {
		n.csi.Stop(stopCtx)
	}
	shortCtx, stopOps := context.WithTimeout(context.Background(), time.Second)
	defer stopOps()
	_ = n.ops.Shutdown(shortCtx)
	n.log.Info("stopped")
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}
