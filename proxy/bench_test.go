package proxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/connectors-node/connectors-node/kube/ca"
)

func BenchmarkLeafCached(b *testing.B) {
	authority, err := ca.NewCA("t", time.Now())
	if err != nil {
		b.Fatal(err)
	}
	c := newLeafCache(func() *ca.CA { return authority }, 1024, 24*time.Hour, time.Now, newMetrics(nil))
	if _, err := c.get("git.example.test"); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.get("git.example.test"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLeafIssue(b *testing.B) {
	authority, err := ca.NewCA("t", time.Now())
	if err != nil {
		b.Fatal(err)
	}
	c := newLeafCache(func() *ca.CA { return authority }, 1024, 24*time.Hour, time.Now, newMetrics(nil))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.issue("git.example.test", authority); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReverseRoundTrip measures a small keep-alive GET through the
// reverse proxy (fake auth, injected Basic credential) to a plain upstream.
func BenchmarkReverseRoundTrip(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	b.Cleanup(up.Close)
	o := newFakeObjects()
	o.secret("team-a", "basic", "kubernetes.io/basic-auth", map[string]string{"username": "u", "password": "p"})
	o.connector("team-a", "api", "http://api.example.test:"+port(b, up), "basic")
	e := startEnv(b, o, nil)
	client := &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 4}}
	u := e.url + "/namespaces/team-a/connectors/api/x"
	b.ReportAllocs()
	roundTrips(b, client, u)
}

// BenchmarkReverseRoundTripGenerator is BenchmarkReverseRoundTrip with the
// credential injected by a class generator (an X-Api-Key header from an
// Opaque Secret) instead of the built-in Basic value; the difference is
// what a generator costs per request. cpu-ns/op is the process's CPU time
// per request (client, proxy and upstream together).
func BenchmarkReverseRoundTripGenerator(b *testing.B) {
	for _, withGenerator := range []bool{false, true} {
		name := "builtin-basic"
		if withGenerator {
			name = "generator"
		}
		b.Run(name, func(b *testing.B) {
			up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				_, _ = io.WriteString(w, "ok")
			}))
			b.Cleanup(up.Close)
			o := newFakeObjects()
			o.secret("team-a", "basic", "kubernetes.io/basic-auth", map[string]string{"username": "u", "password": "p"})
			o.secret("team-a", "key", "Opaque", map[string]string{"apikey": "k"})
			if withGenerator {
				o.class(regoClass("apikey", apiKeyGenerator, ""))
				c := o.connector("team-a", "api", "http://api.example.test:"+port(b, up), "key")
				c.Spec.ConnectorClassName, c.Spec.Auth.Name = "apikey", "token"
			} else {
				o.connector("team-a", "api", "http://api.example.test:"+port(b, up), "basic")
			}
			e := startEnv(b, o, nil)
			client := &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 4}}
			u := e.url + "/namespaces/team-a/connectors/api/x"
			b.ReportAllocs()
			start := processCPU()
			roundTrips(b, client, u)
			b.ReportMetric(float64((processCPU()-start).Nanoseconds())/float64(b.N), "cpu-ns/op")
		})
	}
}

// processCPU is the CPU time the process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// roundTrips sends GET u with tokA until the benchmark is done.
func roundTrips(b *testing.B, client *http.Client, u string) {
	b.Helper()
	for b.Loop() {
		req := newRequest(b, http.MethodGet, u, nil)
		req.Header.Set("Authorization", "Bearer "+tokA)
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatal(resp.StatusCode)
		}
	}
}

// BenchmarkReverseRoundTripFastPath is BenchmarkReverseRoundTrip with the
// upstream sent through net/http's transport and through the upstream fast
// path, interleaved in one run; cpu-ns/op is the process's CPU time per
// request (client, proxy and upstream together).
func BenchmarkReverseRoundTripFastPath(b *testing.B) {
	for _, fast := range []bool{false, true} {
		name := "net-http"
		if fast {
			name = "fast-path"
		}
		b.Run(name, func(b *testing.B) {
			up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				_, _ = io.WriteString(w, "ok")
			}))
			b.Cleanup(up.Close)
			o := newFakeObjects()
			o.secret("team-a", "basic", "kubernetes.io/basic-auth", map[string]string{"username": "u", "password": "p"})
			o.connector("team-a", "api", "http://api.example.test:"+port(b, up), "basic")
			e := startEnv(b, o, nil, func(o *Options) { o.UpstreamFastPath = fast })
			client := &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 4}}
			u := e.url + "/namespaces/team-a/connectors/api/x"
			b.ReportAllocs()
			start := processCPU()
			roundTrips(b, client, u)
			b.ReportMetric(float64((processCPU()-start).Nanoseconds())/float64(b.N), "cpu-ns/op")
		})
	}
}

// BenchmarkReverseStreamedDownload measures a large response to a POST
// through the reverse proxy against the same response fetched directly, in
// one run: "streamed" has no Content-Length (chunked, in 32 KiB writes, as
// git http-backend behind net/http/cgi answers a clone's git-upload-pack),
// "sized" has one. MB/s is the client's throughput; cpu-ns/MiB is the
// process's CPU time (client, proxy and upstream together) per MiB
// received.
func BenchmarkReverseStreamedDownload(b *testing.B) {
	const size, write = 64 << 20, 32 << 10
	chunk := make([]byte, write)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The request is read first, as git upload-pack does: a response
		// begun before it would end the proxy's read of the client's body.
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			return
		}
		if r.URL.Query().Has("sized") {
			w.Header().Set("Content-Length", strconv.Itoa(size))
		}
		w.Header().Set("Content-Type", "application/x-git-upload-pack-result")
		for range size / write {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}))
	b.Cleanup(up.Close)
	o := newFakeObjects()
	o.secret("team-a", "basic", "kubernetes.io/basic-auth", map[string]string{"username": "u", "password": "p"})
	o.connector("team-a", "api", "http://api.example.test:"+port(b, up), "basic")
	e := startEnv(b, o, nil)
	client := &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 4}}
	for _, path := range []string{"direct", "proxy"} {
		for _, framing := range []string{"streamed", "sized"} {
			b.Run(path+"/"+framing, func(b *testing.B) {
				u := e.url + "/namespaces/team-a/connectors/api/git-upload-pack"
				if path == "direct" {
					u = up.URL + "/git-upload-pack"
				}
				if framing == "sized" {
					u += "?sized"
				}
				b.SetBytes(size)
				start := processCPU()
				for b.Loop() {
					req := newRequest(b, http.MethodPost, u, strings.NewReader("0000"))
					req.Header.Set("Authorization", "Bearer "+tokA)
					resp, err := client.Do(req)
					if err != nil {
						b.Fatal(err)
					}
					n, err := io.Copy(io.Discard, resp.Body)
					_ = resp.Body.Close()
					if err != nil || n != size || resp.StatusCode != http.StatusOK {
						b.Fatalf("status %d, %d bytes, %v\n%s", resp.StatusCode, n, err, e.logs.String())
					}
				}
				b.ReportMetric(float64((processCPU()-start).Nanoseconds())/float64(b.N)/(size>>20), "cpu-ns/MiB")
			})
		}
	}
}
