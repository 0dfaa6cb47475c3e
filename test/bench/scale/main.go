// Command scale simulates many nodes: it runs N real connectors-node
// processes (the DaemonSet's settings, every role, status on) against one
// real API server with 1,000 Connectors, publishes volumes spread over the
// nodes, proxies requests through them, and counts the API server's
// requests (apiserver_request_total) in each phase: at rest (watches only),
// per publish, per first proxied request of a pod and per proxied request
// after warm-up. It also reports the open watches and each node's memory.
// Run it as root (publishing mounts a tmpfs):
//
//	go run ./test/bench/scale --binary bin/connectors-node --nodes 20
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/connectors-node/connectors-node/test/bench/internal/fleet"
)

type config struct {
	binary     string
	nodes      int
	connectors int
	publishes  int
	rest       time.Duration
	loadFor    time.Duration
}

func main() {
	var cfg config
	flag.StringVar(&cfg.binary, "binary", "bin/connectors-node", "the connectors-node binary")
	flag.IntVar(&cfg.nodes, "nodes", 20, "node processes")
	flag.IntVar(&cfg.connectors, "connectors", 1000, "Connectors to create")
	flag.IntVar(&cfg.publishes, "publishes", 300, "volumes to publish, one pod each, spread over the nodes")
	flag.DurationVar(&cfg.rest, "rest", 30*time.Second, "length of the at-rest window (and of the baseline before the nodes start)")
	flag.DurationVar(&cfg.loadFor, "load-for", 5*time.Second, "length of the warm proxied load")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, cfg)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "scale: %v\n", err)
		os.Exit(1)
	}
}

func say(format string, args ...any) { fmt.Printf(format+"\n", args...) }

// window counts the API server's requests while f runs. With a
// background rate (requests per second at rest), it subtracts what that
// rate would have made in the window's time, so a phase counts only the
// requests it caused.
func window(ctx context.Context, c *fleet.Cluster, background fleet.APICounts, f func() error) (fleet.APICounts, error) {
	before, err := c.Requests(ctx)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	if err := f(); err != nil {
		return nil, err
	}
	after, err := c.Requests(ctx)
	if err != nil {
		return nil, err
	}
	return after.Sub(before).Minus(background, time.Since(start).Seconds()), nil
}

// quiet waits until a window of d sees no status write (the status
// leader's first reconcile of every Connector is done), for at most limit.
func quiet(ctx context.Context, c *fleet.Cluster, d, limit time.Duration) (time.Duration, error) {
	start := time.Now()
	for time.Since(start) < limit {
		w, err := window(ctx, c, nil, sleep(d))
		if err != nil {
			return 0, err
		}
		if w.Get("PATCH connectors") == 0 && w.Get("GET secrets") == 0 {
			break
		}
	}
	return time.Since(start), nil
}

func sleep(d time.Duration) func() error { return func() error { time.Sleep(d); return nil } }

