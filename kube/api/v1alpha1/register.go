package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GroupVersion is the API group and version of the types in this package.
var GroupVersion = schema.GroupVersion{Group: "connectors.alauda.io", Version: "v1alpha1"}

// Resource names used in RBAC checks and REST paths.
const (
	ConnectorResource      = "connectors"
	ConnectorClassResource = "connectorclasses"
	// ProxySubresource is checked when the connector proxy permission option is on.
	ProxySubresource = "proxy"
	// APISubresource is checked, as apis/<class> or apis/<class>/<path>,
	// when the Connectors API permission option is on.
	APISubresource = "apis"
)

// AddToScheme registers the types of this package with a scheme.
func AddToScheme(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion,
		&Connector{}, &ConnectorList{},
		&ConnectorClass{}, &ConnectorClassList{},
		&ResourceInterface{}, &ResourceInterfaceList{},
		&AccessPolicy{}, &AccessPolicyList{},
		&AccessRequest{}, &AccessRequestList{},
	)
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
