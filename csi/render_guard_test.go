package csi_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/connectors-node/connectors-node/csi"
	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
	"github.com/connectors-node/connectors-node/test/fake"
)

// TestControlCharacterInAConnectorIsInvalidArgument pins the renderer's
// structural guard at the CSI boundary: a Connector value with a line
// break that reaches a file (a param here: the address grammar refuses an
// address with one before rendering) fails the publish with
// InvalidArgument naming the Connector and the field. Neither the message
// nor the logs hold the value or the token, and nothing is mounted.
func TestControlCharacterInAConnectorIsInvalidArgument(t *testing.T) {
	var logs fake.LogBuffer
	h := newHarness(t, func(o *csi.Options) { o.Log = logs.Logger() })
	h.objects.AddClass(&v1alpha1.ConnectorClass{
		ObjectMeta: metav1.ObjectMeta{Name: "params"},
		Spec: v1alpha1.ConnectorClassSpec{Configurations: []v1alpha1.Configuration{{
			Name: "params",
			Data: map[string]string{"params.txt": "{{ range .connectors }}{{ range .spec.params }}{{ .value }}\n{{ end }}{{ end }}"},
		}}},
	})
	evil := h.objects.addConnector(podNamespace, "evil", "params", "https://git.example/x")
	evil.Spec.Params = []v1alpha1.Param{{Name: "note", Value: apiextensionsv1.JSON{Raw: []byte(`"x\n[core]\n\tsshCommand = touch /tmp/pwned"`)}}}
	req := publishRequest(t, "vol", h.target("vol"))
	req.VolumeContext[csi.AttrConnectors] = "evil"
	req.VolumeContext[csi.AttrConfigurationNames] = "params"

	err := h.publish(context.Background(), req)
	require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
	msg := status.Convert(err).Message()
	assert.Contains(t, msg, `connector "`+podNamespace+`/evil" spec.params[note]`)
	assert.Contains(t, msg, "U+000A")
	out := logs.String() + "\n" + msg
	assert.NotContains(t, out, "sshCommand")
	for _, part := range strings.Split(testToken, ".") {
		assert.NotContains(t, out, part, "a token fragment leaked")
	}
	mps, err := h.mounter.List()
	require.NoError(t, err)
	assert.Empty(t, mps, "a refused volume is not mounted")
}

// TestAddressOutsideTheGrammarIsInvalidArgument pins the address grammar at
// the CSI boundary for Connectors stored before the CRD enforced it: an
// address or address extension the grammar refuses fails the publish with
// InvalidArgument naming the Connector and the field, whether or not a
// template reads it and whether or not it holds a control character.
func TestAddressOutsideTheGrammarIsInvalidArgument(t *testing.T) {
	cases := []struct {
		name, address, extension, field string
	}{
		{name: "xml", address: "https://h.test/</name><mirrorOf>*</mirrorOf>", field: "spec.address"},
		{name: "javascript", address: "javascript:alert(1)", field: "spec.address"},
		{name: "userinfo", address: "https://u:p@h.test/", field: "spec.address"},
		{name: "extension with a space", address: "https://h.test", extension: `"https://auth.h.test/a b"`, field: "spec.addressExtensions[realm]"},
		{name: "relative extension", address: "https://h.test", extension: `"auth.h.test"`, field: "spec.addressExtensions[realm]"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var logs fake.LogBuffer
			h := newHarness(t, func(o *csi.Options) { o.Log = logs.Logger() })
			conn := h.objects.addConnector(podNamespace, "bad", "git", c.address)
			if c.extension != "" {
				conn.Spec.AddressExtensions = []v1alpha1.Param{{Name: "realm", Value: apiextensionsv1.JSON{Raw: []byte(c.extension)}}}
			}
			req := publishRequest(t, "vol", h.target("vol"))
			req.VolumeContext[csi.AttrConnectors] = "bad"
			req.VolumeContext[csi.AttrConfigurationNames] = "notes"

			err := h.publish(context.Background(), req)
			require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
			assert.Contains(t, status.Convert(err).Message(), `connector "`+podNamespace+`/bad" `+c.field)
			mps, err := h.mounter.List()
			require.NoError(t, err)
			assert.Empty(t, mps, "a refused volume is not mounted")
			for _, part := range strings.Split(testToken, ".") {
				assert.NotContains(t, logs.String(), part, "a token fragment leaked")
			}
		})
	}
}