func run(ctx context.Context, cfg config) error {
	if os.Geteuid() != 0 {
		return errors.New("run as root: publishing a volume mounts a tmpfs")
	}
	ds, err := fleet.ReadDaemonSet()
	if err != nil {
		return err
	}
	say("# %d nodes, %d Connectors, %d publishes; DaemonSet env %v, args %v", cfg.nodes, cfg.connectors, cfg.publishes, ds.Env, ds.Args)
	c, err := fleet.Start()
	if err != nil {
		return err
	}
	defer c.Close()
	refs, err := c.CreateConnectors(ctx, cfg.connectors, 10)
	if err != nil {
		return err
	}
	kc, err := c.WriteNodeKubeconfig(ctx)
	if err != nil {
		return err
	}

	// The API server's own requests (its leases, controllers) without nodes.
	base, err := window(ctx, c, nil, sleep(cfg.rest))
	if err != nil {
		return err
	}
	secs := cfg.rest.Seconds()
	say("phase=baseline-no-nodes api_requests_per_s=%.2f (%s)", base.Total()/secs, base.Per(secs))

	nodes, err := startNodes(ctx, c, cfg, kc, ds)
	defer func() {
		for _, n := range nodes {
			n.Stop()
		}
	}()
	if err != nil {
		return err
	}
	took, err := quiet(ctx, c, 5*time.Second, 3*time.Minute)
	if err != nil {
		return err
	}
	say("phase=status-first-reconcile took_s=%.0f (the status leader writes every Connector's status once and probes it)", took.Seconds())
	w, err := c.Watches(ctx)
	if err != nil {
		return err
	}
	var watches float64
	for _, v := range w {
		watches += v
	}
	say("phase=watches open=%.0f per_node=%.1f by_resource=%v", watches, watches/float64(cfg.nodes), w)

	rest, err := window(ctx, c, nil, sleep(cfg.rest))
	if err != nil {
		return err
	}
	nodeRest := rest.Sub(base)
	per := secs * float64(cfg.nodes)
	say("phase=rest api_requests_per_s=%.2f per_node_per_s=%.3f (minus the no-node baseline; per node per s: %s)",
		rest.Total()/secs, nodeRest.Total()/per, nodeRest.Per(per))

	// Pods first (the bench's own pod and token requests stay out of the
	// publish window), then the publishes.
	pods := make([]fleet.Pod, cfg.publishes)
	on := make([]*fleet.Node, cfg.publishes)
	for i := range pods {
		ref := refs[(i*len(refs)/cfg.publishes)%len(refs)]
		on[i] = nodes[i%len(nodes)]
		if pods[i], err = c.RunPod(ctx, on[i].Name, ref.Namespace, fmt.Sprintf("pod-%04d", i)); err != nil {
			return err
		}
		pods[i].Connectors = nil
	}
	targets := make([]string, len(pods))
	// Each phase below subtracts the at-rest rate (the leader's renewals).
	bg := rest.Scale(1 / secs)
	pub, err := window(ctx, c, bg, func() error {
		for i := range pods {
			ref := refs[(i*len(refs)/cfg.publishes)%len(refs)]
			if targets[i], err = on[i].Publish(ctx, &pods[i], "connectors", []fleet.ConnectorRef{ref}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	defer func() {
		for i := range pods {
			_ = on[i].Unpublish(context.Background(), pods[i], "connectors", targets[i])
		}
	}()
	np := float64(cfg.publishes)
	say("phase=publish api_requests_per_publish=%.2f subjectaccessreviews=%.2f secret_reads=%.2f (%s)",
		pub.Total()/np, pub.Get("POST subjectaccessreviews")/np, pub.Get("GET secrets")/np, pub.Per(np))

	byNode := map[*fleet.Node][]fleet.Pod{}
	for i := range pods {
		byNode[on[i]] = append(byNode[on[i]], pods[i])
	}
	// Warm-up: one request per pod, each a new token on the proxy.
	first, err := window(ctx, c, bg, func() error {
		return proxied(ctx, byNode, 1)
	})
	if err != nil {
		return err
	}
	say("phase=first-request api_requests_per_pod=%.2f (%s)", first.Total()/np, first.Per(np))

	var done int64
	warm, err := window(ctx, c, bg, func() error {
		var loads []*fleet.Load
		for n, ps := range byNode {
			loads = append(loads, n.StartLoad(ctx, len(ps), ps, 0))
		}
		time.Sleep(cfg.loadFor)
		var errs []error
		for _, l := range loads {
			ok, _, err := l.Stop()
			done += ok
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	})
	if err != nil {
		return err
	}
	say("phase=warm-requests requests=%d api_requests=%.1f api_requests_per_request=%.5f (%s)",
		done, warm.Total(), warm.Total()/max(1, float64(done)), warm.Per(1))

	var rss, anon, heap, gor, maxRSS float64
	for _, n := range nodes {
		m, err := n.Memory(ctx)
		if err != nil {
			return err
		}
		rss, anon, heap, gor = rss+m.RSS, anon+m.Anon, heap+m.HeapInuse, gor+m.Goroutines
		maxRSS = max(maxRSS, m.RSS)
	}
	k := float64(len(nodes))
	say("phase=memory-per-node rss_mib=%.1f (max %.1f) anon_mib=%.1f heap_inuse_mib=%.1f goroutines=%.0f",
		rss/k, maxRSS, anon/k, heap/k, gor/k)
	return nil
}

// startNodes starts the nodes, a few at a time.
func startNodes(ctx context.Context, c *fleet.Cluster, cfg config, kc string, ds fleet.DaemonSetSettings) ([]*fleet.Node, error) {
	nodes := make([]*fleet.Node, cfg.nodes)
	errs := make([]error, cfg.nodes)
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for i := range nodes {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			name := fmt.Sprintf("node-%02d", i)
			nodes[i], errs[i] = c.StartNode(ctx, fleet.NodeOptions{Binary: cfg.binary, Name: name, Kubeconfig: kc, Env: ds.Env, Args: ds.Args})
		})
	}
	wg.Wait()
	var started []*fleet.Node
	for _, n := range nodes {
		if n != nil {
			started = append(started, n)
		}
	}
	return started, errors.Join(errs...)
}

// proxied sends each pod's Connectors count requests through its node.
func proxied(ctx context.Context, byNode map[*fleet.Node][]fleet.Pod, count int) error {
	var errs []error
	for n, ps := range byNode {
		for _, p := range ps {
			if err := n.Send(ctx, p, count); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}
