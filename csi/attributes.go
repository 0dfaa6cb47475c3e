package csi

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/apimachinery/pkg/types"

	"github.com/connectors-node/connectors-node/configgen"
	"github.com/connectors-node/connectors-node/grammar/connref"
)

// Volume attributes (volume_context keys) of a Connectors volume.
const (
	AttrConnectors          = "connectors"
	AttrConnectorName       = "connector.name"      // deprecated single-connector form
	AttrConnectorNamespace  = "connector.namespace" // deprecated single-connector form
	AttrConfigurationNames  = "configuration.names"
	AttrConfigurationParams = "configuration.params"
	AttrTokenExpiration     = "token.expiration"
)

// Keys kubelet sets in volume_context (and, for TokensKey, in the request
// secrets on Kubernetes 1.35 and later).
const (
	AttrPodName        = "csi.storage.k8s.io/pod.name"
	AttrPodNamespace   = "csi.storage.k8s.io/pod.namespace"
	AttrPodUID         = "csi.storage.k8s.io/pod.uid"
	AttrServiceAccount = "csi.storage.k8s.io/serviceAccount.name"
	AttrEphemeral      = "csi.storage.k8s.io/ephemeral"
	TokensKey          = "csi.storage.k8s.io/serviceAccount.tokens" //nolint:gosec // G101: the name of a volume attribute, not a credential
)

// Bounds of the request fields kubelet passes on. Nothing larger is parsed,
// logged or echoed in an error.
const (
	maxVolumeID = 1024
	// maxAttributes bounds the number of volume_context keys.
	maxAttributes = 64
	maxKeyBytes   = 256
	// maxValueBytes bounds one attribute; configuration.params is the
	// largest a volume needs.
	maxValueBytes = 16 << 10
	// maxTokensBytes bounds the kubelet's token JSON, which carries one
	// token per audience of the CSIDriver.
	maxTokensBytes = 64 << 10
)

// checkSizes bounds the volume_context and the request secrets.
func checkSizes(attrs, secrets map[string]string) error {
	if len(attrs) > maxAttributes {
		return status.Errorf(codes.InvalidArgument, "volume_context has %d attributes, at most %d allowed", len(attrs), maxAttributes)
	}
	for what, m := range map[string]map[string]string{"volume attribute": attrs, "secret": secrets} {
		for k, v := range m {
			limit := maxValueBytes
			if k == TokensKey {
				limit = maxTokensBytes
			}
			switch {
			case len(k) > maxKeyBytes:
				return status.Errorf(codes.InvalidArgument, "%s key %q is %d bytes long, at most %d allowed", what, truncate(k, 64), len(k), maxKeyBytes)
			case len(v) > limit:
				return status.Errorf(codes.InvalidArgument, "%s %s is %d bytes long, at most %d allowed", what, k, len(v), limit)
			}
		}
	}
	return nil
}

// volumeAttributes is the parsed volume_context of a publish request.
type volumeAttributes struct {
	PodNamespace   string
	PodName        string
	PodUID         string
	ServiceAccount string
	Connectors     []types.NamespacedName
	Include        []string
	Exclude        []string
	Params         map[string]map[string]any
	// TokenExpiration is the requested token lifetime, 0 when not set.
	TokenExpiration time.Duration
}

// invalidAttribute is the InvalidArgument error for a volume attribute.
func invalidAttribute(key, format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, "volume attribute %s: %s", key, fmt.Sprintf(format, args...))
}

