package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
	"github.com/connectors-node/connectors-node/kube/ca"
	"github.com/connectors-node/connectors-node/proxy"
	"github.com/connectors-node/connectors-node/test/fake"
)

// proxySpec is what the orchestrator tells the proxy process (JSON file).
type proxySpec struct {
	// Token is the only client token the fake reviewer accepts.
	Token string `json:"token"`
	// Address and Realm are the registry Connector's address and its
	// token realm (an address extension).
	Address string `json:"address"`
	Realm   string `json:"realm"`
	// User and Password go into the registry token Secret.
	User     string `json:"user"`
	Password string `json:"password"`
	// UpstreamCA is the PEM of the registry's CA.
	UpstreamCA string `json:"upstreamCA"`
}

// startCPUProfile writes the proxy process's CPU profile to path until
// the returned stop is called.
func startCPUProfile(path string) (func(), error) {
	f, err := os.Create(path) //nolint:gosec // a path the operator gives
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "cpu profile: %v\n", err)
		}
	}, nil
}

// Connector of the benchmark.
const (
	benchNS, benchName = "bench", "reg"
)

// runProxy serves the proxy on 127.0.0.1:0 with the spec in -spec, writes
// its CA to <dir>/ca.crt and its address to <dir>/addr, and runs until ctx
// ends.
func runProxy(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("proxy", flag.ContinueOnError)
	dir := fs.String("dir", "", "directory with spec.json; ca.crt and addr are written here")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if path := os.Getenv("BENCH_CPUPROFILE"); path != "" {
		stop, err := startCPUProfile(path)
		if err != nil {
			return err
		}
		defer stop()
	}
	b, err := os.ReadFile(filepath.Join(*dir, "spec.json"))
	if err != nil {
		return err
	}
	var spec proxySpec
	if err := json.Unmarshal(b, &spec); err != nil {
		return fmt.Errorf("spec.json: %w", err)
	}
	authority, err := ca.NewCA("bench-proxy-ca", time.Now())
	if err != nil {
		return err
	}
	blk, _ := pem.Decode([]byte(spec.UpstreamCA))
	if blk == nil {
		return errors.New("spec.json: upstreamCA holds no PEM")
	}
	root, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return err
	}
	p, err := proxy.New(proxy.Options{
		Objects: newObjects(spec), Auth: newAuth(spec.Token), CA: authority,
		AllowLoopback: true, Resolver: benchResolver, UpstreamRoots: []*x509.Certificate{root},
	})
	if err != nil {
		return err
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	// The load connects from one loopback address in place of many pods.
	srv := p.NewServer(proxy.ServerOptions{
		MaxConnectionsPerSource:     proxy.DefaultMaxConnections,
		MaxUnauthenticatedPerSource: proxy.DefaultMaxConnections,
	})
	if err := os.WriteFile(filepath.Join(*dir, "ca.crt"), authority.CertPEM, 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(*dir, "addr"), []byte(ln.Addr().String()), 0o600); err != nil {
		return err
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

// benchResolver maps localhost and *.bench.test to 127.0.0.1.
func benchResolver(_ context.Context, host string) ([]netip.Addr, error) {
	if host == "localhost" || strings.HasSuffix(host, ".bench.test") {
		return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
	}
	return nil, &net.DNSError{Err: "not a bench name", Name: host, IsNotFound: true}
}

// newAuth accepts one token, a ServiceAccount of the bench namespace
// allowed every Connector.
func newAuth(token string) *fake.Auth {
	a := fake.NewAuth()
	a.AddToken(token, benchNS, "builder")
	a.AllowAll()
	return a
}

// newObjects holds the one Connector and its Secret.
func newObjects(spec proxySpec) *fake.Objects {
	raw, _ := json.Marshal(spec.Realm)
	c := &v1alpha1.Connector{ObjectMeta: metav1.ObjectMeta{Namespace: benchNS, Name: benchName}}
	c.Spec.Address = spec.Address
	c.Spec.AddressExtensions = []v1alpha1.Param{{Name: "realm", Value: apiextensionsv1.JSON{Raw: raw}}}
	c.Spec.Auth.SecretRef = &corev1.ObjectReference{Name: "reg"}
	o := fake.NewObjects()
	o.AddConnector(c)
	o.AddSecret(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: benchNS, Name: "reg"}, Type: proxy.SecretTypeRegistryToken,
		Data: map[string][]byte{"username": []byte(spec.User), "password": []byte(spec.Password)}})
	return o
}
