package csi

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/mount-utils"

	"github.com/connectors-node/connectors-node/configgen"
	"github.com/connectors-node/connectors-node/csi/mounter"
	"github.com/connectors-node/connectors-node/grammar/publicurl"
	"github.com/connectors-node/connectors-node/kube"
)

// DriverName is the CSI driver name, as in the CSIDriver object.
const DriverName = "connectors-csi"

// Defaults of Options.
const (
	DefaultEndpoint        = "unix:///csi/csi.sock"
	DefaultVersion         = "dev"
	DefaultAudience        = "connectors-proxy"
	DefaultTmpfsSize       = "4Mi"
	DefaultShutdownTimeout = 10 * time.Second
	DefaultKubeletRoot     = "/var/lib/kubelet"
)

// Authorizer decides whether a user may get a Connector. *kube.Reviewer
// satisfies it. Errors wrap kube.ErrForbidden when access is denied and
// kube.ErrUnavailable when no decision could be made.
type Authorizer interface {
	Authorize(ctx context.Context, user kube.User, namespace, name string) error
}

var _ Authorizer = (*kube.Reviewer)(nil)

// PodEvents records Events on the pod a volume belongs to.
// *kube.EventRecorder satisfies it.
type PodEvents interface {
	PodWarning(pod kube.PodRef, reason, action, note string)
}

var _ PodEvents = (*kube.EventRecorder)(nil)

// Approvals creates or reuses the AccessRequest of a pod that lacks the
// proxy permission on a Connector, and reports where it stands.
// *kube.AccessRequests satisfies it.
type Approvals interface {
	Request(ctx context.Context, pod kube.PodRef, serviceAccount string, connector types.NamespacedName) (kube.ApprovalStatus, error)
}

var _ Approvals = (*kube.AccessRequests)(nil)

// Event reasons the plugin records on pods.
const (
	// ReasonWaitingForApproval: the pod may not use a Connector through the
	// proxy yet; its AccessRequest waits for checks.
	ReasonWaitingForApproval = "WaitingForApproval"
	// ReasonAccessRejected: an AccessRequest of the pod was rejected; the
	// volume holds only .error.json.
	ReasonAccessRejected = "AccessRejected"
	// ReasonConfigurationNotFound: some configuration.names were found
	// and mounted, these were not.
	ReasonConfigurationNotFound = "ConfigurationNotFound"
)

// Services reads the host-form Services c-<name> that Connector addresses
// name. *kube.Cache satisfies it. Errors wrap kube.ErrNotFound for a
// missing Service.
type Services interface {
	Service(ctx context.Context, namespace, name string) (*corev1.Service, error)
}

var _ Services = (*kube.Cache)(nil)

