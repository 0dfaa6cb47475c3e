package fleet

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// APICounts are the API server's apiserver_request_total counters by
// "VERB resource[/subresource]", for resource requests only (not /metrics
// or discovery).
type APICounts map[string]float64

// Requests reads the API server's request counters.
func (c *Cluster) Requests(ctx context.Context) (APICounts, error) {
	fams, err := c.APIMetrics(ctx)
	if err != nil {
		return nil, err
	}
	out := APICounts{}
	f, ok := fams["apiserver_request_total"]
	if !ok {
		return nil, fmt.Errorf("the API server's metrics have no apiserver_request_total")
	}
	for _, m := range f.GetMetric() {
		l := map[string]string{}
		for _, p := range m.GetLabel() {
			l[p.GetName()] = p.GetValue()
		}
		if l["resource"] == "" {
			continue
		}
		key := l["verb"] + " " + l["resource"]
		if l["subresource"] != "" {
			key += "/" + l["subresource"]
		}
		out[key] += m.GetCounter().GetValue()
	}
	return out, nil
}

// Watches is the number of watches open on the API server
// (apiserver_longrunning_requests with verb WATCH), by resource.
func (c *Cluster) Watches(ctx context.Context) (map[string]float64, error) {
	fams, err := c.APIMetrics(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for _, m := range fams["apiserver_longrunning_requests"].GetMetric() {
		var verb, res string
		for _, p := range m.GetLabel() {
			switch p.GetName() {
			case "verb":
				verb = p.GetValue()
			case "resource":
				res = p.GetValue()
			}
		}
		if verb == "WATCH" {
			out[res] += m.GetGauge().GetValue()
		}
	}
	return out, nil
}

// Sub returns a - b, leaving out keys that did not change.
func (a APICounts) Sub(b APICounts) APICounts {
	out := APICounts{}
	for k, v := range a {
		if d := v - b[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

// Scale returns a with every count multiplied by f.
func (a APICounts) Scale(f float64) APICounts {
	out := APICounts{}
	for k, v := range a {
		out[k] = v * f
	}
	return out
}

// Minus returns a less rate (counts per second) times secs, no count
// below zero, leaving out counts that drop to zero.
func (a APICounts) Minus(rate APICounts, secs float64) APICounts {
	out := APICounts{}
	for k, v := range a {
		if d := v - rate[k]*secs; d > 0.5 {
			out[k] = d
		}
	}
	return out
}

// Total sums the counts.
func (a APICounts) Total() float64 {
	var t float64
	for _, v := range a {
		t += v
	}
	return t
}

// Get sums the counts of keys with the given prefix, e.g. "POST
// subjectaccessreviews" or "GET secrets".
func (a APICounts) Get(prefix string) float64 {
	var t float64
	for k, v := range a {
		if strings.HasPrefix(k, prefix) {
			t += v
		}
	}
	return t
}

// Per formats each count divided by d, largest first: "GET leases=0.50, ...".
func (a APICounts) Per(d float64) string {
	keys := slices.Sorted(maps.Keys(a))
	slices.SortStableFunc(keys, func(x, y string) int {
		switch {
		case a[x] > a[y]:
			return -1
		case a[x] < a[y]:
			return 1
		}
		return 0
	})
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%.3g", strings.ReplaceAll(k, " ", ":"), a[k]/d))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}
