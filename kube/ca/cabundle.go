package ca

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/connectors-node/connectors-node/kube"
)

// The proxy CA's certificates are published without the key in a ConfigMap
// of the service's namespace, as kube-root-ca.crt publishes the cluster's.
// The process that holds the key (the proxy) writes it; a CSI-only node
// reads only that ConfigMap and never the CA Secret.
const (
	// BundleKey is the key, in the published ConfigMap and in the CA
	// Secret, of a PEM bundle of CA certificates. In the Secret it holds
	// the certificates kept trusted beside tls.crt during a rotation.
	BundleKey = "ca.crt"
	// DefaultConfigMap is the name of the published ConfigMap.
	DefaultConfigMap = "connectors-proxy-ca.crt"
)

// Bundle returns the certificates pods are to trust, in PEM: BundlePEM, or
// CertPEM when that is empty.
func (ca *CA) Bundle() []byte {
	if len(ca.BundlePEM) == 0 {
		return ca.CertPEM
	}
	return ca.BundlePEM
}

// caFromSecret reads the signing CA (tls.crt, tls.key) and the certificates
// kept trusted beside it (ca.crt) from the CA Secret.
func caFromSecret(s *corev1.Secret) (*CA, error) {
	ca, err := ParseCA(s.Data[corev1.TLSCertKey], s.Data[corev1.TLSPrivateKeyKey])
	if err != nil {
		return nil, err
	}
	bundle := append(bytes.Clone(ca.CertPEM), s.Data[BundleKey]...)
	if ca.BundlePEM, err = NormalizeBundle(bundle); err != nil {
		return nil, fmt.Errorf("%s: %w", BundleKey, err)
	}
	return ca, nil
}

// NormalizeBundle checks that b holds one or more PEM certificates, each a
// CA certificate, and nothing else (no key, no other block, no stray text),
// and returns them re-encoded in order with duplicates dropped.
func NormalizeBundle(b []byte) ([]byte, error) {
	var out []byte
	seen := map[string]bool{}
	rest := b
	for n := 1; ; n++ {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("PEM block %d is a %q, not a CERTIFICATE", n, block.Type)
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("PEM block %d: %w", n, err)
		}
		if !cert.IsCA {
			return nil, fmt.Errorf("PEM block %d is not a CA certificate", n)
		}
		if seen[string(block.Bytes)] {
			continue
		}
		seen[string(block.Bytes)] = true
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: block.Bytes})...)
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return nil, errors.New("text that is not a PEM block")
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM certificate")
	}
	return out, nil
}

// PublishBundle writes bundle (certificates only) to the ConfigMap
// namespace/name under ca.crt, creating it when absent and updating it only
// when it differs. Concurrent writers retry on conflicts.
func PublishBundle(ctx context.Context, client kubernetes.Interface, namespace, name string, bundle []byte) error {
	if _, err := NormalizeBundle(bundle); err != nil {
		return fmt.Errorf("publishing the proxy CA certificates: %w", err)
	}
	cms := client.CoreV1().ConfigMaps(namespace)
	for attempt := 0; attempt < 5; attempt++ {
		cm, err := cms.Get(ctx, name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			cm = &corev1.ConfigMap{
				ObjectMeta: metav1.ObjectMeta{
					Namespace: namespace,
					Name:      name,
					Labels:    map[string]string{"app.kubernetes.io/name": "connectors-node"},
				},
				Data: map[string]string{BundleKey: string(bundle)},
			}
			_, err = cms.Create(ctx, cm, metav1.CreateOptions{})
			if apierrors.IsAlreadyExists(err) {
				continue
			}
			if err != nil {
				return fmt.Errorf("creating configmap %s/%s: %w", namespace, name, kube.Classify(err))
			}
			return nil
		case err != nil:
			return fmt.Errorf("reading configmap %s/%s: %w", namespace, name, kube.Classify(err))
		}
		if holdsBundle(cm, bundle) {
			return nil
		}
		// Only the bundle: nothing else may sit beside it.
		cm.Data = map[string]string{BundleKey: string(bundle)}
		cm.BinaryData = nil
		_, err = cms.Update(ctx, cm, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("updating configmap %s/%s: %w", namespace, name, kube.Classify(err))
		}
		return nil
	}
	return fmt.Errorf("configmap %s/%s: gave up after concurrent updates", namespace, name)
}

