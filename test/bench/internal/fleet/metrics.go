package fleet

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Families parses a Prometheus text exposition.
func Families(r io.Reader) (map[string]*dto.MetricFamily, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(r)
}

// Value is the sum of the samples of family name whose labels include
// every pair of match (counters, gauges and untyped samples).
func Value(fams map[string]*dto.MetricFamily, name string, match map[string]string) float64 {
	f, ok := fams[name]
	if !ok {
		return 0
	}
	var sum float64
	for _, m := range f.GetMetric() {
		if !hasLabels(m, match) {
			continue
		}
		switch {
		case m.Counter != nil:
			sum += m.GetCounter().GetValue()
		case m.Gauge != nil:
			sum += m.GetGauge().GetValue()
		case m.Untyped != nil:
			sum += m.GetUntyped().GetValue()
		}
	}
	return sum
}

func hasLabels(m *dto.Metric, match map[string]string) bool {
	for k, v := range match {
		found := false
		for _, l := range m.GetLabel() {
			if l.GetName() == k && l.GetValue() == v {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// Memory is what a node reports about its memory.
type Memory struct {
	// RSS is VmRSS from /proc, in MiB; Anon and File are its anonymous
	// and file-backed (the binary's text and data) parts.
	RSS, Anon, File float64
	// Retained is heap memory the runtime holds (heap_sys - heap_released)
	// and Stacks the goroutine stacks, in MiB.
	Retained, Stacks float64
	// HeapInuse is go_memstats_heap_inuse_bytes, in MiB.
	HeapInuse float64
	// Goroutines is go_goroutines.
	Goroutines float64
}

func (m Memory) String() string {
	return fmt.Sprintf("rss_mib=%.1f (anon %.1f, file %.1f) heap_inuse_mib=%.1f heap_retained_mib=%.1f stacks_mib=%.1f goroutines=%.0f",
		m.RSS, m.Anon, m.File, m.HeapInuse, m.Retained, m.Stacks, m.Goroutines)
}

// Metrics reads the node's /metrics.
func (n *Node) Metrics(ctx context.Context) (map[string]*dto.MetricFamily, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+n.Ops+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s/metrics: status %d", n.Name, resp.StatusCode)
	}
	return Families(resp.Body)
}

// Memory reads the node's RSS from /proc and its heap and goroutines
// from /metrics.
func (n *Node) Memory(ctx context.Context) (Memory, error) {
	st, err := procStatus(n.PID())
	if err != nil {
		return Memory{}, err
	}
	fams, err := n.Metrics(ctx)
	if err != nil {
		return Memory{}, err
	}
	mib := func(name string) float64 { return Value(fams, name, nil) / (1 << 20) }
	return Memory{
		RSS:        st["VmRSS"],
		Anon:       st["RssAnon"],
		File:       st["RssFile"],
		HeapInuse:  mib("go_memstats_heap_inuse_bytes"),
		Retained:   mib("go_memstats_heap_sys_bytes") - mib("go_memstats_heap_released_bytes"),
		Stacks:     mib("go_memstats_stack_inuse_bytes"),
		Goroutines: Value(fams, "go_goroutines", nil),
	}, nil
}

// procStatus reads the kB figures of /proc/<pid>/status, in MiB.
func procStatus(pid int) (map[string]float64, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		key, rest, ok := strings.Cut(sc.Text(), ":")
		f := strings.Fields(rest)
		if !ok || len(f) != 2 || f[1] != "kB" {
			continue
		}
		if kb, err := strconv.ParseFloat(f[0], 64); err == nil {
			out[key] = kb / 1024
		}
	}
	if _, ok := out["VmRSS"]; !ok {
		return nil, fmt.Errorf("/proc/%d/status: no VmRSS", pid)
	}
	return out, nil
}

// APIMetrics reads the API server's /metrics with the admin client.
func (c *Cluster) APIMetrics(ctx context.Context) (map[string]*dto.MetricFamily, error) {
	raw, err := c.Kube.Discovery().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the API server's metrics: %w", err)
	}
	return Families(bytes.NewReader(raw))
}

// SaveHeapProfile writes the node's heap profile (it runs with --pprof)
// to path.
func (n *Node) SaveHeapProfile(ctx context.Context, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+n.Ops+"/debug/pprof/heap", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s heap profile: status %d (is --pprof set?)", n.Name, resp.StatusCode)
	}
	f, err := os.Create(path) //nolint:gosec // a path the benchmark's caller chose
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}
