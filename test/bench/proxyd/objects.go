package main

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
	"github.com/connectors-node/connectors-node/test/fake"
)

// Namespace and names of the bench Connectors.
const (
	benchNamespace = "bench"
	plainConnector = "plain" // the plain HTTP upstream
	tlsConnector   = "tls"   // the HTTPS upstream
	secretName     = "upstream-basic"
)

// UpstreamUser and upstreamPass are what the proxy injects; the upstream
// ignores them. They are bench values, not real credentials.
const (
	upstreamUser = "bench"
	upstreamPass = "bench-pass" //nolint:gosec // G101: a fixed bench value
)

// newObjects serves two Connectors and their basic-auth Secret.
func newObjects(plainAddr, tlsAddr string) *fake.Objects {
	o := fake.NewObjects()
	for name, addr := range map[string]string{plainConnector: plainAddr, tlsConnector: tlsAddr} {
		// UID, resourceVersion and generation as an informer's objects have.
		c := &v1alpha1.Connector{ObjectMeta: metav1.ObjectMeta{Namespace: benchNamespace, Name: name,
			UID: types.UID("bench-connector-" + name), ResourceVersion: "1", Generation: 1}}
		c.Spec.Address = addr
		c.Spec.Auth.SecretRef = &corev1.ObjectReference{Name: secretName}
		o.AddConnector(c)
	}
	o.AddSecret(&corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: benchNamespace, Name: secretName, UID: "bench-secret", ResourceVersion: "1"},
		Type:       corev1.SecretTypeBasicAuth,
		Data: map[string][]byte{
			corev1.BasicAuthUsernameKey: []byte(upstreamUser),
			corev1.BasicAuthPasswordKey: []byte(upstreamPass),
		},
	})
	return o
}
