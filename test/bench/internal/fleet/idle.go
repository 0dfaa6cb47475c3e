package fleet

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Idle holds keep-alive connections to a node's proxy that each carried
// one request and then stay open and quiet, until Close.
type Idle struct {
	mu  sync.Mutex
	trs []*http.Transport
}

// IdleTarget is what each idle connection asks for.
type IdleTarget struct {
	// URL is requested through the connection.
	URL string
	// Token authenticates it: Authorization: Bearer for the reverse
	// proxy, the password of Proxy-Authorization for the forward proxy.
	Token string
	// Connector, when set, makes the connection a CONNECT tunnel through
	// the forward proxy for this Connector; the client trusts the proxy's
	// CA from CAFile.
	Connector ConnectorRef
	CAFile    string
}

// ReverseTargets is one IdleTarget per Connector of pods through the
// reverse proxy's path form.
func (n *Node) ReverseTargets(pods []Pod) []IdleTarget {
	var out []IdleTarget
	for _, p := range pods {
		for _, c := range p.Connectors {
			out = append(out, IdleTarget{
				URL:   fmt.Sprintf("http://%s/namespaces/%s/connectors/%s/info/refs", n.Proxy, c.Namespace, c.Name),
				Token: p.Token,
			})
		}
	}
	return out
}

// CAFile is the proxy CA certificate in a published volume's target.
func CAFile(target string) string { return filepath.Join(target, "ca.crt") }

// OpenIdle opens conns more connections, target i%len(targets) on the
// i-th, each sending one GET and keeping its connection open after it. A
// connection that fails is closed and reported; those opened stay.
func (n *Node) OpenIdle(ctx context.Context, idle *Idle, conns int, targets []IdleTarget) error {
	if len(targets) == 0 {
		return errors.New("no target for idle connections")
	}
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	sem := make(chan struct{}, 32) // connection set-ups at once
	for i := range conns {
		t := targets[i%len(targets)]
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			tr, err := n.idleTransport(t)
			if err != nil {
				errs <- err
				return
			}
			if err := get(ctx, &http.Client{Transport: tr, Timeout: 30 * time.Second}, t.URL, t.Token); err != nil {
				tr.CloseIdleConnections()
				errs <- err
				return
			}
			idle.mu.Lock()
			idle.trs = append(idle.trs, tr)
			idle.mu.Unlock()
		})
	}
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	if len(all) > 0 {
		return fmt.Errorf("%d of %d idle connections failed, the first: %w", len(all), conns, all[0])
	}
	return nil
}

// idleTransport is a client transport of one connection that it keeps
// open while idle.
func (n *Node) idleTransport(t IdleTarget) (*http.Transport, error) {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxConnsPerHost:     1,
		MaxIdleConnsPerHost: 1,
		IdleConnTimeout:     0,
		DisableCompression:  true,
	}
	if t.Connector.Name == "" {
		return tr, nil
	}
	pem, err := os.ReadFile(t.CAFile)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", t.CAFile)
	}
	tr.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	tr.Proxy = http.ProxyURL(&url.URL{
		Scheme: "http",
		User:   url.UserPassword(t.Connector.Namespace+"/"+t.Connector.Name, t.Token),
		Host:   n.Proxy,
	})
	return tr, nil
}

// Len is the number of connections open.
func (i *Idle) Len() int {
	i.mu.Lock()
	defer i.mu.Unlock()
	return len(i.trs)
}

// Close closes every connection.
func (i *Idle) Close() {
	i.mu.Lock()
	defer i.mu.Unlock()
	for _, tr := range i.trs {
		tr.CloseIdleConnections()
	}
	i.trs = nil
}
