package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/connectors-node/connectors-node/test/servers/testpki"

	"github.com/connectors-node/connectors-node/test/servers/registry"
)

// Credentials of the benchmark registry and the client token; loopback
// only, thrown away with the run.
const (
	regUser     = "bench-robot"
	regPassword = "bench-registry-password"
	clientToken = "bench-client-token"
	regName     = "reg.bench.test"
)

// result is one timed crane run.
type result struct {
	mode, op string
	d        time.Duration
}

func runBench(ctx context.Context, args []string) error {
	f, err := parseBenchFlags(args)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	crane, err := filepath.Abs(f.crane)
	if err != nil {
		return err
	}
	if _, err := os.Stat(crane); err != nil {
		return fmt.Errorf("crane not found (make tools): %w", err)
	}
	work, err := os.MkdirTemp("", "registry-bench-")
	if err != nil {
		return err
	}
	if !f.keep {
		defer func() { _ = os.RemoveAll(work) }()
	}
	ca, err := testpki.NewCA("bench-registry-ca")
	if err != nil {
		return err
	}
	certPEM, keyPEM, err := ca.Issue(regName, "localhost", "127.0.0.1")
	if err != nil {
		return err
	}
	tokens, err := registry.NewTokenService("bench-issuer", regName, regUser, regPassword, 10*time.Minute)
	if err != nil {
		return err
	}
	authPort, err := registry.ServeTLS(ctx, tokens, certPEM, keyPEM)
	if err != nil {
		return err
	}
	// The realm is on localhost so that crane, going direct, resolves it
	// without /etc/hosts entries (crane refuses IP-literal realms on
	// loopback); for the proxy it is the Connector's address extension.
	realm := "https://localhost:" + authPort + "/token"
	regDir := filepath.Join(work, "registry")
	if err := os.Mkdir(regDir, 0o700); err != nil {
		return err
	}
	srv, err := registry.Start(ctx, registry.Config{Dir: regDir, CertPEM: certPEM, KeyPEM: keyPEM, CAPEM: ca.PEM,
		Token: &registry.Token{Realm: realm, Service: regName, Issuer: "bench-issuer", RootCertPEM: tokens.CertPEM}})
	if err != nil {
		return err
	}
	defer srv.Stop()

	fmt.Printf("writing a %d MiB image...\n", f.mib)
	image := filepath.Join(work, "image")
	digest, err := registry.WriteImage(image, "latest", f.mib<<20)
	if err != nil {
		return err
	}
	px, err := startProxy(ctx, work, proxySpec{Token: clientToken, Address: "https://" + regName + ":" + srv.Port,
		Realm: realm, User: regUser, Password: regPassword, UpstreamCA: string(ca.PEM)})
	if err != nil {
		return err
	}
	defer px.stop()
	envs, err := clientEnvs(work, ca.PEM, px, srv.Port)
	if err != nil {
		return err
	}
	base, err := px.rss()
	if err != nil {
		return err
	}
	sampler := newRSSSampler(px.cmd.Process.Pid)
	defer sampler.stop()

	var results []result
	for run := range max(f.runs, 1) {
		for _, m := range envs {
			rs, err := pushPull(ctx, work, crane, image, digest, m, run)
			if err != nil {
				return err
			}
			results = append(results, rs...)
		}
	}
	peak := sampler.stop()
	report(f.mib, results, base, peak, tokens.Counts())
	return nil
}

// pushPull pushes the image to a repository of its own for this run (so
// every push uploads every byte) and pulls it back.
func pushPull(ctx context.Context, work, crane, image, digest string, m mode, run int) ([]result, error) {
	var results []result
	{
		ref := fmt.Sprintf("%s/%s/app%d:v1", m.registry, m.mode, run)
		d, err := timed(ctx, work, m.env, crane, append([]string{"push"}, append(m.flags, image, ref)...)...)
		if err != nil {
			return nil, fmt.Errorf("%s push: %w", m.mode, err)
		}
		results = append(results, result{m.mode, "push", d})
		out := filepath.Join(work, "pulled-"+m.mode)
		d, err = timed(ctx, work, m.env, crane, append([]string{"pull", "--format", "oci"}, append(m.flags, ref, out)...)...)
		if err != nil {
			return nil, fmt.Errorf("%s pull: %w", m.mode, err)
		}
		results = append(results, result{m.mode, "pull", d})
		got, err := registry.ManifestDigest(out, "")
		if err != nil {
			return nil, fmt.Errorf("%s pull: %w", m.mode, err)
		}
		if got != digest {
			return nil, fmt.Errorf("%s pull: digest %s, want %s", m.mode, got, digest)
		}
		_ = os.RemoveAll(out)
	}
	return results, nil
}

// mode is how a client reaches the registry.
type mode struct {
	mode     string
	registry string // registry part of the image reference
	env      []string
	flags    []string
}

