package v1alpha1

import (
	"errors"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
)

// TestCheckAddressesNamesTheFieldAndTheRule checks the messages the CSI
// plugin and the status writer show: the field, the rule or the character
// and its offset, never the value.
func TestCheckAddressesNamesTheFieldAndTheRule(t *testing.T) {
	cases := []struct {
		address, extension, want string
	}{
		{address: "https://git.example.test/x\n[core]", want: "spec.address holds control character U+000A at byte 26"},
		{address: "https://h.test/a b", want: "spec.address holds a space at byte 16"},
		{address: "https://h.test/<x>", want: "spec.address holds '<' at byte 15, which RFC 3986 does not allow unencoded"},
		{address: "https://h.test/é", want: "spec.address holds non-ASCII character U+00E9 at byte 15; percent-encode it"},
		{address: "javascript:alert(1)", want: "spec.address is not an absolute URL with the scheme http or https"},
		{address: "file:///etc/passwd", want: "spec.address is not an absolute URL with the scheme http or https"},
		{address: "https://u:p@h.test/", want: "spec.address has userinfo"},
		{address: "https://h.test/#x", want: "spec.address has a fragment"},
		{address: "https://h.test/a/../b", want: "spec.address has a . or .. path segment"},
		{address: "http://h.test:65536", want: "spec.address is not an absolute http or https URL"},
		{address: "http://[1]/", want: "spec.address is not a URL: invalid host"},
		{address: "https://h.test", extension: `"auth.h.test/token"`, want: "spec.addressExtensions[realm] is not an absolute URL"},
		{address: "https://h.test", extension: `"https://auth.h.test/\u0000"`, want: "spec.addressExtensions[realm] holds control character U+0000"},
	}
	for _, c := range cases {
		conn := &Connector{Spec: ConnectorSpec{Address: c.address}}
		if c.extension != "" {
			conn.Spec.AddressExtensions = []Param{
				{Name: "list", Value: apiextensionsv1.JSON{Raw: []byte(`["not", "an address"]`)}},
				{Name: "blank", Value: apiextensionsv1.JSON{Raw: []byte(`""`)}},
				{Name: "realm", Value: apiextensionsv1.JSON{Raw: []byte(c.extension)}},
			}
		}
		err := conn.CheckAddresses()
		var ae *AddressError
		if !errors.As(err, &ae) {
			t.Errorf("%q %s: got %v, want an *AddressError", c.address, c.extension, err)
			continue
		}
		if !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("%q %s: got %q, want it to start with %q", c.address, c.extension, err, c.want)
		}
		if c.extension == "" && strings.Contains(err.Error(), c.address) {
			t.Errorf("the error %q repeats the value", err)
		}
	}
	if err := (&Connector{}).CheckAddresses(); err != nil {
		t.Errorf("a Connector without addresses: %v", err)
	}
}
