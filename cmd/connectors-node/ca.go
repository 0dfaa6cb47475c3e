package main

import (
	"context"

	"github.com/go-logr/logr"
	"k8s.io/client-go/kubernetes"

	"github.com/connectors-node/connectors-node/kube/ca"
)

// caSource is the proxy CA as this process's roles need it. With the proxy
// role it holds the key: it reads (or creates) the CA Secret and publishes
// the certificates in the CA ConfigMap. A csi-only process reads only the
// ConfigMap, so it never holds the key or reads a Secret.
type caSource struct {
	bundle  func() []byte
	signing func() *ca.CA
	loaded  func() bool
}

func newCASource(ctx context.Context, cfg *config, client kubernetes.Interface, log logr.Logger) (*caSource, error) {
	opts := ca.Options{
		Client:    client,
		Namespace: cfg.namespace,
		Secret:    cfg.caSecret,
		ConfigMap: cfg.caConfigMap,
		Log:       log,
	}
	if cfg.serves(roleProxy) {
		k, err := ca.NewKeeper(ctx, opts)
		if err != nil {
			return nil, err
		}
		go k.Run(ctx)
		return &caSource{bundle: k.BundlePEM, signing: k.Signing, loaded: func() bool { return true }}, nil
	}
	opts.Secret = ""
	r, err := ca.NewBundleReader(opts)
	if err != nil {
		return nil, err
	}
	go r.Run(ctx)
	return &caSource{bundle: r.BundlePEM, loaded: r.Loaded}, nil
}
