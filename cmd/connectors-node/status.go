package main

import (
	"context"
	"fmt"
	"os"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/connectors-node/connectors-node/kube"
	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
	"github.com/connectors-node/connectors-node/proxy"
	"github.com/connectors-node/connectors-node/status"
	"github.com/connectors-node/connectors-node/status/approval"
)

// newStatus builds the status reconciler over the node's cache and proxy.
func newStatus(cfg *config, rc *rest.Config, kc kubernetes.Interface, cache *kube.Cache, p *proxy.Proxy,
	caPEM []byte, log logr.Logger, reg prometheus.Registerer) (*status.Reconciler, error) {
	cl, err := newClient(rc)
	if err != nil {
		return nil, err
	}
	var leading []func(context.Context) error
	if cfg.approval {
		approvals, err := approval.New(approval.Options{
			Client:    cl,
			Events:    kc,
			Namespace: cfg.namespace,
			Log:       log.WithName("approval"),
		})
		if err != nil {
			return nil, err
		}
		leading = append(leading, approvals.Run)
	}
	// The Lease holder's identity: the node, or for a proxy-only process
	// (no node) its host name, which is the pod's name in a Deployment.
	identity := cfg.nodeID
	if identity == "" {
		if identity, err = os.Hostname(); err != nil {
			return nil, fmt.Errorf("status lease identity: %w", err)
		}
	}
	return status.New(status.Options{
		Objects:       cache,
		Kube:          kc,
		Client:        cl,
		Sender:        p,
		Namespace:     cfg.namespace,
		Identity:      identity,
		PublicURL:     cfg.public,
		ClusterDomain: cfg.clusterDomain,
		Audience:      cfg.audience,
		ProxyCACert:   caPEM,
		ProbeInterval: cfg.statusProbeInterval,
		WhileLeading:  leading,
		Log:           log.WithName("status"),
		Registerer:    reg,
	})
}

// newClient is a client of the Kubernetes and connectors types that can
// also watch.
func newClient(rc *rest.Config) (client.WithWatch, error) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	return client.NewWithWatch(rc, client.Options{Scheme: scheme})
}

// runStatus runs the status reconciler until ctx ends; the channel closes
// when it has stopped. Without --status it is closed at once.
func (n *node) runStatus(ctx context.Context) <-chan struct{} {
	done := make(chan struct{})
	if n.status == nil {
		close(done)
		return done
	}
	go func() {
		defer close(done)
		if !n.cache.WaitForSync(ctx) {
			return
		}
		if err := n.status.Run(ctx); err != nil {
			n.log.Error(err, "status reconciler")
		}
	}()
	return done
}
