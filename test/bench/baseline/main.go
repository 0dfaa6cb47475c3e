// Command baseline runs the two reference points of the proxy benchmark, so
// that its table shows what any proxy can reach on the machine it runs on:
//
//	-mode reverseproxy  a bare httputil.ReverseProxy that adds a fixed
//	                    Authorization header and does nothing else: no
//	                    client authentication, routing, audit line or
//	                    metrics. It is the floor of a proxy built on the
//	                    standard library, as the Connectors proxy is.
//	-mode syncproxy     the same with a minimal synchronous HTTP/1.1
//	                    RoundTripper in place of http.Transport (no
//	                    goroutine hand-offs, no HTTP/2, no retries): what a
//	                    hand-written upstream client could win at most.
//	-mode relay         a TCP relay that copies bytes both ways (splice on
//	                    Linux) and parses no HTTP at all: the ceiling of any
//	                    proxy between two loopback connections.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "baseline: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("baseline", flag.ContinueOnError)
	mode := fs.String("mode", "reverseproxy", "reverseproxy, syncproxy or relay")
	listen := fs.String("listen", "127.0.0.1:18405", "listen address")
	upstream := fs.String("upstream", "127.0.0.1:18400", "plain HTTP upstream host:port")
	auth := fs.String("authorization", "Basic YmVuY2g6YmVuY2gtcGFzcw==", "Authorization value the reverse proxy adds")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", *listen)
	if err != nil {
		return err
	}
	switch *mode {
	case "reverseproxy":
		return serveReverseProxy(ctx, ln, *upstream, *auth,
			&http.Transport{MaxIdleConns: 1024, MaxIdleConnsPerHost: 256, IdleConnTimeout: time.Minute})
	case "syncproxy":
		return serveReverseProxy(ctx, ln, *upstream, *auth, &syncTransport{addr: *upstream})
	case "relay":
		return serveRelay(ctx, ln, *upstream)
	default:
		return fmt.Errorf("-mode %q: want reverseproxy, syncproxy or relay", *mode)
	}
}

func serveReverseProxy(ctx context.Context, ln net.Listener, upstream, auth string, rt http.RoundTripper) error {
	target := &url.URL{Scheme: "http", Host: upstream}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Header.Set("Authorization", auth)
		},
		Transport: rt,
		ErrorLog:  log.New(io.Discard, "", 0),
	}
	srv := &http.Server{Handler: rp, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func serveRelay(ctx context.Context, ln net.Listener, upstream string) error {
	go func() {
		<-ctx.Done()
		_ = ln.Close()
	}()
	var d net.Dialer
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		go func() {
			defer func() { _ = c.Close() }()
			u, err := d.DialContext(ctx, "tcp", upstream)
			if err != nil {
				return
			}
			defer func() { _ = u.Close() }()
			relay(c.(*net.TCPConn), u.(*net.TCPConn))
		}()
	}
}

// relay copies both ways until both directions end; io.Copy between two
// TCP connections splices on Linux.
func relay(a, b *net.TCPConn) {
	var wg sync.WaitGroup
	wg.Go(func() {
		_, _ = io.Copy(b, a)
		_ = b.CloseWrite()
	})
	_, _ = io.Copy(a, b)
	_ = a.CloseWrite()
	wg.Wait()
}