// holdsBundle reports whether cm holds bundle under ca.crt and nothing else.
func holdsBundle(cm *corev1.ConfigMap, bundle []byte) bool {
	return cm.Data[BundleKey] == string(bundle) && len(cm.BinaryData) == 0 && len(cm.Data) == 1
}

// Options configure NewKeeper and NewBundleReader.
type Options struct {
	// Client reaches the API server. Required.
	Client kubernetes.Interface
	// Namespace is the service's namespace. Required.
	Namespace string
	// Secret is the name of the CA Secret (tls.crt, tls.key and, during a
	// rotation, ca.crt). Required by NewKeeper; NewBundleReader never
	// reads it.
	Secret string
	// ConfigMap is the name of the ConfigMap that publishes the
	// certificates. Default DefaultConfigMap.
	ConfigMap string
	// Log receives the changes seen and the failures. Default: discarded.
	Log logr.Logger
}

func (o *Options) defaults(needSecret bool) error {
	var missing []error
	if o.Client == nil {
		missing = append(missing, errors.New("option Client is required"))
	}
	if o.Namespace == "" {
		missing = append(missing, errors.New("option Namespace is required"))
	}
	if needSecret && o.Secret == "" {
		missing = append(missing, errors.New("option Secret is required"))
	}
	if err := errors.Join(missing...); err != nil {
		return fmt.Errorf("proxy CA: %w", err)
	}
	if o.ConfigMap == "" {
		o.ConfigMap = DefaultConfigMap
	}
	if o.Log.GetSink() == nil {
		o.Log = logr.Discard()
	}
	return nil
}

// Keeper is the proxy CA as the process that holds its key sees it. It
// loads (or creates) the CA Secret, publishes the certificates in the
// ConfigMap, and watches both (one watch each, selected by name), so that a
// rotation takes effect at once without a restart: leaves are signed with
// the Secret's current tls.key, and the published bundle holds tls.crt and
// ca.crt. A ConfigMap that stops holding that bundle (edited, deleted, or
// published by a replica that saw an older Secret) is published again
// after a fresh read of the Secret, so replicas never publish over each
// other from stale views. At rest nothing is requested.
type Keeper struct {
	opts Options
	cur  atomic.Pointer[CA]

	secret, configMap cache.SharedIndexInformer
	factories         []informers.SharedInformerFactory
	// queue is made by Run.
	queue workqueue.TypedRateLimitingInterface[string]
}

// NewKeeper loads or creates the CA and publishes its certificates. Call
// Run to follow rotations.
func NewKeeper(ctx context.Context, opts Options) (*Keeper, error) {
	if err := opts.defaults(true); err != nil {
		return nil, err
	}
	ca, err := LoadOrCreateCA(ctx, opts.Client, opts.Namespace, opts.Secret)
	if err != nil {
		return nil, err
	}
	if err := PublishBundle(ctx, opts.Client, opts.Namespace, opts.ConfigMap, ca.Bundle()); err != nil {
		return nil, err
	}
	k := &Keeper{opts: opts}
	k.cur.Store(ca)
	sf := kube.NamedInformers(opts.Client, opts.Namespace, opts.Secret)
	cf := kube.NamedInformers(opts.Client, opts.Namespace, opts.ConfigMap)
	k.factories = []informers.SharedInformerFactory{sf, cf}
	k.secret = sf.Core().V1().Secrets().Informer()
	k.configMap = cf.Core().V1().ConfigMaps().Informer()
	enqueue := func(any) { k.queue.Add(opts.Namespace + "/" + opts.Secret) }
	h := cache.ResourceEventHandlerFuncs{AddFunc: enqueue, UpdateFunc: func(_, obj any) { enqueue(obj) }, DeleteFunc: enqueue}
	for what, inf := range map[string]cache.SharedIndexInformer{"secret " + opts.Secret: k.secret, "configmap " + opts.ConfigMap: k.configMap} {
		if err := watchOne(inf, opts.Namespace+"/"+what, h, opts.Log); err != nil {
			return nil, err
		}
	}
	return k, nil
}