// clientEnvs builds the three client set-ups: direct with the registry
// credential, reverse with a config.json holding only the client token,
// forward with https_proxy and the proxy CA.
func clientEnvs(work string, regCA []byte, px *proxyProc, regPort string) ([]mode, error) {
	write := func(dir, name string, data []byte) (string, error) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return "", err
		}
		p := filepath.Join(dir, name)
		return p, os.WriteFile(p, data, 0o600)
	}
	authJSON := func(host, user, pass string) []byte {
		b, _ := json.Marshal(map[string]any{"auths": map[string]any{
			host: map[string]string{"auth": base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))}}})
		return b
	}
	direct, reverse, forward := filepath.Join(work, "direct"), filepath.Join(work, "reverse"), filepath.Join(work, "forward")
	regCAFile, err := write(direct, "ca.crt", regCA)
	if err != nil {
		return nil, err
	}
	if _, err := write(direct, "config.json", authJSON("127.0.0.1:"+regPort, regUser, regPassword)); err != nil {
		return nil, err
	}
	if _, err := write(reverse, "config.json", authJSON(px.addr, benchNS+"/"+benchName, clientToken)); err != nil {
		return nil, err
	}
	if _, err := write(forward, "config.json", []byte(`{"auths":{}}`)); err != nil {
		return nil, err
	}
	base := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + work, "SSL_CERT_DIR=", "no_proxy=", "NO_PROXY=", "http_proxy=", "HTTP_PROXY="}
	proxyURL := "http://" + benchNS + "%2F" + benchName + ":" + clientToken + "@" + px.addr
	return []mode{
		{mode: "direct", registry: "127.0.0.1:" + regPort,
			env: append(base, "DOCKER_CONFIG="+direct, "SSL_CERT_FILE="+regCAFile, "https_proxy=", "HTTPS_PROXY=")},
		{mode: "reverse", registry: px.addr + "/namespaces/" + benchNS + "/connectors/" + benchName, flags: []string{"--insecure"},
			env: append(base, "DOCKER_CONFIG="+reverse, "SSL_CERT_FILE=", "https_proxy=", "HTTPS_PROXY=")},
		{mode: "forward", registry: regName + ":" + regPort,
			env: append(base, "DOCKER_CONFIG="+forward, "SSL_CERT_FILE="+px.caFile, "https_proxy="+proxyURL, "HTTPS_PROXY="+proxyURL)},
	}, nil
}

func timed(ctx context.Context, dir string, env []string, name string, args ...string) (time.Duration, error) {
	cmd := exec.CommandContext(ctx, name, args...) //nolint:gosec // G204: runs crane with arguments this program built
	cmd.Dir, cmd.Env = dir, env
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("%w\n%s", err, out)
	}
	return time.Since(start), nil
}

func report(mib int64, results []result, base, peak int64, counts map[string]int) {
	times := map[string][]time.Duration{}
	var order []string
	for _, r := range results {
		k := r.mode + " " + r.op
		if _, ok := times[k]; !ok {
			order = append(order, k)
		}
		times[k] = append(times[k], r.d)
	}
	median := func(k string) time.Duration {
		ds := slices.Sorted(slices.Values(times[k]))
		return ds[len(ds)/2]
	}
	fmt.Printf("\nimage layer %d MiB, crane, docker-registry with token auth, loopback; median of %d runs\n",
		mib, len(times[order[0]]))
	fmt.Printf("%-8s %-5s %9s %10s %9s\n", "mode", "op", "seconds", "MiB/s", "vs direct")
	for _, k := range order {
		mode, op, _ := strings.Cut(k, " ")
		d := median(k)
		ratio := median("direct "+op).Seconds() / d.Seconds()
		fmt.Printf("%-8s %-5s %9.2f %10.1f %8.2fx\n", mode, op, d.Seconds(), float64(mib)/d.Seconds(), ratio)
	}
	fmt.Printf("\nproxy VmRSS: %.1f MiB before, %.1f MiB peak, growth %.1f MiB\n",
		float64(base)/1024, float64(peak)/1024, float64(peak-base)/1024)
	fmt.Println("\ntoken fetches per scope (all modes; direct fetches are crane's own):")
	scopes := make([]string, 0, len(counts))
	for s := range counts {
		scopes = append(scopes, s)
	}
	sort.Strings(scopes)
	for _, s := range scopes {
		name := s
		if name == "" {
			name = "(no scope)"
		}
		fmt.Printf("  %-45s %d\n", name, counts[s])
	}
	if len(scopes) == 0 {
		fmt.Println("  none")
	}
}

var errNoRSS = errors.New("VmRSS not found")

// readRSS reads VmRSS of pid in KiB.
func readRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kb int64
			_, err := fmt.Sscanf(strings.TrimSpace(v), "%d kB", &kb)
			return kb, err
		}
	}
	return 0, errNoRSS
}
