// Command memory measures the resident memory, heap in use and goroutines
// of the real connectors-node binary, run with the DaemonSet's GOGC,
// GOMEMLIMIT and --max-connections, against a real API server: idle with
// its informers synced, with 1,000 Connectors cached, with 100 volumes
// mounted (real tmpfs, published through the kubelet stand-in), under 100
// keep-alive connections of reverse-proxy load, under 1,000 and at
// --max-connections, and with 1,000 and --max-connections idle
// connections that each carried one request: keep-alive connections to the
// reverse proxy, then intercepted CONNECT tunnels to a TLS Connector, with
// the growth per connection. It prints one line per phase; RSS is split into its
// anonymous part (the Go runtime's memory, which GOMEMLIMIT bounds) and its
// file-backed part (the binary's mapped code and data), and each load
// phase counts the major page faults (pages read back from the binary
// after --release-startup-pages). Run it as root (publishing mounts a tmpfs):
//
//	go run ./test/bench/memory --binary bin/connectors-node
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/connectors-node/connectors-node/test/bench/internal/fleet"
	"github.com/connectors-node/connectors-node/test/nodeproc"
)

type config struct {
	binary     string
	connectors int
	volumes    int
	loads      []int
	settle     time.Duration
	loadFor    time.Duration
	extraEnv   []string
	extraArgs  []string
	profiles   string
	idleConns  []int
	idleOnly   bool
	idleKinds  string
}

func main() {
	var cfg config
	var env, arg string
	flag.StringVar(&cfg.binary, "binary", "bin/connectors-node", "the connectors-node binary")
	flag.IntVar(&cfg.connectors, "connectors", 1000, "Connectors to create")
	flag.IntVar(&cfg.volumes, "volumes", 100, "volumes to publish, one pod each")
	flag.DurationVar(&cfg.settle, "settle", 5*time.Second, "wait before an idle reading")
	flag.DurationVar(&cfg.loadFor, "load-for", 10*time.Second, "duration of each load phase")
	flag.StringVar(&env, "env", "", "extra NAME=value for the node's environment, overriding the DaemonSet's (e.g. GOGC=100)")
	flag.StringVar(&arg, "arg", "", "extra flag for the node (e.g. --release-startup-pages=false)")
	flag.StringVar(&cfg.idleKinds, "idle-kinds", "keepalive,tunnels", "idle connections to measure, in this order: keepalive (reverse proxy), tunnels (intercepted CONNECT); each after the last's are closed")
	flag.BoolVar(&cfg.idleOnly, "idle-only", false, "measure idle connections only, without the load phases")
	flag.StringVar(&cfg.profiles, "profiles", "", "directory to write a heap profile of every phase into (runs the node with --pprof)")
	flag.Parse()
	cfg.loads = []int{100, 1000}
	cfg.idleConns = []int{1000}
	if env != "" {
		cfg.extraEnv = []string{env}
	}
	if arg != "" {
		cfg.extraArgs = []string{arg}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, cfg)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "memory: %v\n", err)
		os.Exit(1)
	}
}

// flushBinary writes a just-built binary's dirty page-cache pages to disk,
// as an image layer's are long before a pod starts: MADV_PAGEOUT
// (--release-startup-pages) skips dirty pages, which would leave them
// resident.
func flushBinary(path string) error {
	f, err := os.Open(path) //nolint:gosec // the binary the Makefile built
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("flushing %s: %w", path, err)
	}
	return nil
}

// pageFaults is the major page faults (a page read from the file) of
// process pid so far, from /proc/<pid>/stat.
func pageFaults(pid int) (int64, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The fields after the command name in parentheses: state is the
	// first, majflt the tenth.
	_, rest, ok := strings.Cut(string(raw), ") ")
	f := strings.Fields(rest)
	if !ok || len(f) < 10 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	return strconv.ParseInt(f[9], 10, 64)
}

func say(format string, args ...any) { fmt.Printf(format+"\n", args...) }

// idleConnections opens cfg.idleConns idle connections to targets (the
// next count adding to those open) and prints the node's memory with each
// count, and the growth per connection over the reading before the first:
// RSS, its anonymous part, and heap in use plus stacks.
func idleConnections(ctx context.Context, cfg config, n *fleet.Node, kind string, targets []fleet.IdleTarget, profile func(string)) error {
	time.Sleep(cfg.settle)
	base, err := n.Memory(ctx)
	if err != nil {
		return err
	}
	say("phase=before-idle-%s %s", kind, base)
	idle := &fleet.Idle{}
	defer idle.Close()
	for _, conns := range cfg.idleConns {
		if err := n.OpenIdle(ctx, idle, conns-idle.Len(), targets); err != nil {
			return fmt.Errorf("%s: %w", kind, err)
		}
		time.Sleep(cfg.settle)
		m, err := n.Memory(ctx)
		if err != nil {
			return err
		}
		perConn := func(now, before float64) float64 { return (now - before) * 1024 / float64(conns) }
		say("phase=idle-%d-%s %s per_conn_kib: rss=%.1f anon=%.1f heap_inuse+stacks=%.1f", conns, kind, m,
			perConn(m.RSS, base.RSS), perConn(m.Anon, base.Anon),
			perConn(m.HeapInuse+m.Stacks, base.HeapInuse+base.Stacks))
		profile(fmt.Sprintf("idle-%d-%s", conns, kind))
	}
	return nil
}