// watchOne sends the events of inf to h and its watch errors to log.
func watchOne(inf cache.SharedIndexInformer, what string, h cache.ResourceEventHandler, log logr.Logger) error {
	if err := inf.SetWatchErrorHandlerWithContext(func(_ context.Context, _ *cache.Reflector, err error) {
		log.Error(err, "watching the proxy CA", "object", what)
	}); err != nil {
		return fmt.Errorf("proxy CA %s: %w", what, err)
	}
	if _, err := inf.AddEventHandler(h); err != nil {
		return fmt.Errorf("proxy CA %s: %w", what, err)
	}
	return nil
}

// Signing returns the CA that signs new leaf certificates.
func (k *Keeper) Signing() *CA { return k.cur.Load() }

// BundlePEM returns the certificates pods are to trust.
func (k *Keeper) BundlePEM() []byte { return k.cur.Load().Bundle() }

// Run watches the Secret and the ConfigMap until ctx ends. A Secret that
// has become invalid or was deleted is logged and the CA in use is kept; a
// failed publish is retried with backoff.
func (k *Keeper) Run(ctx context.Context) {
	// The handlers send to the queue only once the informers run.
	k.queue = workqueue.NewTypedRateLimitingQueueWithConfig(
		workqueue.DefaultTypedControllerRateLimiter[string](),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: "connectors-proxy-ca"})
	defer k.queue.ShutDown()
	for _, f := range k.factories {
		f.Start(ctx.Done())
		defer f.Shutdown()
	}
	if !cache.WaitForCacheSync(ctx.Done(), k.secret.HasSynced, k.configMap.HasSynced) {
		return
	}
	k.queue.Add(k.opts.Namespace + "/" + k.opts.Secret)
	go func() {
		<-ctx.Done()
		k.queue.ShutDown()
	}()
	for {
		key, stop := k.queue.Get()
		if stop {
			return
		}
		if err := k.sync(ctx); err != nil && ctx.Err() == nil {
			k.opts.Log.Error(err, "publishing the proxy CA certificates; retrying")
			k.queue.AddRateLimited(key)
		} else {
			k.queue.Forget(key)
		}
		k.queue.Done(key)
	}
}

// sync adopts the watched Secret's CA and, when the watched ConfigMap does
// not hold its bundle, reads the Secret afresh and publishes.
func (k *Keeper) sync(ctx context.Context) error {
	obj, ok, err := k.secret.GetStore().GetByKey(k.opts.Namespace + "/" + k.opts.Secret)
	switch s, isSecret := obj.(*corev1.Secret); {
	case err != nil:
		return err
	case !ok:
		k.opts.Log.Info("the proxy CA secret is gone; keeping the CA in use", "secret", k.opts.Namespace+"/"+k.opts.Secret)
	case isSecret:
		if err := k.adopt(s); err != nil {
			k.opts.Log.Error(err, "keeping the proxy CA in use")
		}
	}
	obj, ok, err = k.configMap.GetStore().GetByKey(k.opts.Namespace + "/" + k.opts.ConfigMap)
	if err != nil {
		return err
	}
	if cm, isCM := obj.(*corev1.ConfigMap); ok && isCM && holdsBundle(cm, k.BundlePEM()) {
		return nil
	}
	return k.Refresh(ctx)
}

// Refresh reads the Secret once, switches to its CA when it changed, and
// publishes the bundle.
func (k *Keeper) Refresh(ctx context.Context) error {
	s, err := k.opts.Client.CoreV1().Secrets(k.opts.Namespace).Get(ctx, k.opts.Secret, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("reading proxy CA secret %s/%s: %w", k.opts.Namespace, k.opts.Secret, kube.Classify(err))
	}
	if err := k.adopt(s); err != nil {
		return err
	}
	return PublishBundle(ctx, k.opts.Client, k.opts.Namespace, k.opts.ConfigMap, k.cur.Load().Bundle())
}

