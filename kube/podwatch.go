package kube

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/metadata/metadatainformer"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
)

// PodWatchOptions configure NewPodWatch.
type PodWatchOptions struct {
	// Config reaches the API server. Required.
	Config *rest.Config
	// NodeName limits the watch to the pods bound to this node (the field
	// selector spec.nodeName=NodeName, as kubelet's). Empty watches the
	// pods of every node, for a proxy that serves them all.
	NodeName string
	// Deleted is called with every pod that is deleted, or replaced by a
	// pod of the same name and another UID. Required.
	Deleted func(PodRef)
	// Breaker is told when the watch fails (Disrupted), so that refusals
	// of the node's reads right after the API server comes back are taken
	// for its recovery. Default: none.
	Breaker *Breaker
	// Log receives the watch's errors, and a line for each deletion at
	// -v=2. Default: discarded.
	Log logr.Logger
}

// PodWatch follows pods, their names and UIDs only (a metadata informer
// whose objects are trimmed to those), and reports each deletion, so that
// what the node cached about a deleted pod's token is dropped within
// seconds instead of at its TTL.
type PodWatch struct {
	opts     PodWatchOptions
	informer toolscache.SharedIndexInformer
}

// NewPodWatch builds a PodWatch. Call Start.
func NewPodWatch(opts PodWatchOptions) (*PodWatch, error) {
	if opts.Config == nil {
		return nil, errors.New("pod watch: Config is required")
	}
	if opts.Deleted == nil {
		return nil, errors.New("pod watch: Deleted is required")
	}
	if opts.Log.GetSink() == nil {
		opts.Log = logr.Discard()
	}
	client, err := metadata.NewForConfig(opts.Config)
	if err != nil {
		return nil, fmt.Errorf("pod watch: %w", err)
	}
	var tweak metadatainformer.TweakListOptionsFunc
	if opts.NodeName != "" {
		selector := fields.OneTermEqualSelector("spec.nodeName", opts.NodeName).String()
		tweak = func(o *metav1.ListOptions) { o.FieldSelector = selector }
	}
	w := &PodWatch{opts: opts}
	w.informer = metadatainformer.NewFilteredMetadataInformer(client, corev1.SchemeGroupVersion.WithResource("pods"),
		"", 0, toolscache.Indexers{}, tweak).Informer()
	if err := w.informer.SetTransform(trimPod); err != nil {
		return nil, fmt.Errorf("pod watch: %w", err)
	}
	if err := w.informer.SetWatchErrorHandlerWithContext(w.watchFailed); err != nil {
		return nil, fmt.Errorf("pod watch: %w", err)
	}
	_, err = w.informer.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		UpdateFunc: w.updated,
		DeleteFunc: func(obj any) {
			if pod, ok := podRefOf(obj); ok {
				w.deleted(pod)
			}
		},
	})
	if err != nil {
		return nil, fmt.Errorf("pod watch: %w", err)
	}
	return w, nil
}

// Start runs the watch until ctx ends. Watch errors go to Log.
func (w *PodWatch) Start(ctx context.Context) {
	go w.informer.RunWithContext(logr.NewContext(ctx, w.opts.Log))
}

// Synced reports whether the first list of pods is in.
func (w *PodWatch) Synced() bool { return w.informer.HasSynced() }

// updated reports the old pod when the name now holds another pod: its
// deletion was missed (the watch was down, the list that followed saw the
// new pod).
func (w *PodWatch) updated(oldObj, newObj any) {
	prev, ok1 := podRefOf(oldObj)
	cur, ok2 := podRefOf(newObj)
	if ok1 && ok2 && prev.UID != cur.UID {
		w.deleted(prev)
	}
}

func (w *PodWatch) deleted(pod PodRef) {
	w.opts.Log.V(2).Info("pod deleted; its tokens end", "pod", pod.Namespace+"/"+pod.Name, "pod_uid", pod.UID)
	w.opts.Deleted(pod)
}

// watchFailed logs like client-go's default handler and, unless the watch
// merely closed or its resource version expired (routine), tells the
// breaker.
func (w *PodWatch) watchFailed(ctx context.Context, r *toolscache.Reflector, err error) {
	toolscache.DefaultWatchErrorHandler(ctx, r, err)
	routine := errors.Is(err, io.EOF) || apierrors.IsResourceExpired(err) || apierrors.IsGone(err)
	if w.opts.Breaker != nil && !routine {
		w.opts.Breaker.Disrupted()
	}
}

// trimPod keeps only what the watch needs of a pod: namespace, name and UID.
func trimPod(obj any) (any, error) {
	m, ok := obj.(*metav1.PartialObjectMetadata)
	if !ok {
		return obj, nil
	}
	return &metav1.PartialObjectMetadata{
		TypeMeta: m.TypeMeta,
		ObjectMeta: metav1.ObjectMeta{
			Namespace:       m.Namespace,
			Name:            m.Name,
			UID:             m.UID,
			ResourceVersion: m.ResourceVersion,
		},
	}, nil
}

func podRefOf(obj any) (PodRef, bool) {
	if d, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	m, ok := obj.(*metav1.PartialObjectMetadata)
	if !ok {
		return PodRef{}, false
	}
	return PodRef{Namespace: m.Namespace, Name: m.Name, UID: string(m.UID)}, true
}
