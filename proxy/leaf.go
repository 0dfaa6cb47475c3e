package proxy

import (
	"container/list"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/connectors-node/connectors-node/kube/ca"
)

// leafCache issues leaf certificates for intercepted hosts and keeps the
// most recently used ones. Concurrent misses for one host sign once.
type leafCache struct {
	authority func() *ca.CA
	size      int
	validity  time.Duration
	now       func() time.Time
	metrics   *metrics

	mu    sync.Mutex
	order *list.List // front = most recent; values are *leafItem
	items map[string]*list.Element
	group singleflight.Group
}

type leafItem struct {
	host string
	cert *tls.Certificate
	// server is the TLS configuration that answers with cert, shared by
	// every tunnel to host.
	server *tls.Config
	// authority signed cert; a leaf of a CA no longer signing is issued again.
	authority *ca.CA
}

func newLeafCache(authority func() *ca.CA, size int, validity time.Duration, now func() time.Time, m *metrics) *leafCache {
	return &leafCache{
		authority: authority, size: size, validity: validity, now: now, metrics: m,
		order: list.New(), items: make(map[string]*list.Element),
	}
}

// get returns a leaf for host (a normalized host name or IP literal).
func (c *leafCache) get(host string) (*tls.Certificate, error) {
	it, err := c.item(host)
	if err != nil {
		return nil, err
	}
	return it.cert, nil
}

// serverConfig returns the TLS configuration that answers every handshake
// with the leaf for host. One configuration serves every tunnel to host
// for as long as its leaf is cached, so a tunnel holds none of its own.
func (c *leafCache) serverConfig(host string) (*tls.Config, error) {
	it, err := c.item(host)
	if err != nil {
		return nil, err
	}
	return it.server, nil
}

func (c *leafCache) item(host string) (*leafItem, error) {
	authority := c.authority()
	if it := c.lookup(host, authority); it != nil {
		return it, nil
	}
	v, err, _ := c.group.Do(host, func() (any, error) {
		if it := c.lookup(host, authority); it != nil {
			return it, nil
		}
		cert, err := c.issue(host, authority)
		if err != nil {
			return nil, err
		}
		return c.store(host, cert, authority), nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*leafItem), nil
}

// leafServerConfig answers every handshake with cert, over TLS 1.2 or
// later, offering HTTP/1.1 only. Session tickets are off: every tunnel
// makes a full handshake, whose server name the tunnel checks.
func leafServerConfig(cert *tls.Certificate) *tls.Config {
	return &tls.Config{
		MinVersion:             tls.VersionTLS12,
		NextProtos:             []string{"http/1.1"},
		Certificates:           []tls.Certificate{*cert},
		SessionTicketsDisabled: true,
	}
}

func (c *leafCache) lookup(host string, authority *ca.CA) *leafItem {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[host]
	if !ok {
		return nil
	}
	it := el.Value.(*leafItem)
	if it.authority != authority || c.now().Add(c.validity/4).After(it.cert.Leaf.NotAfter) {
		c.order.Remove(el)
		delete(c.items, host)
		c.metrics.leaves.Set(float64(len(c.items)))
		return nil
	}
	c.order.MoveToFront(el)
	return it
}

func (c *leafCache) store(host string, cert *tls.Certificate, authority *ca.CA) *leafItem {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[host]; ok {
		c.order.Remove(el)
	}
	it := &leafItem{host: host, cert: cert, server: leafServerConfig(cert), authority: authority}
	c.items[host] = c.order.PushFront(it)
	for c.order.Len() > c.size {
		old := c.order.Back()
		c.order.Remove(old)
		delete(c.items, old.Value.(*leafItem).host)
	}
	c.metrics.leaves.Set(float64(len(c.items)))
	return it
}

func (c *leafCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.items)
}

// issue signs an ECDSA P-256 leaf for host, valid from an hour ago (clock
// skew) for the configured validity, never past the CA's own expiry.
func (c *leafCache) issue(host string, authority *ca.CA) (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating leaf key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("generating leaf serial: %w", err)
	}
	now := c.now()
	notAfter := now.Add(c.validity)
	if notAfter.After(authority.Cert.NotAfter) {
		notAfter = authority.Cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: host},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		tmpl.IPAddresses = []net.IP{ip.AsSlice()}
	} else {
		tmpl.DNSNames = []string{host}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, authority.Cert, &key.PublicKey, authority.Key)
	if err != nil {
		return nil, fmt.Errorf("signing leaf for %s: %w", host, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	c.metrics.leafIssued.Inc()
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}
