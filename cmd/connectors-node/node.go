package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
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
	"github.com/connectors-node/connectors-node/proxy"
	"github.com/connectors-node/connectors-node/proxy/policy"
)

// node is the running service: caches, reviewer, CSI server, proxy and the
// ops endpoints.
type node struct {
	cfg   *config
	log   logr.Logger
	cache *kube.Cache
	csi   *csi.Server
	proxy *proxy.Server
	ops   *http.Server
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
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, err
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	cache, err := kube.NewCache(kube.CacheOptions{Config: rc, SecretTTL: cfg.secretTTL, Log: log.WithName("cache")})
	if err != nil {
		return nil, err
	}
	if err := cache.Start(ctx); err != nil {
		return nil, err
	}
	reviewer, err := kube.NewReviewer(kube.ReviewerOptions{
		Client:          client,
		Audience:        cfg.audience,
		ProxyPermission: cfg.proxyPermissions,
		TokenTTL:        cfg.tokenCacheTTL,
		Metrics:         kube.NewReviewMetrics(reg),
	})
	if err != nil {
		return nil, err
	}
	ca, err := kube.LoadOrCreateCA(ctx, client, cfg.namespace, cfg.caSecret)
	if err != nil {
		return nil, err
	}
	var roots []byte
	if cfg.systemRoots != "" {
		if roots, err = os.ReadFile(cfg.systemRoots); err != nil { //nolint:gosec // the operator names the bundle with a flag
			return nil, fmt.Errorf("--system-roots: %w", err)
		}
	}

	csiServer, err := csi.NewServer(csi.Options{
		NodeID:          cfg.nodeID,
		Endpoint:        cfg.csiEndpoint,
		Version:         version,
		Objects:         cache,
		Authorizer:      reviewer,
		Ready:           cache.Synced,
		Audience:        cfg.audience,
		PublicURL:       cfg.publicURL,
		CACertPEM:       ca.CertPEM,
		SystemRootsPEM:  roots,
		TmpfsSize:       cfg.tmpfsSize,
		ShutdownTimeout: cfg.shutdownTimeout,
		Log:             log,
		Registerer:      reg,
	})
	if err != nil {
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
		CA:                    ca,
		PublicURL:             cfg.publicURL,
		ClusterDomain:         cfg.clusterDomain,
		AllowUnmatchedTunnels: cfg.allowUnmatchedTunnels,
		AllowLoopback:         cfg.allowLoopback,
		DenyCIDRs:             denied,
		AuditLog:              audit,
		Log:                   log.WithName("proxy"),
		Registerer:            reg,
	})
	if err != nil {
		return nil, err
	}
	ready := func(context.Context) error {
		if !cache.Synced() {
			return errors.New("caches not synced")
		}
		return nil
	}
	return &node{
		cfg:   cfg,
		log:   log,
		cache: cache,
		csi:   csiServer,
		proxy: p.NewServer(proxy.ServerOptions{Addr: cfg.proxyListen}),
		ops: &http.Server{
			Addr:              cfg.opsListen,
			Handler:           newOpsHandler(ready, reg),
			ReadHeaderTimeout: 5 * time.Second,
		},
	}, nil
}

// serve runs every server until ctx ends or one fails, then stops them in
// order: the proxy drains its requests, the CSI server its calls, and the ops
// endpoints go last so probes answer during the drain.
func (n *node) serve(ctx context.Context) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
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
	listen := func(addr, what string, serve func(net.Listener) error) error {
		var lc net.ListenConfig
		ln, err := lc.Listen(ctx, "tcp", addr)
		if err != nil {
			return fmt.Errorf("%s listener: %w", what, err)
		}
		// Neither listener may be a target of the proxy.
		n.proxy.RefuseAddr(ln.Addr())
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
	if err := listen(n.proxy.HTTP.Addr, "proxy", n.proxy.Serve); err != nil {
		return err
	}
	<-ctx.Done()
	n.log.Info("shutting down")

	stopCtx, stop := context.WithTimeout(context.Background(), n.cfg.shutdownTimeout)
	defer stop()
	if err := n.proxy.Shutdown(stopCtx); err != nil {
		n.log.Error(err, "proxy did not drain in time")
	}
	n.csi.Stop(stopCtx)
	shortCtx, stopOps := context.WithTimeout(context.Background(), time.Second)
	defer stopOps()
	_ = n.ops.Shutdown(shortCtx)
	n.log.Info("stopped")
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}