// adopt switches to the CA of s when it is valid and differs from the one
// in use.
func (k *Keeper) adopt(s *corev1.Secret) error {
	ca, err := caFromSecret(s)
	if err != nil {
		return fmt.Errorf("proxy CA secret %s/%s: %w", k.opts.Namespace, k.opts.Secret, err)
	}
	old := k.cur.Load()
	if !bytes.Equal(old.CertPEM, ca.CertPEM) || !bytes.Equal(old.Bundle(), ca.Bundle()) {
		k.cur.Store(ca)
		k.opts.Log.Info("proxy CA changed", "signing_serial", ca.Cert.SerialNumber.String(), "trusted", bytes.Count(ca.Bundle(), []byte("-----BEGIN")))
	}
	return nil
}

// BundleReader follows the published ConfigMap with one watch: the proxy
// CA's certificates as a CSI-only node sees them, without the key.
type BundleReader struct {
	opts     Options
	cur      atomic.Pointer[[]byte]
	factory  informers.SharedInformerFactory
	informer cache.SharedIndexInformer
}

// NewBundleReader builds a reader; it holds no bundle until Run has seen
// the ConfigMap.
func NewBundleReader(opts Options) (*BundleReader, error) {
	if err := opts.defaults(false); err != nil {
		return nil, err
	}
	r := &BundleReader{opts: opts, factory: kube.NamedInformers(opts.Client, opts.Namespace, opts.ConfigMap)}
	r.informer = r.factory.Core().V1().ConfigMaps().Informer()
	seen := func(obj any) {
		cm, ok := obj.(*corev1.ConfigMap)
		if !ok {
			return
		}
		if err := r.adopt(cm); err != nil {
			r.opts.Log.Error(err, "reading the proxy CA certificates; keeping the ones in use")
		}
	}
	// A deleted ConfigMap keeps the bundle in use: no DeleteFunc.
	err := watchOne(r.informer, opts.Namespace+"/configmap "+opts.ConfigMap, cache.ResourceEventHandlerFuncs{
		AddFunc:    seen,
		UpdateFunc: func(_, obj any) { seen(obj) },
	}, opts.Log)
	if err != nil {
		return nil, err
	}
	return r, nil
}

// BundlePEM returns the certificates, or nil before the first read.
func (r *BundleReader) BundlePEM() []byte {
	if b := r.cur.Load(); b != nil {
		return *b
	}
	return nil
}

// Loaded reports whether a bundle was read.
func (r *BundleReader) Loaded() bool { return r.cur.Load() != nil }

// Run watches the ConfigMap until ctx ends: it is adopted when it is
// created and whenever it changes. A ConfigMap that stops holding valid
// certificates, or is deleted, keeps the bundle in use.
func (r *BundleReader) Run(ctx context.Context) {
	r.factory.Start(ctx.Done())
	<-ctx.Done()
	r.factory.Shutdown()
}

// Refresh reads the ConfigMap once.
func (r *BundleReader) Refresh(ctx context.Context) error {
	ns, name := r.opts.Namespace, r.opts.ConfigMap
	cm, err := r.opts.Client.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("reading configmap %s/%s: %w", ns, name, kube.Classify(err))
	}
	return r.adopt(cm)
}

// adopt switches to the bundle of cm when it is valid and differs.
func (r *BundleReader) adopt(cm *corev1.ConfigMap) error {
	b, err := NormalizeBundle([]byte(cm.Data[BundleKey]))
	if err != nil {
		return fmt.Errorf("configmap %s/%s key %s: %w", cm.Namespace, cm.Name, BundleKey, err)
	}
	if old := r.BundlePEM(); !bytes.Equal(old, b) {
		r.cur.Store(&b)
		r.opts.Log.Info("proxy CA certificates changed", "trusted", bytes.Count(b, []byte("-----BEGIN")))
	}
	return nil
}
