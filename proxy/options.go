package proxy

import (
	"context"
	"crypto/x509"
	"errors"
	"io"
	"net/netip"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/connectors-node/connectors-node/grammar/publicurl"
	"github.com/connectors-node/connectors-node/kube"
	"github.com/connectors-node/connectors-node/kube/ca"
	"github.com/connectors-node/connectors-node/proxy/policy"
)

// Authenticator checks tokens and access to Connectors. *kube.Reviewer
// satisfies it.
type Authenticator interface {
	// Authenticate returns the token's user; errors wrap
	// kube.ErrUnauthenticated or kube.ErrUnavailable.
	Authenticate(ctx context.Context, token string) (kube.User, error)
	// Authorize checks that user may use the Connector namespace/name;
	// errors wrap kube.ErrForbidden or kube.ErrUnavailable.
	Authorize(ctx context.Context, user kube.User, namespace, name string) error
}

// Binding checks that a reviewed token is used by the pod it is bound to,
// from that pod's address. *kube.PodBinding satisfies it.
type Binding interface {
	// Check returns nil when user may use the proxy from source; errors
	// wrap kube.ErrUnauthenticated (a *kube.BindingError naming the
	// binding) or kube.ErrUnavailable.
	Check(ctx context.Context, user kube.User, source netip.Addr) error
}

// Resolver maps a host name to IP addresses.
type Resolver func(ctx context.Context, host string) ([]netip.Addr, error)

