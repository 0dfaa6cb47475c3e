package configgen

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/connectors-node/connectors-node/grammar/publicurl"
	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
)

// testToken looks like a projected ServiceAccount token; only its text matters.
const testToken = "eyJhbGciOiJSUzI1NiIsImtpZCI6InRlc3QifQ.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6dGVhbS1hOmJ1aWxkZXIifQ.c2lnbmF0dXJl"

// testProxyURL is the node service's default public address.
const testProxyURL = "http://connectors-proxy.connectors-system.svc"

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// newConnector builds a Connector; opts adjust it.
func newConnector(ns, name, class, address string, opts ...func(*v1alpha1.Connector)) *v1alpha1.Connector {
	c := &v1alpha1.Connector{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       v1alpha1.ConnectorSpec{ConnectorClassName: class, Address: address},
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

func withProxyStatus(url string) func(*v1alpha1.Connector) {
	return func(c *v1alpha1.Connector) {
		c.Status.Proxy = &v1alpha1.ProxyStatus{HTTPAddress: &v1alpha1.Addressable{URL: url}}
	}
}

func withExtension(name, value string) func(*v1alpha1.Connector) {
	return func(c *v1alpha1.Connector) {
		c.Spec.AddressExtensions = append(c.Spec.AddressExtensions, v1alpha1.Param{Name: name, Value: jsonValue(value)})
	}
}

func withParam(name string, value any) func(*v1alpha1.Connector) {
	return func(c *v1alpha1.Connector) {
		c.Spec.Params = append(c.Spec.Params, v1alpha1.Param{Name: name, Value: jsonValue(value)})
	}
}

func jsonValue(v any) apiextensionsv1.JSON {
	raw, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return apiextensionsv1.JSON{Raw: raw}
}

func newClass(name string, cfgs ...v1alpha1.Configuration) *v1alpha1.ConnectorClass {
	return &v1alpha1.ConnectorClass{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       v1alpha1.ConnectorClassSpec{Configurations: cfgs},
	}
}

func param(name string, def any) v1alpha1.ParamSpec {
	p := v1alpha1.ParamSpec{Name: name}
	if def != nil {
		j := jsonValue(def)
		p.Default = &j
	}
	return p
}

// mount pairs a Connector with its class and its path-form or status proxy
// address under testProxyURL.
func mount(c *v1alpha1.Connector, class *v1alpha1.ConnectorClass) Connector {
	return Connector{Object: c, Class: class, ProxyAddress: c.ProxyAddress(testProxyURL)}
}

// baseInput is a valid Input over the given Connectors.
func baseInput(t testing.TB, cs ...Connector) Input {
	return Input{
		Connectors:     cs,
		Token:          testToken,
		ProxyURL:       publicurl.MustParse(testProxyURL),
		CACertPEM:      readTestdata(t, "proxy-ca.pem"),
		SystemRootsPEM: readTestdata(t, "system-roots.pem"),
	}
}

// render calls Render and fails the test on error.
func render(t testing.TB, in Input) map[string][]byte {
	t.Helper()
	files, err := Render(in)
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	return files
}

func jsonRaw(s string) apiextensionsv1.JSON { return apiextensionsv1.JSON{Raw: []byte(s)} }
