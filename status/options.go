package status

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/kubernetes"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/connectors-node/connectors-node/grammar/publicurl"
	"github.com/connectors-node/connectors-node/kube"
	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
)

// Source is the node's informer cache. *kube.Cache satisfies it.
type Source interface {
	kube.Objects
	// Connectors lists every cached Connector.
	Connectors(ctx context.Context) ([]*v1alpha1.Connector, error)
	// AddEventHandler registers h on the informer of obj.
	AddEventHandler(ctx context.Context, obj client.Object, h toolscache.ResourceEventHandler) (func() error, error)
}

// Sender sends a request on a Connector's behalf, with its credential,
// refusing URLs outside its addresses (SendAs) or outside the class API's
// address (SendToAPI). *proxy.Proxy satisfies it.
type Sender interface {
	SendAs(ctx context.Context, c *v1alpha1.Connector, r *http.Request) (*http.Response, error)
	SendToAPI(ctx context.Context, c *v1alpha1.Connector, api *v1alpha1.Addressable, r *http.Request) (*http.Response, error)
}

// Options configure New. Zero values take the documented defaults.
type Options struct {
	// Objects is the informer cache the reconciler reads. Required.
	Objects Source
	// Kube manages the Lease, the per-Connector Services and Events. Required.
	Kube kubernetes.Interface
	// Client patches the status subresources. Required.
	Client client.Client
	// Sender runs the probes. Required.
	Sender Sender
	// Namespace holds the Lease. Required.
	Namespace string
	// Identity names this candidate in the Lease (the node name). Required.
	Identity string
	// LeaseName is the Lease's name. Default connectors-node-status.
	LeaseName string
	// LeaseDuration is how long a lease lasts without renewal; a stopped
	// leader is replaced within it. Default 15s.
	LeaseDuration time.Duration
	// RenewDeadline is how long the leader keeps trying to renew before it
	// stops writing. Default 10s; must be below LeaseDuration.
	RenewDeadline time.Duration
	// RetryPeriod is the wait between lease attempts. Default 2s.
	RetryPeriod time.Duration

	// PublicURL is the node proxy's public address: the path-form base and
	// the target of host-form Services. Default publicurl.Default.
	PublicURL publicurl.URL
	// ClusterDomain completes host-form names. Default
	// publicurl.DefaultClusterDomain.
	ClusterDomain string
	// Audience is the token audience the node proxy accepts, written to
	// status.proxy.httpAddress.audience. Default connectors-proxy.
	Audience string
	// ProxyCACert is the proxy CA (PEM), written to
	// status.proxy.httpAddress.CACerts when PublicURL is https.
	ProxyCACert []byte

	// Workers reconcile in parallel. Default 4.
	Workers int
	// ProbeWorkers bound the probes in flight. Default 4.
	ProbeWorkers int
	// ProbeRate bounds probe runs per second across all Connectors. Default 10.
	ProbeRate float64
	// ProbeInterval is the time between probes of a healthy Connector, and
	// between resyncs of every object. Default 5m.
	ProbeInterval time.Duration
	// ProbeJitter is the fraction of the interval added at random, so
	// Connectors created together do not probe together. Default 0.2.
	ProbeJitter float64
	// ProbeBackoff is the first retry delay after a failed probe; it doubles
	// up to ProbeInterval. Default 15s.
	ProbeBackoff time.Duration
	// ProbeTimeout bounds one probe, redirects included. Default 10s.
	ProbeTimeout time.Duration

	// WhileLeading are more controllers that run only while this node holds
	// the Lease, such as the approval controller (status/approval); each
	// stops when its context ends. Default: none.
	WhileLeading []func(ctx context.Context) error

	// Log receives reconcile errors. Default: discarded.
	Log logr.Logger
	// Registerer registers the metrics. Default: not registered.
	Registerer prometheus.Registerer
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// DefaultLeaseName is the Lease the status writers campaign for.
const DefaultLeaseName = "connectors-node-status"

func (o *Options) setDefaults() error {
	var errs []error
	if o.Objects == nil {
		errs = append(errs, errors.New("status: Objects is required"))
	}
	if o.Kube == nil {
		errs = append(errs, errors.New("status: Kube is required"))
	}
	if o.Client == nil {
		errs = append(errs, errors.New("status: Client is required"))
	}
	if o.Sender == nil {
		errs = append(errs, errors.New("status: Sender is required"))
	}
	if o.Namespace == "" {
		errs = append(errs, errors.New("status: Namespace is required"))
	}
	if o.Identity == "" {
		errs = append(errs, errors.New("status: Identity is required"))
	}
	if o.LeaseName == "" {
		o.LeaseName = DefaultLeaseName
	}
	def(&o.LeaseDuration, 15*time.Second)
	def(&o.RenewDeadline, 10*time.Second)
	def(&o.RetryPeriod, 2*time.Second)
	if o.RenewDeadline >= o.LeaseDuration {
		errs = append(errs, errors.New("status: RenewDeadline must be below LeaseDuration"))
	}
	o.PublicURL = o.PublicURL.OrDefault()
	if o.ClusterDomain == "" {
		o.ClusterDomain = publicurl.DefaultClusterDomain
	}
	if o.Audience == "" {
		o.Audience = "connectors-proxy"
	}
	if o.Workers <= 0 {
		o.Workers = 4
	}
	if o.ProbeWorkers <= 0 {
		o.ProbeWorkers = 4
	}
	if o.ProbeRate <= 0 {
		o.ProbeRate = 10
	}
	def(&o.ProbeInterval, 5*time.Minute)
	if o.ProbeJitter <= 0 {
		o.ProbeJitter = 0.2
	}
	def(&o.ProbeBackoff, 15*time.Second)
	def(&o.ProbeTimeout, 10*time.Second)
	if o.Log.GetSink() == nil {
		o.Log = logr.Discard()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return errors.Join(errs...)
}

func def(d *time.Duration, v time.Duration) {
	if *d <= 0 {
		*d = v
	}
}
