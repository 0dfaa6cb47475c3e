package configgen

import (
	"errors"
	"fmt"
	"net/url"

	"github.com/connectors-node/connectors-node/grammar/publicurl"
	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
)

// Connector is one mounted Connector with what rendering needs.
type Connector struct {
	// Object is the Connector. Required; never modified.
	Object *v1alpha1.Connector
	// Class is the Connector's ConnectorClass; never modified. It may be
	// nil or have no configurations, and then provides none.
	Class *v1alpha1.ConnectorClass
	// ProxyAddress is the Connector's reverse-proxy address. Required.
	ProxyAddress string
	// ClassProxyURL is the class's own proxy (spec.proxy), or empty when
	// the built-in proxy serves the Connector. When the last Connector has
	// one, the forward-proxy files point at it.
	ClassProxyURL string
}

// Input is everything one volume's files are rendered from.
type Input struct {
	// Connectors are the mounted Connectors in volume order. At least one.
	Connectors []Connector
	// Token is the pod's token for the proxy audience. Required.
	Token string
	// ProxyURL is the forward proxy's public address, such as
	// http://connectors-proxy.connectors-system.svc. Required.
	ProxyURL publicurl.URL
	// ClusterDomain is the cluster DNS domain whose suffixes no_proxy
	// lists. Default publicurl.DefaultClusterDomain.
	ClusterDomain string
	// CACertPEM is the proxy CA in PEM.
	CACertPEM []byte
	// SystemRootsPEM are the node's trusted roots in PEM, put before the
	// proxy CA in ca-bundle.crt. Empty leaves only the proxy CA.
	SystemRootsPEM []byte
	// Configurations are the configuration names to render, in order
	// (configuration.names without the "!" items).
	Configurations []string
	// Exclude are final file names to leave out (the "!name" items of
	// configuration.names, without the "!"). Names that no file has are
	// ignored.
	Exclude []string
	// Params are configuration.params: configuration name to param name to
	// value. Never modified.
	Params map[string]map[string]any
}

// Errors for an Input the caller should never build. They match no
// sentinel: they are not the user's mistake.
var (
	errNoConnectors = errors.New("no connectors to render")
	errNoToken      = errors.New("no token to render")
	errNoProxyURL   = errors.New("no proxy URL to render")
)

// checkInput rejects an Input the caller should never build and returns
// the parsed forward-proxy URL.
func checkInput(in *Input) (*url.URL, error) {
	if len(in.Connectors) == 0 {
		return nil, errNoConnectors
	}
	if in.Token == "" {
		return nil, errNoToken
	}
	for i, c := range in.Connectors {
		if c.Object == nil {
			return nil, fmt.Errorf("connector %d has no object", i)
		}
		if c.ProxyAddress == "" {
			return nil, fmt.Errorf("connector %s has no proxy address", c.Object.Key())
		}
		// Every volume's files are made of these: the guard checks them
		// up front.
		if err := controlError(connectorField(c, "proxy address"), c.ProxyAddress); err != nil {
			return nil, err
		}
		if err := controlError(connectorField(c, "class proxy address"), c.ClassProxyURL); err != nil {
			return nil, err
		}
	}
	if in.ProxyURL.IsZero() {
		return nil, errNoProxyURL
	}
	return &url.URL{Scheme: in.ProxyURL.Scheme(), Host: in.ProxyURL.Host()}, nil
}
