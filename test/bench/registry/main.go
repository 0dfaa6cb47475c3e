// Command registry benchmarks image push and pull of one large image
// through the Connectors proxy against docker-registry with token auth on
// loopback: direct, through the reverse proxy (path form, config.json
// only) and through the forward proxy (https_proxy with TLS interception),
// all with crane. The proxy runs as a separate process ("registry proxy"),
// so its resident memory can be sampled from /proc; the token service runs
// in this process and counts token requests per scope.
//
// Usage: registry [-mib 512] [-runs 3] [-crane bin/crane] [-timeout 15m]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	var err error
	if len(os.Args) > 1 && os.Args[1] == "proxy" {
		err = runProxy(ctx, os.Args[2:])
	} else {
		err = runBench(ctx, os.Args[1:])
	}
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "registry bench: %v\n", err)
		os.Exit(1)
	}
}

// benchFlags are the orchestrator's flags.
type benchFlags struct {
	mib     int64
	crane   string
	timeout time.Duration
	keep    bool
	runs    int
}

func parseBenchFlags(args []string) (benchFlags, error) {
	var f benchFlags
	fs := flag.NewFlagSet("registry", flag.ContinueOnError)
	fs.Int64Var(&f.mib, "mib", 512, "size of the image layer in MiB")
	fs.StringVar(&f.crane, "crane", "bin/crane", "crane binary")
	fs.DurationVar(&f.timeout, "timeout", 15*time.Minute, "stop after this long")
	fs.BoolVar(&f.keep, "keep", false, "keep the work directory")
	fs.IntVar(&f.runs, "runs", 3, "rounds over all modes (interleaved); the table shows medians")
	return f, fs.Parse(args)
}