// Options configure NewServer. Zero values take the documented defaults.
type Options struct {
	// NodeID is this node's name, reported by NodeGetInfo. Required.
	NodeID string
	// Endpoint is the unix socket to listen on, as unix:///path or a plain
	// path. Its directory is created, and a socket already there (stale,
	// or an older instance's) is atomically replaced; Stop removes it only
	// while it is still this server's. Default DefaultEndpoint.
	Endpoint string
	// Version is reported by GetPluginInfo. Default DefaultVersion.
	Version string
	// Objects reads Connectors and ConnectorClasses. Required.
	Objects kube.Objects
	// Services reads a Connector's host-form Service before a volume is
	// given its host-form address: only the project's Service, controlled
	// by the Connector and leading to the proxy, is trusted. Default: none,
	// so no host-form address is trusted and those volumes use the path
	// form.
	Services Services
	// Authorizer checks the pod's ServiceAccount against each named
	// Connector. Required.
	Authorizer Authorizer
	// Approvals, when set, turns on the approval flow (docs/approvals.md):
	// the pod is checked as its pod-bound token is, so a pod-scoped grant
	// counts, and a pod that lacks the proxy permission gets an
	// AccessRequest; the publish fails with Unavailable until it is
	// granted, and mounts only .error.json once it is rejected. It needs an
	// Authorizer that checks the proxy permission. Default: off.
	Approvals Approvals
	// Ready reports whether the caches have synced; Probe answers not ready
	// until it returns true. Default: always ready.
	Ready func() bool
	// Audience is the token audience of the proxy: the volume uses the
	// kubelet-projected token for it. Default DefaultAudience.
	Audience string
	// PublicURL is the proxy's public address: the forward proxy in the
	// written files and the base of path-form Connector addresses. Default
	// publicurl.Default.
	PublicURL publicurl.URL
	// ClusterDomain is the cluster DNS domain. It completes host-form
	// Connector addresses (c-<name>.<ns>.svc.<ClusterDomain>), and
	// <svc>.<ns>.svc.<domain> names the same Service as the public URL's
	// <svc>.<ns>.svc when a Connector's status address is checked.
	// The same domain completes the cluster-local suffixes of the volumes'
	// no_proxy. Default publicurl.DefaultClusterDomain.
	ClusterDomain string
	// CACertPEM is the proxy CA certificate written into every volume.
	// Required unless CABundle is set.
	CACertPEM []byte
	// CABundle, when set, returns the proxy CA certificates (PEM, one or
	// more) for each publish, in place of CACertPEM, so that a rotated CA
	// reaches volumes at their next republish. While it returns nothing a
	// publish fails with Unavailable. Default: CACertPEM.
	CABundle func() []byte
	// SystemRootsPEM are the node's trusted roots, prepended to the proxy CA
	// in ca-bundle.crt. Default: none, so ca-bundle.crt holds only the proxy CA.
	SystemRootsPEM []byte
	// KubeletRoot is kubelet's root directory: every target_path must lie
	// under it, with no symlink below it. Default DefaultKubeletRoot.
	KubeletRoot string
	// Mounter mounts and unmounts the per-volume tmpfs. Default
	// mounter.New(), which uses system calls and runs no program: the
	// plugin's image has no mount or umount.
	Mounter mount.Interface
	// TmpfsSize is the size limit of each volume's tmpfs, as a Kubernetes
	// quantity. Default DefaultTmpfsSize.
	TmpfsSize string
	// ShutdownTimeout bounds the graceful stop of the gRPC server before
	// in-flight calls are cut. Default DefaultShutdownTimeout.
	ShutdownTimeout time.Duration
	// Log receives structured logs. Default: discarded.
	Log logr.Logger
	// Registerer registers the plugin's metrics. Default: not registered.
	Registerer prometheus.Registerer
	// Events records Warning Events on pods, such as configuration.names
	// that were not found. Default: none are recorded (they are logged).
	Events PodEvents
	// Render turns the resolved Connectors and the token into files.
	// Default configgen.Render.
	Render func(configgen.Input) (map[string][]byte, error)
}

// withDefaults checks the required fields and fills in the defaults.
func (o Options) withDefaults() (Options, int64, error) {
	var missing []error
	if o.NodeID == "" {
		missing = append(missing, errors.New("missing required option NodeID"))
	}
	if o.Objects == nil {
		missing = append(missing, errors.New("missing required option Objects"))
	}
	if o.Authorizer == nil {
		missing = append(missing, errors.New("missing required option Authorizer"))
	}
	if len(o.CACertPEM) == 0 && o.CABundle == nil {
		missing = append(missing, errors.New("missing required option CACertPEM (or CABundle)"))
	}
	if err := errors.Join(missing...); err != nil {
		return o, 0, fmt.Errorf("csi options: %w", err)
	}
	if o.CABundle == nil {
		pem := o.CACertPEM
		o.CABundle = func() []byte { return pem }
	}
	if o.Endpoint == "" {
		o.Endpoint = DefaultEndpoint
	}
	if o.Version == "" {
		o.Version = DefaultVersion
	}
	if o.Ready == nil {
		o.Ready = func() bool { return true }
	}
	if o.Audience == "" {
		o.Audience = DefaultAudience
	}
	o.PublicURL = o.PublicURL.OrDefault()
	if o.ClusterDomain == "" {
		o.ClusterDomain = publicurl.DefaultClusterDomain
	}
	if o.KubeletRoot == "" {
		o.KubeletRoot = DefaultKubeletRoot
	}
	if !filepath.IsAbs(o.KubeletRoot) {
		return o, 0, fmt.Errorf("csi options: KubeletRoot %q is not an absolute path", o.KubeletRoot)
	}
	o.KubeletRoot = filepath.Clean(o.KubeletRoot)
	if o.Mounter == nil {
		o.Mounter = mounter.New()
	}
	if o.TmpfsSize == "" {
		o.TmpfsSize = DefaultTmpfsSize
	}
	size, err := resource.ParseQuantity(o.TmpfsSize)
	if err != nil || size.Value() <= 0 {
		return o, 0, fmt.Errorf("csi options: TmpfsSize %q is not a positive quantity", o.TmpfsSize)
	}
	if o.ShutdownTimeout <= 0 {
		o.ShutdownTimeout = DefaultShutdownTimeout
	}
	if o.Log.GetSink() == nil {
		o.Log = logr.Discard()
	}
	if o.Render == nil {
		o.Render = configgen.Render
	}
	return o, size.Value(), nil
}
