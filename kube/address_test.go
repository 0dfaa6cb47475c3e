package kube_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/connectors-node/connectors-node/grammar/match"
	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
	"github.com/connectors-node/connectors-node/test/apiserver"
	"github.com/connectors-node/connectors-node/test/servers/manifests"
)

// addressCases are good and hostile Connector addresses. want says whether
// the one grammar accepts it; the API server and the node must both agree.
var addressCases = []struct {
	name, value string
	want        bool
}{
	{"https host", "https://git.example.test", true},
	{"http host", "http://git.example.test", true},
	{"path prefix", "https://git.example.test/group/sub", true},
	{"trailing slash", "https://git.example.test/group/", true},
	{"port", "https://git.example.test:8443/x", true},
	{"lowest port", "http://h.test:1", true},
	{"highest port", "http://h.test:65535", true},
	{"ipv4", "http://10.0.0.1:5000", true},
	{"ipv6 literal", "https://[::1]:8443/x", true},
	{"ipv6 full", "http://[2001:db8::7]/", true},
	{"trailing dot host", "https://git.example.test./x", true},
	{"underscore host", "https://my_host.example.test", true},
	{"upper-case host", "https://GIT.Example.test", true},
	{"percent-encoding", "https://h.test/a%20b/%C3%A9", true},
	{"query", "https://h.test/api?x=1&y=a,b", true},
	{"sub-delims and colon in path", "https://h.test/a:b@c/!$&'()*+,=~", true},
	{"empty segment", "https://h.test//a", true},
	{"dots inside a segment", "https://h.test/a..b/.c/d.", true},

	{"newline", "https://git.example.test/x\n[core]\n\tsshCommand = touch /tmp/pwned", false},
	{"trailing newline", "https://git.example.test\n", false},
	{"crlf", "https://git.example.test/x\r\n[core]", false},
	{"tab", "https://git.example.test/\tx", false},
	{"space", "https://git.example.test/a b", false},
	{"leading space", " https://git.example.test", false},
	{"trailing space", "https://git.example.test ", false},
	{"nul", "https://git.example.test/\x00", false},
	{"del", "https://git.example.test/\x7f", false},
	{"xml", "https://h.test/</name><mirrorOf>*</mirrorOf><url>http://elsewhere/</url>", false},
	{"less than", "https://h.test/<", false},
	{"greater than", "https://h.test/>", false},
	{"double quote", `https://h.test/"x`, false},
	{"backslash", `https://h.test/a\b`, false},
	{"brace", "https://h.test/{x}", false},
	{"pipe", "https://h.test/a|b", false},
	{"caret", "https://h.test/a^b", false},
	{"backtick", "https://h.test/`id`", false},
	{"non-ascii path", "https://h.test/é", false},
	{"non-ascii host", "https://\u212Aube.test/", false},
	{"javascript", "javascript:alert(1)", false},
	{"file", "file:///etc/passwd", false},
	{"ftp", "ftp://h.test/", false},
	{"upper-case scheme", "HTTPS://h.test", false},
	{"relative", "git.example.test/group", false},
	{"absolute path", "/group", false},
	{"scheme only", "https:", false},
	{"scheme and slashes", "https://", false},
	{"no host", "https:///x", false},
	{"userinfo", "https://user:pw@h.test/", false},
	{"user only", "https://user@h.test/", false},
	{"fragment", "https://h.test/#x", false},
	{"port zero", "http://h.test:0", false},
	{"port too high", "http://h.test:65536", false},
	{"port leading zero", "http://h.test:080", false},
	{"empty port", "http://h.test:/", false},
	{"bad ipv6", "http://[1]/", false},
	{"ipv6 zone", "http://[fe80::1%25eth0]/", false},
	{"empty label", "https://a..b.test/", false},
	{"leading dot host", "https://.h.test/", false},
	{"two trailing dots", "https://h.test../", false},
	{"dot segment", "https://h.test/a/../b", false},
	{"encoded dot segment", "https://h.test/a/%2e%2E/b", false},
	{"single dot segment", "https://h.test/./b", false},
	{"final dot dot", "https://h.test/a/..", false},
	{"encoded slash", "https://h.test/a%2Fb", false},
	{"encoded backslash", "https://h.test/a%5cb", false},
	{"semicolon", "https://h.test/a;b", false},
	{"encoded semicolon", "https://h.test/a%3Bb", false},
	{"double encoding", "https://h.test/%252e", false},
	{"bad escape", "https://h.test/%zz", false},
	{"truncated escape", "https://h.test/a%2", false},
	{"too long", "https://h.test/" + strings.Repeat("a", v1alpha1.MaxAddressLength), false},
}

