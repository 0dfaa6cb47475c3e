package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"k8s.io/klog/v2/textlogger"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "connectors-node: %v\n", err)
		os.Exit(1)
	}
}

// run parses flags, builds every part, serves until ctx ends, and shuts down
// in order.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	if cfg.showVersion {
		_, err := fmt.Fprintf(stdout, "connectors-node %s\n", version)
		return err
	}
	audit := stdout
	if cfg.auditLog != "-" {
		f, err := os.OpenFile(cfg.auditLog, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return fmt.Errorf("--audit-log: %w", err)
		}
		defer func() { _ = f.Close() }()
		audit = f
	}
	log := textlogger.NewLogger(textlogger.NewConfig(textlogger.Verbosity(cfg.verbosity), textlogger.Output(stderr)))
	// controller-runtime's informers log through its package logger, which
	// otherwise discards them and prints a stack trace after 30 s; this
	// call is that library's one global.
	ctrllog.SetLogger(log.WithName("controller-runtime"))
	log.Info("starting connectors-node", "version", version, "node_id", cfg.nodeID)
	n, err := newNode(ctx, cfg, log, audit)
	if err != nil {
		return err
	}
	return n.serve(ctx)
}
