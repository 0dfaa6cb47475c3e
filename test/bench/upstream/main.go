// Command upstream is the origin server of the proxy benchmark. It serves
// plain HTTP and HTTPS (with a certificate from a CA it creates and writes
// out) on loopback:
//
//	GET  /small     a 13-byte body
//	GET  /bytes?n=N N bytes, streamed from a fixed buffer
//	POST /sink      reads and discards the request body, answers its size
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/connectors-node/connectors-node/test/bench/internal/certs"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "upstream: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("upstream", flag.ContinueOnError)
	httpAddr := fs.String("http", "127.0.0.1:0", "plain HTTP listen address")
	httpsAddr := fs.String("https", "127.0.0.1:0", "HTTPS listen address")
	caOut := fs.String("ca-out", "", "file to write the upstream CA certificate to (PEM); required")
	name := fs.String("name", "up.bench.test", "host name in the server certificate")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *caOut == "" {
		return errors.New("-ca-out is required")
	}
	cert, caPEM, err := certs.Server(*name)
	if err != nil {
		return err
	}
	if err := os.WriteFile(*caOut, caPEM, 0o600); err != nil {
		return err
	}
	h := handler()
	plain := newServer(h, nil)
	secure := newServer(h, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	var lc net.ListenConfig
	pl, err := lc.Listen(ctx, "tcp", *httpAddr)
	if err != nil {
		return err
	}
	sl, err := lc.Listen(ctx, "tcp", *httpsAddr)
	if err != nil {
		return err
	}
	errs := make(chan error, 2)
	go func() { errs <- plain.Serve(pl) }()
	go func() { errs <- secure.ServeTLS(sl, "", "") }()
	select {
	case <-ctx.Done():
	case err := <-errs:
		return err
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return errors.Join(plain.Shutdown(sctx), secure.Shutdown(sctx))
}

func newServer(h http.Handler, cfg *tls.Config) *http.Server {
	return &http.Server{Handler: h, TLSConfig: cfg, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute}
}

// chunk is the buffer /bytes repeats.
const chunk = 256 << 10

func handler() http.Handler {
	small := []byte("hello, world\n")
	buf := make([]byte, chunk)
	for i := range buf {
		buf[i] = byte('a' + i%26)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /small", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write(small)
	})
	mux.HandleFunc("GET /bytes", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.ParseInt(r.URL.Query().Get("n"), 10, 64)
		if err != nil || n < 0 {
			http.Error(w, "bad n", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		for n > 0 {
			m := min(n, int64(len(buf)))
			if _, err := w.Write(buf[:m]); err != nil {
				return
			}
			n -= m
		}
	})
	mux.HandleFunc("POST /sink", func(w http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			http.Error(w, "read failed", http.StatusBadRequest)
			return
		}
		_, _ = fmt.Fprintf(w, "%d\n", n)
	})
	return mux
}
