package main

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/connectors-node/connectors-node/kube"
	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
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

// objects serves two Connectors and their basic-auth Secret. It is
// read-only after construction, so it needs no lock.
type objects struct {
	connectors map[string]*v1alpha1.Connector
	secret     *corev1.Secret
}

var _ kube.Objects = (*objects)(nil)

func newObjects(plainAddr, tlsAddr string) *objects {
	o := &objects{connectors: map[string]*v1alpha1.Connector{}}
	for name, addr := range map[string]string{plainConnector: plainAddr, tlsConnector: tlsAddr} {
		// UID, resourceVersion and generation as an informer's objects have.
		c := &v1alpha1.Connector{ObjectMeta: metav1.ObjectMeta{Namespace: benchNamespace, Name: name,
			UID: types.UID("bench-connector-" + name), ResourceVersion: "1", Generation: 1}}
		c.Spec.Address = addr
		c.Spec.Auth.SecretRef = &corev1.ObjectReference{Name: secretName}
		o.connectors[name] = c
	}
	o.secret = &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: benchNamespace, Name: secretName, UID: "bench-secret", ResourceVersion: "1"},
		Type:       corev1.SecretTypeBasicAuth,
		Data: map[string][]byte{
			corev1.BasicAuthUsernameKey: []byte(upstreamUser),
			corev1.BasicAuthPasswordKey: []byte(upstreamPass),
		},
	}
	return o
}

func (o *objects) Connector(_ context.Context, ns, name string) (*v1alpha1.Connector, error) {
	if c, ok := o.connectors[name]; ok && ns == benchNamespace {
		return c, nil
	}
	return nil, &kube.NotFoundError{Kind: "connector", Key: ns + "/" + name}
}

func (o *objects) ConnectorClass(_ context.Context, name string) (*v1alpha1.ConnectorClass, error) {
	return nil, &kube.NotFoundError{Kind: "connectorclass", Key: name}
}

func (o *objects) Secret(_ context.Context, ns, name string) (*corev1.Secret, error) {
	if ns == benchNamespace && name == secretName {
		return o.secret, nil
	}
	return nil, &kube.NotFoundError{Kind: "secret", Key: ns + "/" + name}
}
