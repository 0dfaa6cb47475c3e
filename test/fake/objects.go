package fake

import (
	"context"
	"sync"

	corev1 "k8s.io/api/core/v1"

	"github.com/connectors-node/connectors-node/kube"
	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
)

// Objects is an in-memory kube.Objects for unit tests: Connectors,
// ConnectorClasses, Secrets and Services from maps, a missing one as the
// kube.NotFoundError the real cache returns. It is safe for concurrent use.
type Objects struct {
	mu         sync.RWMutex
	connectors map[string]*v1alpha1.Connector
	classes    map[string]*v1alpha1.ConnectorClass
	secrets    map[string]*corev1.Secret
	services   map[string]*corev1.Service
	// err, when set, is returned by every read.
	err error
}

var _ kube.Objects = (*Objects)(nil)

// NewObjects returns an empty Objects.
func NewObjects() *Objects {
	return &Objects{
		connectors: map[string]*v1alpha1.Connector{},
		classes:    map[string]*v1alpha1.ConnectorClass{},
		secrets:    map[string]*corev1.Secret{},
		services:   map[string]*corev1.Service{},
	}
}

// AddConnector adds or replaces c and returns it.
func (o *Objects) AddConnector(c *v1alpha1.Connector) *v1alpha1.Connector {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.connectors[c.Namespace+"/"+c.Name] = c
	return c
}

// DeleteConnector removes the Connector namespace/name.
func (o *Objects) DeleteConnector(namespace, name string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.connectors, namespace+"/"+name)
}

// AddClass adds or replaces c.
func (o *Objects) AddClass(c *v1alpha1.ConnectorClass) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.classes[c.Name] = c
}

// AddSecret adds or replaces s.
func (o *Objects) AddSecret(s *corev1.Secret) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.secrets[s.Namespace+"/"+s.Name] = s
}

// AddService adds or replaces s.
func (o *Objects) AddService(s *corev1.Service) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.services[s.Namespace+"/"+s.Name] = s
}

// SetErr makes every read return err; nil reads the maps again.
func (o *Objects) SetErr(err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.err = err
}

// Connector implements kube.Objects.
func (o *Objects) Connector(_ context.Context, namespace, name string) (*v1alpha1.Connector, error) {
	o.mu.RLock()
	defer o.mu.RUnlock()
	if o.err != nil {
		return nil, o.err
	}
	if c, ok := o.connectors[namespace+"/"+name]; ok {
		return c, nil
	}
	return nil, &kube.NotFoundError{Kind: "connector", Key: namespace + "/" + name}
}

// ConnectorClass implements kube.Objects.
func (o *Objects) ConnectorClass(_ context.Context, name string) (*v1alpha1.ConnectorClass, error) {
	o.mu.RLock()
	defer o.mu.RUnlock()
	if o.err != nil {
		return nil, o.err
	}
	if c, ok := o.classes[name]; ok {
		return c, nil
	}
	return nil, &kube.NotFoundError{Kind: "connectorclass", Key: name}
}

// Secret implements kube.Objects.
func (o *Objects) Secret(_ context.Context, namespace, name string) (*corev1.Secret, error) {
	o.mu.RLock()
	defer o.mu.RUnlock()
	if o.err != nil {
		return nil, o.err
	}
	if s, ok := o.secrets[namespace+"/"+name]; ok {
		return s, nil
	}
	return nil, &kube.NotFoundError{Kind: "secret", Key: namespace + "/" + name}
}

// Service reads a Service as kube.Cache.Service does.
func (o *Objects) Service(_ context.Context, namespace, name string) (*corev1.Service, error) {
	o.mu.RLock()
	defer o.mu.RUnlock()
	if o.err != nil {
		return nil, o.err
	}
	if s, ok := o.services[namespace+"/"+name]; ok {
		return s, nil
	}
	return nil, &kube.NotFoundError{Kind: "service", Key: namespace + "/" + name}
}
