package status

import (
	"encoding/json"
	"math/rand/v2"

	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
)

// The probe templates see .Connector in upstream's shape: Go field names,
// with each param value as {Type, StringVal, ArrayVal, ObjectVal}. They do
// not see the Secret: the credential goes out only through the proxy's
// injection, to the Connector's own addresses.

type connectorData struct {
	Name      string
	Namespace string
	Labels    map[string]string
	Spec      connectorSpecData
}

type connectorSpecData struct {
	ConnectorClassName string
	Address            string
	Params             []paramData
	AddressExtensions  []paramData
	Auth               authData
}

type authData struct {
	Name   string
	Params []paramData
}

type paramData struct {
	Name  string
	Value paramValue
}

type paramValue struct {
	Type      string
	StringVal string
	ArrayVal  []string
	ObjectVal map[string]string
}

func connectorView(c *v1alpha1.Connector) connectorData {
	return connectorData{
		Name: c.Name, Namespace: c.Namespace, Labels: c.Labels,
		Spec: connectorSpecData{
			ConnectorClassName: c.Spec.ConnectorClassName,
			Address:            c.Spec.Address,
			Params:             params(c.Spec.Params),
			AddressExtensions:  params(c.Spec.AddressExtensions),
			Auth:               authData{Name: c.Spec.Auth.Name, Params: params(c.Spec.Auth.Params)},
		},
	}
}

func params(ps []v1alpha1.Param) []paramData {
	out := make([]paramData, 0, len(ps))
	for _, p := range ps {
		v := paramValue{Type: "string"}
		var s string
		var arr []string
		var obj map[string]string
		switch {
		case json.Unmarshal(p.Value.Raw, &s) == nil:
			v.StringVal = s
		case json.Unmarshal(p.Value.Raw, &arr) == nil:
			v.Type, v.ArrayVal = "array", arr
		case json.Unmarshal(p.Value.Raw, &obj) == nil:
			v.Type, v.ObjectVal = "object", obj
		default:
			v.StringVal = string(p.Value.Raw)
		}
		out = append(out, paramData{Name: p.Name, Value: v})
	}
	return out
}

// randFloat is a jitter fraction in [0, 1).
func randFloat() float64 { return rand.Float64() } //nolint:gosec // jitter, not a secret