// TestAddressGrammarAgreesWithTheAPIServer creates a Connector with each
// address, as spec.address and as an address extension, on a real API
// server with the generated CRDs and the shipped admission policy for
// address extensions, and parses it with the node's grammar
// (match.ParseAddress, which the proxy matches with, and
// Connector.CheckAddresses, which the CSI plugin and the status writer
// use). The API server never accepts what the node refuses, nor refuses
// what it accepts.
func TestAddressGrammarAgreesWithTheAPIServer(t *testing.T) {
	env := apiserver.Start(t, apiserver.Options{})
	ctx := context.Background()
	ns := env.Namespace(t, "address")
	installAddressPolicy(t, env, ns)
	for i, c := range addressCases {
		t.Run(c.name, func(t *testing.T) {
			_, goErr := match.ParseAddress(c.value)
			assert.Equal(t, c.want, goErr == nil, "the node's grammar: %v", goErr)

			conn := &v1alpha1.Connector{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("address-%d", i)},
				Spec:       v1alpha1.ConnectorSpec{ConnectorClassName: "git", Address: c.value},
			}
			err := env.Client.Create(ctx, conn)
			assert.Equal(t, c.want, err == nil, "the API server on spec.address: %v", err)
			if err != nil {
				require.True(t, apierrors.IsInvalid(err), "%v", err)
				assert.Contains(t, err.Error(), "spec.address")
			}

			ext := extensionConnector(t, ns, fmt.Sprintf("extension-%d", i), c.value)
			err = env.Client.Create(ctx, ext)
			assert.Equal(t, c.want, err == nil, "the API server on spec.addressExtensions: %v", err)
			if err != nil {
				require.True(t, apierrors.IsInvalid(err), "%v", err)
				assert.Contains(t, err.Error(), "spec.addressExtensions[tokenRealm]")
			}
			if c.want {
				assert.NoError(t, ext.CheckAddresses())
			} else {
				var ae *v1alpha1.AddressError
				require.ErrorAs(t, ext.CheckAddresses(), &ae)
				assert.Equal(t, "spec.addressExtensions[tokenRealm]", ae.Field)
				assert.NotContains(t, ae.Error(), c.value, "the error repeats the value")
			}
		})
	}
	// An empty string value of an address extension (an optional one a
	// form left blank) is not an address: the proxy ignores it, and both
	// accept it.
	t.Run("empty extension", func(t *testing.T) {
		c := extensionConnector(t, ns, "empty-extension", "")
		require.NoError(t, env.Client.Create(ctx, c))
		require.NoError(t, c.CheckAddresses())
	})
}

// extensionConnector is a Connector with a good address, a list value in
// one address extension (not an address: not checked) and value in
// another.
func extensionConnector(t *testing.T, ns, name, value string) *v1alpha1.Connector {
	return &v1alpha1.Connector{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1alpha1.ConnectorSpec{
			ConnectorClassName: "oci",
			Address:            "https://registry.example.test",
			AddressExtensions: []v1alpha1.Param{
				{Name: "mirrors", Value: js(t, []string{"not checked: not a string value"})},
				{Name: "tokenRealm", Value: js(t, value)},
			},
		},
	}
}

// addressPolicyFile is the shipped admission policy for address extensions.
func addressPolicyFile() string {
	return filepath.Join(apiserver.RepoRoot(), "deploy", "base", "admission-address.yaml")
}

