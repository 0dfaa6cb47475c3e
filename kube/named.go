package kube

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
)

// NamedInformers returns an informer factory whose informers list and
// watch only the object called name in namespace (a field selector on
// metadata.name, which RBAC authorizes against resourceNames). Following
// one object so costs one watch and no polling: a change is seen at once,
// and at rest nothing is requested but the watch's periodic renewal. The
// informers never resync.
func NamedInformers(client kubernetes.Interface, namespace, name string) informers.SharedInformerFactory {
	sel := fields.OneTermEqualSelector("metadata.name", name).String()
	return informers.NewSharedInformerFactoryWithOptions(client, 0,
		informers.WithNamespace(namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.FieldSelector = sel }))
}