// Options configure New. Zero values take the documented defaults.
type Options struct {
	// Objects reads Connectors and Secrets. Required.
	Objects kube.Objects
	// Auth reviews tokens and access. Required.
	Auth Authenticator
	// CA signs the leaf certificates of intercepted CONNECT tunnels.
	// Required unless SigningCA is set.
	CA *ca.CA
	// SigningCA, when set, returns the CA that signs each new leaf, in place
	// of CA, so that a rotated CA takes effect without a restart: a cached
	// leaf signed by another CA is issued again. Default: CA.
	SigningCA func() *ca.CA
	// Binding checks each token's pod binding after its review; a refusal
	// is 401 (reverse) or 407 (forward) naming the binding. Default: none
	// (tokens are not tied to pods).
	Binding Binding

	// PublicURL is the proxy's own public address; forward targets on its
	// host are refused (a loop). Default publicurl.Default.
	PublicURL publicurl.URL
	// ClusterDomain is accepted in host-form reverse addresses
	// (c-<name>.<ns>.svc.<ClusterDomain>). Default
	// publicurl.DefaultClusterDomain.
	ClusterDomain string

	// AllowUnmatchedTunnels lets CONNECT and absolute-form requests to hosts
	// no listed Connector serves through, without a credential. Default
	// false: they get 403.
	AllowUnmatchedTunnels bool
	// AllowLoopback permits upstream addresses in 127.0.0.0/8 and ::1.
	// Default false. Even when true, the proxy's own listen addresses stay
	// refused.
	AllowLoopback bool
	// DenyCIDRs are refused as upstream addresses in addition to the
	// built-in link-local, metadata, unspecified and multicast ranges.
	DenyCIDRs []netip.Prefix
	// Resolver resolves upstream host names. The SSRF guard checks what it
	// returns, and the proxy dials exactly those IPs. Default: the system
	// resolver.
	Resolver Resolver

	// Roots are the roots trusted for upstream TLS, read on every request:
	// when they change, new connections use the new roots and idle ones
	// are closed. Each Connector's caCertSecretRef certificates are added
	// on top. Default: the system pool, never changing. *ca.GlobalCAs
	// adds the global CA Secrets.
	Roots ca.Roots
	// UpstreamRoots are trusted for upstream TLS in addition to Roots.
	UpstreamRoots []*x509.Certificate

	// DialTimeout bounds connecting to an upstream. Default 10s.
	DialTimeout time.Duration
	// TLSHandshakeTimeout bounds TLS handshakes, upstream and with clients
	// inside a CONNECT tunnel. Default 10s.
	TLSHandshakeTimeout time.Duration
	// ResponseHeaderTimeout bounds the wait for upstream response headers
	// once the request is sent; a timeout answers 504. Default 2m.
	ResponseHeaderTimeout time.Duration
	// IdleConnTimeout closes idle upstream connections. Default 90s.
	IdleConnTimeout time.Duration
	// MaxIdleConnsPerHost bounds idle upstream connections per host. Default 64.
	MaxIdleConnsPerHost int
	// UpstreamFastPath sends requests without a body to plain http://
	// upstreams through a lean HTTP/1.1 client (package proxy/upstream),
	// and every other request through net/http's transport as before.
	// Default false; the command's --upstream-fast-path (on by default)
	// sets it.
	UpstreamFastPath bool
	// TunnelIdleTimeout closes an intercepted tunnel's idle keep-alive
	// connection, bounds reading an inner request's headers, and ends a blind
	// tunnel in which neither side sent anything for that long. Default 2m.
	TunnelIdleTimeout time.Duration

	// LeafCacheSize bounds the cache of leaf certificates. Default 1024.
	LeafCacheSize int
	// LeafValidity is the lifetime of a leaf certificate; a cached leaf is
	// replaced when less than a quarter of it is left. Default 24h.
	LeafValidity time.Duration

	// Policies compiles and evaluates the ConnectorClass Rego hooks
	// (authExtractor and auth generators). Default: an engine with the
	// policy package's defaults, logging to Log and registering on
	// Registerer.
	Policies *policy.Engine
	// PolicyBodyLimit bounds a request body that a Rego hook reads or a
	// generator injects into; a larger body is refused with 413. Default
	// 1 MiB.
	PolicyBodyLimit int64

	// AuditLog receives one JSON line per proxied request (see
	// docs/operations.md, "The audit log"). Default: none are written.
	AuditLog io.Writer
	// Log receives error details. Default: discarded.
	Log logr.Logger
	// Registerer registers the proxy metrics. Default: not registered.
	Registerer prometheus.Registerer
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

func (o *Options) setDefaults() error {
	if o.Objects == nil {
		return errors.New("proxy: Objects is required")
	}
	if o.Auth == nil {
		return errors.New("proxy: Auth is required")
	}
	if o.SigningCA == nil {
		if o.CA == nil || o.CA.Cert == nil || o.CA.Key == nil {
			return errors.New("proxy: CA with Cert and Key (or SigningCA) is required")
		}
		authority := o.CA
		o.SigningCA = func() *ca.CA { return authority }
	}
	o.PublicURL = o.PublicURL.OrDefault()
	if o.ClusterDomain == "" {
		o.ClusterDomain = publicurl.DefaultClusterDomain
	}
	setDuration(&o.DialTimeout, 10*time.Second)
	setDuration(&o.TLSHandshakeTimeout, 10*time.Second)
	setDuration(&o.ResponseHeaderTimeout, 2*time.Minute)
	setDuration(&o.IdleConnTimeout, 90*time.Second)
	setDuration(&o.TunnelIdleTimeout, 2*time.Minute)
	setDuration(&o.LeafValidity, 24*time.Hour)
	if o.MaxIdleConnsPerHost <= 0 {
		o.MaxIdleConnsPerHost = 64
	}
	if o.LeafCacheSize <= 0 {
		o.LeafCacheSize = 1024
	}
	if o.Log.GetSink() == nil {
		o.Log = logr.Discard()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.PolicyBodyLimit <= 0 {
		o.PolicyBodyLimit = 1 << 20
	}
	if o.Policies == nil {
		o.Policies = policy.New(policy.Options{Log: o.Log.WithName("policy"), Registerer: o.Registerer})
	}
	return nil
}

func setDuration(d *time.Duration, def time.Duration) {
	if *d <= 0 {
		*d = def
	}
}