// installAddressPolicy creates the shipped policy and its binding and waits
// until the API server enforces it.
func installAddressPolicy(t *testing.T, env *apiserver.Env, ns string) {
	t.Helper()
	objs, err := manifests.Load(addressPolicyFile())
	require.NoError(t, err)
	require.NoError(t, manifests.Create(context.Background(), env.Client, objs))
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := env.Client.Create(context.Background(), extensionConnector(t, ns, "policy-probe", "https://h.test/a b"))
		if apierrors.IsInvalid(err) {
			return
		}
		if err == nil {
			require.NoError(t, env.Client.Delete(context.Background(), extensionConnector(t, ns, "policy-probe", "")))
		}
		if time.Now().After(deadline) {
			t.Fatalf("the address policy is not enforced: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestAddressPolicyKeepsStoredValues pins the policy's ratcheting: a
// Connector stored with a bad extension value before the policy can still
// be updated (and so have its finalizers removed) as long as the value
// stays; a new bad value is refused.
func TestAddressPolicyKeepsStoredValues(t *testing.T) {
	env := apiserver.Start(t, apiserver.Options{})
	ctx := context.Background()
	ns := env.Namespace(t, "address-keep")
	old := extensionConnector(t, ns, "old", "https://auth.example.test/<x>")
	require.NoError(t, env.Client.Create(ctx, old))
	installAddressPolicy(t, env, ns)

	old.Spec.Params = []v1alpha1.Param{{Name: "note", Value: js(t, "kept")}}
	require.NoError(t, env.Client.Update(ctx, old), "an update that keeps the stored value")
	old.Spec.AddressExtensions[1].Value = js(t, "https://auth.example.test/<y>")
	err := env.Client.Update(ctx, old)
	require.True(t, apierrors.IsInvalid(err), "%v", err)
	require.Contains(t, err.Error(), "spec.addressExtensions[tokenRealm]")
	old.Spec.AddressExtensions[1].Value = js(t, "https://auth.example.test/y")
	require.NoError(t, env.Client.Update(ctx, old), "fixing the value")
}

// TestGeneratedCRDsCarryTheAddressGrammar pins that the CRD's pattern and
// CEL rules, and the admission policy's, are the Go grammar's own strings,
// so they cannot drift.
func TestGeneratedCRDsCarryTheAddressGrammar(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(apiserver.RepoRoot(), "deploy", "base", "crds", "connectors.alauda.io_connectors.yaml"))
	require.NoError(t, err)
	var crd struct {
		Spec struct {
			Versions []struct {
				Schema struct {
					OpenAPIV3Schema map[string]any `json:"openAPIV3Schema"`
				} `json:"schema"`
			} `json:"versions"`
		} `json:"spec"`
	}
	require.NoError(t, yaml.Unmarshal(b, &crd))
	require.Len(t, crd.Spec.Versions, 1)
	root := crd.Spec.Versions[0].Schema.OpenAPIV3Schema
	address, _, err := unstructured.NestedMap(root, "properties", "spec", "properties", "address")
	require.NoError(t, err)
	assert.Equal(t, v1alpha1.AddressPattern, address["pattern"])
	assert.EqualValues(t, v1alpha1.MaxAddressLength, address["maxLength"])
	rules := celRules(t, address)
	assert.Contains(t, rules, `!self.matches(r"`+v1alpha1.DotSegmentPattern+`")`)

	policy, err := os.ReadFile(addressPolicyFile())
	require.NoError(t, err)
	assert.Contains(t, string(policy), `e.value.matches(r"`+v1alpha1.AddressPattern+`")`)
	assert.Contains(t, string(policy), `!e.value.matches(r"`+v1alpha1.DotSegmentPattern+`")`)
	assert.Contains(t, string(policy), fmt.Sprintf("size(e.value) <= %d", v1alpha1.MaxAddressLength))

}

func celRules(t *testing.T, schema map[string]any) []string {
	t.Helper()
	b, err := json.Marshal(schema["x-kubernetes-validations"])
	require.NoError(t, err)
	var vs []struct {
		Rule string `json:"rule"`
	}
	require.NoError(t, json.Unmarshal(b, &vs))
	out := make([]string, 0, len(vs))
	for _, v := range vs {
		out = append(out, v.Rule)
	}
	return out
}