// parseAttributes reads the volume attributes the plugin uses. Unknown keys
// are ignored.
func parseAttributes(attrs map[string]string) (volumeAttributes, error) {
	var va volumeAttributes
	for _, key := range []string{AttrPodNamespace, AttrServiceAccount} {
		if attrs[key] == "" {
			return va, status.Errorf(codes.FailedPrecondition,
				"volume attribute %s is missing: the CSIDriver %s needs podInfoOnMount: true", key, DriverName)
		}
	}
	va.PodNamespace = attrs[AttrPodNamespace]
	va.PodName = attrs[AttrPodName]
	va.PodUID = attrs[AttrPodUID]
	va.ServiceAccount = attrs[AttrServiceAccount]
	if msg := connref.CheckNamespace(va.PodNamespace); msg != "" {
		return va, invalidAttribute(AttrPodNamespace, "%q %s", va.PodNamespace, msg)
	}
	if msg := connref.CheckName(va.ServiceAccount); msg != "" {
		return va, invalidAttribute(AttrServiceAccount, "%q %s", va.ServiceAccount, msg)
	}
	if va.PodName != "" {
		if msg := connref.CheckName(va.PodName); msg != "" {
			return va, invalidAttribute(AttrPodName, "%q %s", va.PodName, msg)
		}
	}

	var err error
	if va.Connectors, err = parseConnectors(attrs, va.PodNamespace); err != nil {
		return va, err
	}
	if va.Include, va.Exclude, err = configgen.ParseNames(attrs[AttrConfigurationNames]); err != nil {
		return va, statusError(err, "volume attribute %s", AttrConfigurationNames)
	}
	if va.Params, err = parseParams(attrs[AttrConfigurationParams]); err != nil {
		return va, err
	}
	if va.TokenExpiration, err = parseExpiration(attrs[AttrTokenExpiration]); err != nil {
		return va, err
	}
	return va, nil
}

// parseConnectors reads the connectors list, or the deprecated
// connector.name and connector.namespace pair.
func parseConnectors(attrs map[string]string, podNamespace string) ([]types.NamespacedName, error) {
	list, hasList := attrs[AttrConnectors]
	name, hasName := attrs[AttrConnectorName]
	namespace, hasNamespace := attrs[AttrConnectorNamespace]
	switch {
	case hasList && (hasName || hasNamespace):
		return nil, invalidAttribute(AttrConnectors, "set either %s or the deprecated %s, not both", AttrConnectors, AttrConnectorName)
	case hasList:
		return parseConnectorList(list, podNamespace)
	case hasNamespace && !hasName:
		return nil, invalidAttribute(AttrConnectorNamespace, "set without %s", AttrConnectorName)
	case hasName:
		if namespace == "" {
			namespace = podNamespace
		}
		if msg := connref.CheckNamespace(namespace); msg != "" {
			return nil, invalidAttribute(AttrConnectorNamespace, "%q %s", namespace, msg)
		}
		if msg := connref.CheckName(name); msg != "" {
			return nil, invalidAttribute(AttrConnectorName, "%q %s", name, msg)
		}
		return []types.NamespacedName{{Namespace: namespace, Name: name}}, nil
	default:
		return nil, invalidAttribute(AttrConnectors, "missing: name at least one Connector")
	}
}

// parseConnectorList parses the connectors attribute in the connector
// list grammar (grammar/connref), the pod namespace implied for bare names.
func parseConnectorList(list, podNamespace string) ([]types.NamespacedName, error) {
	refs, err := connref.Parse(list, podNamespace)
	if err != nil {
		return nil, invalidAttribute(AttrConnectors, "%v", err)
	}
	return refs, nil
}

// parseParams parses configuration.params: a JSON object whose values are
// objects of params, keyed by configuration name.
func parseParams(raw string) (map[string]map[string]any, error) {
	if strings.TrimSpace(raw) == "" {
		return nil, nil
	}
	var params map[string]map[string]any
	if err := json.Unmarshal([]byte(raw), &params); err != nil {
		return nil, invalidAttribute(AttrConfigurationParams,
			`must be a JSON object of objects keyed by configuration name, such as {"settings":{"mirror":"x"}}: %v`, err)
	}
	for name, p := range params {
		if p == nil {
			return nil, invalidAttribute(AttrConfigurationParams, "params of configuration %q are null, want an object", name)
		}
	}
	return params, nil
}

// parseExpiration parses token.expiration, a positive Go duration.
func parseExpiration(raw string) (time.Duration, error) {
	if raw == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(raw)
	if err != nil {
		return 0, invalidAttribute(AttrTokenExpiration, "%q is not a Go duration such as 10m or 1h", raw)
	}
	if d <= 0 {
		return 0, invalidAttribute(AttrTokenExpiration, "%q must be positive", raw)
	}
	return d, nil
}
