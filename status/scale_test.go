package status_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
	"github.com/connectors-node/connectors-node/status"
	"github.com/connectors-node/connectors-node/test/apiserver"
)

// scale is what one run of many Connectors cost.
type scale struct {
	connectors int
	// statusWrites, serviceWrites, eventWrites and otherWrites are the
	// API writes until every Connector was Ready, by kind.
	statusWrites, serviceWrites, eventWrites, otherWrites int64
	// probes is the probe requests the tool got per Connector in one
	// probe interval once everything was Ready.
	probes float64
}

// runScale creates n Connectors of a class with liveness and auth probes at
// once and waits until all are Ready.
func runScale(tb testing.TB, env *apiserver.Env, n int) scale {
	tb.Helper()
	ns := env.Namespace(tb, "scale")
	up := startUpstream(tb)
	ctx := context.Background()
	const interval = 4 * time.Second
	cls := gitClass("git-"+ns, nil)
	create(tb, env, cls, basicSecret(ns, "git-auth", upstreamPass))
	node := startNode(tb, env, nodeOptions{identity: "node-a", leaseNS: ns, countNS: ns, interval: interval, probeRate: 2000})
	eventually(tb, "node leads", func() (bool, string) { return node.rec.Leading(), "" })
	for i := range n {
		create(tb, env, gitConnector(tb, ns, fmt.Sprintf("git-%04d", i), cls.Name, up.URL, "git-auth"))
	}
	eventually(tb, "all Ready", func() (bool, string) {
		var list v1alpha1.ConnectorList
		require.NoError(tb, env.Client.List(ctx, &list))
		ready := 0
		for i := range list.Items {
			c := &list.Items[i]
			if c.Namespace != ns {
				continue
			}
			if r := condition(c, status.TypeReady); r != nil && r.Status == status.True && c.Status.Proxy != nil {
				ready++
			}
		}
		return ready == n, fmt.Sprintf("%d of %d ready", ready, n)
	})
	s := scale{
		connectors:    n,
		statusWrites:  node.api.statusWrites.Load(),
		serviceWrites: node.api.services.Load(),
		eventWrites:   node.api.events.Load(),
	}
	s.otherWrites = node.api.writes.Load() - s.statusWrites - s.serviceWrites - s.eventWrites

	// Probe load at steady state, over two intervals.
	hits := up.hits.Load()
	time.Sleep(2 * interval)
	s.probes = float64(up.hits.Load()-hits) / float64(n) / 2
	node.stop()
	return s
}

// TestManyConnectorsCostBoundedWrites creates 300 Connectors at once: each
// costs at most two status patches (the address, then the probe results)
// and one Service, whatever the timing; steady state writes nothing.
func TestManyConnectorsCostBoundedWrites(t *testing.T) {
	if testing.Short() {
		t.Skip("creates 300 Connectors")
	}
	env := apiserver.Shared(t)
	s := runScale(t, env, 300)
	t.Logf("%+v", s)
	require.LessOrEqual(t, s.serviceWrites, int64(s.connectors+s.connectors/10), "more than one Service write per Connector")
	// A conflict with someone else's write is retried: allow a few.
	require.LessOrEqual(t, s.statusWrites, int64(2*s.connectors+s.connectors/10), "status patches are not bounded")
	require.LessOrEqual(t, s.otherWrites, int64(5), "class status and nothing else")
	// Two probes (liveness and auth) per Connector per interval, give or
	// take the jitter.
	require.LessOrEqual(t, s.probes, 2.0*1.0)
}

// BenchmarkThousandConnectors measures the API writes per Connector when
// 1,000 are created at once, and the probe requests per Connector in one
// probe interval once they are Ready. One op is the whole run.
func BenchmarkThousandConnectors(b *testing.B) {
	env := apiserver.Shared(b)
	for b.Loop() {
		s := runScale(b, env, 1000)
		b.ReportMetric(float64(s.statusWrites)/float64(s.connectors), "status-writes/connector")
		b.ReportMetric(float64(s.serviceWrites)/float64(s.connectors), "service-writes/connector")
		b.ReportMetric(float64(s.eventWrites+s.otherWrites), "other-writes")
		b.ReportMetric(s.probes, "probes/connector/interval")
	}
}
