package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// clientFactory returns a constructor of clients that each keep at most
// one connection, trust the -ca files, dial *.bench.test names on
// 127.0.0.1 and speak HTTP/1.1 only (as the proxy and nginx do upstream).
func clientFactory(cfg config) (func() *http.Client, error) {
	roots, err := loadRoots(cfg.cas)
	if err != nil {
		return nil, err
	}
	var proxyURL *url.URL
	if cfg.proxy != "" {
		if proxyURL, err = url.Parse(cfg.proxy); err != nil {
			return nil, fmt.Errorf("-proxy: %w", err)
		}
	}
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		if host, port, err := net.SplitHostPort(addr); err == nil && strings.HasSuffix(host, ".bench.test") {
			addr = net.JoinHostPort("127.0.0.1", port)
		}
		return dialer.DialContext(ctx, network, addr)
	}
	return func() *http.Client {
		t := &http.Transport{
			DialContext:         dial,
			TLSClientConfig:     &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
			TLSNextProto:        map[string]func(string, *tls.Conn) http.RoundTripper{},
			MaxConnsPerHost:     1,
			MaxIdleConnsPerHost: 1,
			DisableKeepAlives:   cfg.newConn,
			DisableCompression:  true,
			ReadBufferSize:      64 << 10,
			WriteBufferSize:     64 << 10,
		}
		if proxyURL != nil {
			t.Proxy = http.ProxyURL(proxyURL)
		}
		return &http.Client{Transport: t, Timeout: 0}
	}, nil
}

func loadRoots(files string) (*x509.CertPool, error) {
	if files == "" {
		return nil, nil
	}
	pool := x509.NewCertPool()
	for _, f := range strings.Split(files, ",") {
		raw, err := os.ReadFile(f) //nolint:gosec // G304: the operator names the files with a flag
		if err != nil {
			return nil, err
		}
		if !pool.AppendCertsFromPEM(raw) {
			return nil, fmt.Errorf("%s: no PEM certificate", f)
		}
	}
	return pool, nil
}
