package csi_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/connectors-node/connectors-node/csi"
	"github.com/connectors-node/connectors-node/internal/testsupport"
	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
	"github.com/connectors-node/connectors-node/kube/publicurl"
)

// TestStatusProxyAddressIsTrustedOnlyForTheProxy pins that a Connector's
// status.proxy.httpAddress.url decides where the volume's files send the
// pod's token only when its host is one of the proxy's own names or the
// proxy its class declares; any other status address is replaced by the
// derived one, and the log says why.
func TestStatusProxyAddressIsTrustedOnlyForTheProxy(t *testing.T) {
	derived := publicurl.Default + "/namespaces/" + podNamespace + "/connectors/git"
	cases := []struct {
		name, status string
		proxy        *v1alpha1.ProxySpec
		trusted      bool
		// derived, when set, is the address without status (the class's
		// own proxy); default: the path form under the public URL.
		derived string
	}{
		{"the public host", "http://connectors-proxy.connectors-system.svc/custom/git", nil, true, ""},
		{"another name of the proxy's Service", "http://connectors-proxy.connectors-system.svc.cluster.local:8080/custom/git", nil, true, ""},
		{"a host of someone who may write status", "http://collector.evil.test/namespaces/team-a/connectors/git", nil, false, ""},
		{"the proxy's name as a prefix of another host", "http://connectors-proxy.connectors-system.svc.evil.test/x", nil, false, ""},
		{"userinfo on the proxy's host", "http://x:y@connectors-proxy.connectors-system.svc/x", nil, false, ""},
		{"not http", "ftp://connectors-proxy.connectors-system.svc/x", nil, false, ""},
		{"the class's proxy URI", "https://class-proxy.example.com/git",
			&v1alpha1.ProxySpec{Destination: v1alpha1.Destination{URI: "https://class-proxy.example.com"}}, true, ""},
		{"the class's proxy Service", "http://git-proxy.tools.svc:8080/git",
			&v1alpha1.ProxySpec{Destination: v1alpha1.Destination{Ref: &v1alpha1.KReference{Kind: "Service", Name: "git-proxy", Namespace: "tools"}}}, true, ""},
		{"another host than the class's proxy", "https://elsewhere.example.com/git",
			&v1alpha1.ProxySpec{Destination: v1alpha1.Destination{URI: "https://class-proxy.example.com"}}, false, "https://class-proxy.example.com"},
		{"a host-form name of another Connector", "http://c-other.team-a.svc.cluster.local", nil, false, ""},
		{"the Connector's own host-form Service", "http://c-git." + podNamespace + ".svc.cluster.local", nil, true, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var logs testsupport.LogBuffer
			h := newHarness(t, func(o *csi.Options) { o.Log = logs.Logger() })
			class := gitClass()
			class.Spec.Proxy = c.proxy
			h.objects.AddClass(class)
			conn := h.objects.addConnector(podNamespace, "git", "git", "https://git.example.com/org")
			conn.Status.Proxy = &v1alpha1.ProxyStatus{HTTPAddress: &v1alpha1.Addressable{URL: c.status}}
			req := publishRequest(t, "v", h.target("v"))
			req.VolumeContext[csi.AttrConfigurationNames] = "gitconfig"
			require.NoError(t, h.publish(context.Background(), req))
			want := derived
			if c.derived != "" {
				want = c.derived
			}
			if c.trusted {
				want = c.status
			}
			assert.Equal(t, want, readVolumeFile(t, req.TargetPath, "connector.status.proxyAddress"))
			gitconfig := readVolumeFile(t, req.TargetPath, ".gitconfig")
			assert.Contains(t, gitconfig, `[http "`+want+`/"]`)
			logged := strings.Contains(logs.String(), "not using the connector's status.proxy.httpAddress.url")
			assert.Equal(t, !c.trusted, logged, "a distrusted status address is logged, a trusted one is not")
			assert.NotContains(t, logs.String(), "x:y@", "the log never holds a status URL's userinfo")
		})
	}
}
