// Command load is the benchmark's HTTP load generator for what wrk cannot
// do: requests through a forward proxy (plain HTTP and CONNECT with TLS
// interception), one new connection per request, and large uploads and
// downloads while sampling a process's resident memory. It keeps -c
// connections busy, one request at a time each, for -d or until -n
// requests are done, and prints one line of key=value results.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "load: %v\n", err)
		os.Exit(1)
	}
}

type config struct {
	target  string
	proxy   string
	bearer  string
	cas     string
	conns   int
	dur     time.Duration
	warmup  time.Duration
	total   int64
	newConn bool
	upload  int64
	rssPID  int
}

func parseFlags(args []string) (config, error) {
	var c config
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.StringVar(&c.target, "url", "", "request URL (required); *.bench.test names dial 127.0.0.1")
	fs.StringVar(&c.proxy, "proxy", "", "forward proxy URL, with user:token when needed")
	fs.StringVar(&c.bearer, "bearer", "", "send Authorization: Bearer with this token")
	fs.StringVar(&c.cas, "ca", "", "comma-separated PEM files of trusted CAs")
	fs.IntVar(&c.conns, "c", 50, "connections")
	fs.DurationVar(&c.dur, "d", 5*time.Second, "measured duration (an upper bound with -n)")
	fs.DurationVar(&c.warmup, "warmup", 0, "unmeasured warm-up before the run")
	fs.Int64Var(&c.total, "n", 0, "stop after this many requests (0: no limit)")
	fs.BoolVar(&c.newConn, "new-conn", false, "open a new connection for every request")
	fs.Int64Var(&c.upload, "upload", 0, "POST a body of this many bytes instead of GET")
	fs.IntVar(&c.rssPID, "rss-pid", 0, "sample VmRSS of this process during the run")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if c.target == "" || c.conns <= 0 {
		return c, errors.New("-url and a positive -c are required")
	}
	return c, nil
}

func run(args []string) error {
	cfg, err := parseFlags(args)
	if err != nil {
		return err
	}
	newClient, err := clientFactory(cfg)
	if err != nil {
		return err
	}
	if cfg.warmup > 0 {
		wcfg := cfg
		wcfg.dur, wcfg.total = cfg.warmup, 0
		_ = drive(wcfg, newClient)
	}
	var rss *rssSampler
	if cfg.rssPID > 0 {
		if rss, err = startRSS(cfg.rssPID); err != nil {
			return err
		}
	}
	res := drive(cfg, newClient)
	fmt.Println(res.String(rss.stop()))
	if res.ok == 0 {
		return fmt.Errorf("no request succeeded: %w", res.firstErr)
	}
	return nil
}

// result sums up a run.
type result struct {
	ok, failed int64
	bytes      int64
	elapsed    time.Duration
	latencies  []time.Duration
	firstErr   error
}

func (r result) String(rss rssResult) string {
	slices.Sort(r.latencies)
	secs := r.elapsed.Seconds()
	fields := []string{
		fmt.Sprintf("requests=%d", r.ok),
		fmt.Sprintf("errors=%d", r.failed),
		fmt.Sprintf("rps=%.0f", float64(r.ok)/secs),
		fmt.Sprintf("p50_ms=%.3f", ms(percentile(r.latencies, 0.50))),
		fmt.Sprintf("p99_ms=%.3f", ms(percentile(r.latencies, 0.99))),
		fmt.Sprintf("mib_s=%.1f", float64(r.bytes)/secs/(1<<20)),
		fmt.Sprintf("seconds=%.2f", secs),
	}
	if rss.samples > 0 {
		fields = append(fields,
			fmt.Sprintf("rss_base_mib=%.1f", rss.base),
			fmt.Sprintf("rss_peak_mib=%.1f", rss.peak),
			fmt.Sprintf("rss_growth_mib=%.1f", rss.peak-rss.base))
	}
	return strings.Join(fields, " ")
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(q*float64(len(sorted))))]
}

// drive runs cfg.conns workers, each with its own client (so its own
// connection), until the duration ends or cfg.total requests were claimed.
func drive(cfg config, newClient func() *http.Client) result {
	ctx, cancel := context.WithTimeout(context.Background(), cfg.dur)
	defer cancel()
	var claimed atomic.Int64
	results := make([]result, cfg.conns)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range results {
		wg.Go(func() {
			c := newClient()
			defer c.CloseIdleConnections()
			res := &results[i]
			buf := make([]byte, 256<<10)
			for ctx.Err() == nil {
				if cfg.total > 0 && claimed.Add(1) > cfg.total {
					return
				}
				t0 := time.Now()
				n, err := once(ctx, c, cfg, buf)
				if ctx.Err() != nil && err != nil {
					return // cut off by the deadline, not a failure
				}
				res.bytes += n
				if err != nil {
					res.failed++
					if res.firstErr == nil {
						res.firstErr = err
					}
					continue
				}
				res.ok++
				res.latencies = append(res.latencies, time.Since(t0))
			}
		})
	}
	wg.Wait()
	out := result{elapsed: time.Since(start)}
	for _, r := range results {
		out.ok += r.ok
		out.failed += r.failed
		out.bytes += r.bytes
		out.latencies = append(out.latencies, r.latencies...)
		if out.firstErr == nil {
			out.firstErr = r.firstErr
		}
	}
	return out
}

// once sends one request and reads the whole response; it returns the
// body bytes moved (uploaded or downloaded).
func once(ctx context.Context, c *http.Client, cfg config, buf []byte) (int64, error) {
	method, body := http.MethodGet, io.Reader(nil)
	if cfg.upload > 0 {
		method, body = http.MethodPost, &zeroReader{left: cfg.upload}
	}
	req, err := http.NewRequestWithContext(ctx, method, cfg.target, body)
	if err != nil {
		return 0, err
	}
	if cfg.upload > 0 {
		req.ContentLength = cfg.upload
	}
	if cfg.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+cfg.bearer)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer func() { _ = resp.Body.Close() }()
	n, err := io.CopyBuffer(discard{}, resp.Body, buf)
	if err != nil {
		return n, err
	}
	if resp.StatusCode/100 != 2 {
		return n, fmt.Errorf("status %d", resp.StatusCode)
	}
	if cfg.upload > 0 {
		return cfg.upload, nil
	}
	return n, nil
}

// discard is io.Discard without ReadFrom, so io.CopyBuffer uses the
// caller's large buffer.
type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// zeroReader yields left zero bytes.
type zeroReader struct{ left int64 }

func (z *zeroReader) Read(p []byte) (int, error) {
	if z.left <= 0 {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), z.left))
	clear(p[:n])
	z.left -= int64(n)
	return n, nil
}