func run(ctx context.Context, cfg config) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("run as root: publishing a volume mounts a tmpfs")
	}
	ds, err := fleet.ReadDaemonSet()
	if err != nil {
		return err
	}
	say("# DaemonSet settings: env %v, args %v, memory request %s, limit %s", ds.Env, ds.Args, ds.Request, ds.Limit)
	if ds.MaxConnections > cfg.loads[len(cfg.loads)-1] {
		cfg.loads = append(cfg.loads, ds.MaxConnections) // the most the proxy serves
	}
	if ds.MaxConnections > cfg.idleConns[len(cfg.idleConns)-1] {
		cfg.idleConns = append(cfg.idleConns, ds.MaxConnections)
	}
	if err := flushBinary(cfg.binary); err != nil {
		return err
	}
	c, err := fleet.Start()
	if err != nil {
		return err
	}
	defer c.Close()
	kc, err := c.WriteNodeKubeconfig(ctx)
	if err != nil {
		return err
	}
	args := append(ds.Args, cfg.extraArgs...)
	if cfg.profiles != "" {
		if err := os.MkdirAll(cfg.profiles, 0o750); err != nil {
			return err
		}
		args = append(args, "--pprof")
	}
	n, err := c.StartNode(ctx, fleet.NodeOptions{
		Binary: cfg.binary, Name: "node-0", Kubeconfig: kc,
		Env: append(ds.Env, cfg.extraEnv...), Args: args,
	})
	if err != nil {
		return err
	}
	defer n.Stop()
	profile := func(phase string) {
		if cfg.profiles == "" {
			return
		}
		if err := n.SaveHeapProfile(ctx, filepath.Join(cfg.profiles, phase+".heap")); err != nil {
			say("#   %v", err)
		}
	}
	idle := func(phase string) error {
		time.Sleep(cfg.settle)
		m, err := n.Memory(ctx)
		if err != nil {
			return err
		}
		say("phase=%s %s", phase, m)
		profile(phase)
		return nil
	}
	if err := idle("idle-synced-0-connectors"); err != nil {
		return err
	}

	refs, err := c.CreateConnectors(ctx, cfg.connectors, 10)
	if err != nil {
		return err
	}
	if err := idle(fmt.Sprintf("idle-%d-connectors", len(refs))); err != nil {
		return err
	}

	// One pod per volume, each in the namespace of its Connector, so the
	// volumes name different Connectors.
	pods := make([]fleet.Pod, 0, cfg.volumes)
	var caFile string
	for i := range cfg.volumes {
		ref := refs[(i*len(refs)/cfg.volumes)%len(refs)]
		pod, err := c.RunPod(ctx, n.Name, ref.Namespace, fmt.Sprintf("pod-%03d", i))
		if err != nil {
			return err
		}
		target, err := n.Publish(ctx, &pod, "connectors", []fleet.ConnectorRef{ref})
		if err != nil {
			return err
		}
		defer func() { _ = n.Unpublish(context.Background(), pod, "connectors", target) }()
		pods = append(pods, pod)
		caFile = fleet.CAFile(target)
	}
	if err := idle(fmt.Sprintf("idle-%d-connectors-%d-volumes", len(refs), len(pods))); err != nil {
		return err
	}

	// Idle connections: each carried one request and stays open, through
	// the reverse proxy (keep-alive) and as intercepted CONNECT tunnels to
	// a TLS Connector of the pod's namespace.
	for kind := range strings.SplitSeq(cfg.idleKinds, ",") {
		var targets []fleet.IdleTarget
		switch kind {
		case "keepalive":
			targets = n.ReverseTargets(pods)
		case "tunnels":
			for _, pod := range pods {
				ref, err := c.CreateTLSConnector(ctx, pod.Pod.Namespace, "tls-"+pod.Pod.Name)
				if err != nil {
					return err
				}
				targets = append(targets, fleet.IdleTarget{
					URL: c.UpstreamTLS + "/info/refs", Token: pod.Token, Connector: ref, CAFile: caFile,
				})
			}
		case "":
			continue
		default:
			return fmt.Errorf("--idle-kinds: unknown kind %q (keepalive, tunnels)", kind)
		}
		if err := idleConnections(ctx, cfg, n, kind, targets, profile); err != nil {
			return err
		}
	}
	if cfg.idleOnly {
		return nil
	}
	for _, conns := range cfg.loads {
		peak := n.SamplePeak(ctx, 250*time.Millisecond)
		before, _ := pageFaults(n.PID())
		load := n.StartLoad(ctx, conns, pods, 0)
		time.Sleep(cfg.loadFor)
		during, _ := n.Memory(ctx)
		profile(fmt.Sprintf("load-%d-connections", conns))
		ok, failed, lerr := load.Stop()
		p := peak.Stop()
		after, _ := pageFaults(n.PID())
		say("phase=load-%d-connections requests=%d errors=%d rps=%.0f major_faults=%d at_end: %s peak: %s",
			conns, ok, failed, float64(ok)/cfg.loadFor.Seconds(), after-before, during, p)
		if lerr != nil {
			say("#   first error: %v; node log: %s", lerr, strings.ReplaceAll(nodeproc.Tail(n.LogPath, 3), "\n", " | "))
		}
		if ok == 0 {
			return fmt.Errorf("no request of the %d-connection load succeeded: %w", conns, lerr)
		}
	}
	return idle("idle-after-load")
}
