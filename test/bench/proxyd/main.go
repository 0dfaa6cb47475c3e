// Command proxyd runs the Connectors proxy for the benchmark: proxy.New with
// in-memory Connectors and Secrets, and a real kube.Reviewer over a fake
// clientset whose TokenReview and SubjectAccessReview calls are counted.
// Every *.bench.test name resolves to 127.0.0.1. The ops listener serves
// /metrics, /stats (review calls and leaf certificates as JSON) and, with
// -pprof, /debug/pprof/.
package main

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/klog/v2/textlogger"

	"github.com/connectors-node/connectors-node/kube"
	"github.com/connectors-node/connectors-node/kube/ca"
	"github.com/connectors-node/connectors-node/proxy"
)

// audience is the token audience the bench reviewer requires.
const audience = "connectors-proxy"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "proxyd: %v\n", err)
		os.Exit(1)
	}
}

type config struct {
	listen, ops        string
	upHTTP, upHTTPS    string
	upCA, caOut, logTo string
	pprof              bool
	fastPath           bool
}

func parseFlags(args []string) (config, error) {
	var c config
	fs := flag.NewFlagSet("proxyd", flag.ContinueOnError)
	fs.StringVar(&c.listen, "listen", "127.0.0.1:18080", "proxy listen address")
	fs.StringVar(&c.ops, "ops", "127.0.0.1:18081", "ops listen address (/metrics, /stats)")
	fs.StringVar(&c.upHTTP, "upstream-http", "", "plain HTTP upstream host:port (required)")
	fs.StringVar(&c.upHTTPS, "upstream-https", "", "HTTPS upstream host:port (required)")
	fs.StringVar(&c.upCA, "upstream-ca", "", "PEM file of the upstream CA (required)")
	fs.StringVar(&c.caOut, "ca-out", "", "file to write the proxy CA certificate to (required)")
	fs.StringVar(&c.logTo, "log", "", "audit log file (default: standard output)")
	fs.BoolVar(&c.pprof, "pprof", false, "serve /debug/pprof/ on the ops listener")
	fs.BoolVar(&c.fastPath, "upstream-fast-path", false, "send bodiless requests to plain http:// upstreams through the lean HTTP/1.1 client (proxy.Options.UpstreamFastPath)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if c.upHTTP == "" || c.upHTTPS == "" || c.upCA == "" || c.caOut == "" {
		return c, errors.New("-upstream-http, -upstream-https, -upstream-ca and -ca-out are required")
	}
	return c, nil
}

func run(ctx context.Context, args []string) error {
	cfg, err := parseFlags(args)
	if err != nil {
		return err
	}
	logOut := &countingWriter{w: os.Stdout}
	if cfg.logTo != "" {
		f, err := os.Create(cfg.logTo)
		if err != nil {
			return err
		}
		defer func() { _ = f.Close() }()
		logOut.w = f
	}
	roots, err := readRoots(cfg.upCA)
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	client, counts := countingClientset()
	reviewer, err := kube.NewReviewer(kube.ReviewerOptions{Client: client, Audience: audience,
		Metrics: kube.NewReviewMetrics(reg)})
	if err != nil {
		return err
	}
	authority, err := ca.NewCA("bench proxy CA", time.Now())
	if err != nil {
		return err
	}
	if err := os.WriteFile(cfg.caOut, authority.CertPEM, 0o600); err != nil {
		return err
	}
	p, err := proxy.New(proxy.Options{
		Objects:       newObjects("http://up.bench.test:"+portOf(cfg.upHTTP), "https://up.bench.test:"+portOf(cfg.upHTTPS)),
		Auth:          reviewer,
		CA:            authority,
		AllowLoopback: true,
		Resolver:      resolveBench,
		UpstreamRoots: roots,
		AuditLog:      logOut,
		Log:           textlogger.NewLogger(textlogger.NewConfig(textlogger.Output(os.Stderr))),
		Registerer:    reg,

		UpstreamFastPath: cfg.fastPath,
	})
	if err != nil {
		return err
	}
	return serve(ctx, cfg, p, opsHandler(reg, counts, logOut, cfg.pprof))
}

// serve runs the proxy and ops servers until ctx ends, then drains them.
func serve(ctx context.Context, cfg config, p *proxy.Proxy, ops http.Handler) error {
	var lc net.ListenConfig
	pl, err := lc.Listen(ctx, "tcp", cfg.listen)
	if err != nil {
		return err
	}
	ol, err := lc.Listen(ctx, "tcp", cfg.ops)
	if err != nil {
		return err
	}
	// The load connects from one loopback address in place of many pods.
	srv := p.NewServer(proxy.ServerOptions{
		MaxConnectionsPerSource:     proxy.DefaultMaxConnections,
		MaxUnauthenticatedPerSource: proxy.DefaultMaxConnections,
	})
	opsSrv := &http.Server{Handler: ops, ReadHeaderTimeout: 5 * time.Second}
	errs := make(chan error, 2)
	go func() { errs <- srv.Serve(pl) }()
	go func() { errs <- opsSrv.Serve(ol) }()
	select {
	case <-ctx.Done():
	case err := <-errs:
		return err
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return errors.Join(srv.Shutdown(sctx), opsSrv.Shutdown(sctx))
}

func readRoots(file string) ([]*x509.Certificate, error) {
	raw, err := os.ReadFile(file) //nolint:gosec // G304: the operator names the file with a flag
	if err != nil {
		return nil, err
	}
	var out []*x509.Certificate
	for {
		var b *pem.Block
		b, raw = pem.Decode(raw)
		if b == nil {
			break
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no certificate", file)
	}
	return out, nil
}

func portOf(hostport string) string {
	_, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return hostport
	}
	return port
}

// resolveBench maps every *.bench.test name to 127.0.0.1.
func resolveBench(_ context.Context, host string) ([]netip.Addr, error) {
	if strings.HasSuffix(host, ".bench.test") {
		return []netip.Addr{netip.AddrFrom4([4]byte{127, 0, 0, 1})}, nil
	}
	return nil, &net.DNSError{Err: "not a bench host", Name: host, IsNotFound: true}
}
