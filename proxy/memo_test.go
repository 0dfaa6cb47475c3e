package proxy

import (
	"encoding/base64"
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8stypes "k8s.io/apimachinery/pkg/types"

	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
)

func basicSecret(uid, version, user, pass string) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "cred", UID: k8stypes.UID("uid-" + uid), ResourceVersion: version},
		Type:       corev1.SecretTypeBasicAuth,
		Data:       map[string][]byte{corev1.BasicAuthUsernameKey: []byte(user), corev1.BasicAuthPasswordKey: []byte(pass)},
	}
}

// A rotated Secret (new resourceVersion) or a re-created one (new UID)
// injects its new credential at once.
func TestAuthorizationFollowsSecretVersions(t *testing.T) {
	var m memos
	want := func(user, pass string) string {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
	}
	for _, c := range []struct {
		s    *corev1.Secret
		want string
	}{
		{basicSecret("1", "10", "u", "old"), want("u", "old")},
		{basicSecret("1", "10", "u", "old"), want("u", "old")},
		{basicSecret("1", "11", "u", "rotated"), want("u", "rotated")},
		{basicSecret("2", "11", "u", "recreated"), want("u", "recreated")},
		{basicSecret("2", "", "u", "no version"), want("u", "no version")},
		{basicSecret("2", "", "u", "no version either"), want("u", "no version either")},
	} {
		got, err := m.authorization(c.s)
		if err != nil || got != c.want {
			t.Errorf("uid %s version %q: %q %v, want %q", c.s.UID, c.s.ResourceVersion, got, err, c.want)
		}
	}
	if _, err := m.authorization(basicSecret("3", "12", "", "")); err == nil {
		t.Error("an empty basic-auth Secret gave no error")
	}
}

// Each address string parses to its own address; extensions that are not
// JSON strings are skipped; a full memo empties and refills.
func TestAddressMemo(t *testing.T) {
	var m memos
	c := &v1alpha1.Connector{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "api"}}
	c.Spec.Address = "https://a.example.test/base/"
	c.Spec.AddressExtensions = []v1alpha1.Param{
		{Name: "mirror", Value: apiextensionsv1.JSON{Raw: []byte(`"https://b.example.test"`)}},
		{Name: "n", Value: apiextensionsv1.JSON{Raw: []byte(`12`)}},
	}
	for range 2 {
		cands := m.candidates(3, c)
		if len(cands) != 2 || cands[0].Address.Host != "a.example.test" || cands[1].Address.Host != "b.example.test" || cands[0].Index != 3 {
			t.Fatalf("candidates %+v", cands)
		}
	}
	u, err := m.address(c.Spec.Address).join("/x%2Fy", "q=1")
	if err != nil || u.String() != "https://a.example.test/base/x%2Fy?q=1" {
		t.Errorf("join: %v %v", u, err)
	}
	if m.address("ftp://a.example.test").err == nil {
		t.Error("ftp address parsed")
	}
	for i := range 2 * maxMemoEntries {
		raw := fmt.Sprintf("http://h%d.example.test", i)
		if got := m.address(raw).addr.Host; got != fmt.Sprintf("h%d.example.test", i) {
			t.Fatalf("%s parsed to host %q", raw, got)
		}
	}
	if n := m.addresses.n.Load(); n > maxMemoEntries {
		t.Errorf("%d entries, bound %d", n, maxMemoEntries)
	}
}
