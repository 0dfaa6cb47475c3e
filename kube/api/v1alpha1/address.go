package v1alpha1

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"unicode/utf8"
)

// The grammar of a Connector address (spec.address and the string values of
// spec.addressExtensions). The CRDs check the same grammar at the API
// server: AddressPattern is the OpenAPI pattern of spec.address and the
// pattern the CEL rule of spec.addressExtensions matches, and
// DotSegmentPattern is the pattern their CEL rules refuse. A test checks that
// the generated CRDs carry these exact strings.
const (
	// MaxAddressLength is the longest address, in bytes.
	MaxAddressLength = 2048

	// AddressPattern is an absolute http or https URL: a lower-case scheme;
	// a host of non-empty labels of letters, digits, '-' and '_' with at most
	// one trailing dot, or an IP literal in brackets; an optional port
	// 1-65535 without leading zeros; a path of RFC 3986 path characters
	// except ';', with percent-encoding but not of '/', '\', ';' or '%'; an
	// optional query of RFC 3986 query characters. No userinfo, no
	// fragment, nothing RFC 3986 does not allow unencoded.
	AddressPattern = `^https?://(?:[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*\.?|\[[0-9A-Fa-f:.]+\])` +
		`(?::(?:[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?` +
		`(?:/(?:[A-Za-z0-9._~!$&'()*+,=:@-]|%(?:[0146-9A-Fa-f][0-9A-Fa-f]|2[0-46-9A-Ea-e]|3[0-9ACDEFacdef]|5[0-9ABDEFabdef]))*)*` +
		`(?:\?(?:[A-Za-z0-9._~!$&'()*+,;=:@/?-]|%[0-9A-Fa-f]{2})*)?$`

	// DotSegmentPattern matches an address whose path has a "." or ".."
	// segment, plain or percent-encoded.
	DotSegmentPattern = `^[^?]*/(?:\.|%2[Ee]){1,2}(?:[/?]|$)`
)

var (
	addressRE    = regexp.MustCompile(AddressPattern)
	dotSegmentRE = regexp.MustCompile(DotSegmentPattern)
	// plainName is an extension name a field path shows as it is.
	plainName = regexp.MustCompile(`^[A-Za-z0-9._-]{1,63}$`)
)

// AddressError says why an address is refused. It names the field and the
// offending character or rule, never the value.
//
// +kubebuilder:object:generate=false
type AddressError struct {
	// Field is the address's field, such as spec.address or
	// spec.addressExtensions[tokenRealm].
	Field string
	// Reason says what is wrong.
	Reason string
}

func (e *AddressError) Error() string {
	if e.Field == "" {
		return e.Reason
	}
	return e.Field + " " + e.Reason
}

// CheckAddress checks an address against the grammar the CRDs enforce. The
// error (an *AddressError with an empty Field) names the first character or
// rule it breaks, never the value.
func CheckAddress(s string) error {
	if reason := addressReason(s); reason != "" {
		return &AddressError{Reason: reason}
	}
	return nil
}

func addressReason(s string) string {
	if s == "" {
		return "is empty"
	}
	if len(s) > MaxAddressLength {
		return fmt.Sprintf("is %d bytes long, at most %d allowed", len(s), MaxAddressLength)
	}
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			return fmt.Sprintf("holds an invalid UTF-8 byte at byte %d", i)
		case r < 0x20 || r == 0x7f:
			return fmt.Sprintf("holds control character %U at byte %d", r, i)
		case r == ' ':
			return fmt.Sprintf("holds a space at byte %d", i)
		case r >= 0x80:
			return fmt.Sprintf("holds non-ASCII character %U at byte %d; percent-encode it", r, i)
		case !uriChar(byte(r)):
			return fmt.Sprintf("holds %q at byte %d, which RFC 3986 does not allow unencoded", r, i)
		}
		i += size
	}
	if !strings.HasPrefix(s, "http://") && !strings.HasPrefix(s, "https://") {
		return "is not an absolute URL with the scheme http or https (lower case)"
	}
	rest := s[strings.Index(s, "//")+2:]
	authority := rest[:strings.IndexAny(rest+"/", "/?#")]
	switch {
	case strings.Contains(authority, "@"):
		return "has userinfo (user@host); put credentials in the Connector's Secret"
	case strings.Contains(s, "#"):
		return "has a fragment (#)"
	case !addressRE.MatchString(s):
		return "is not an absolute http or https URL: it needs a host of letters, digits, '-', '_' and single dots " +
			"or an IP literal, an optional port 1-65535, and no ';' or percent-encoded '/', '\\', ';' or '%' in the path"
	case dotSegmentRE.MatchString(s):
		return "has a . or .. path segment"
	}
	if _, err := url.ParseRequestURI(s); err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return "is not a URL: " + err.Error()
	}
	return ""
}

// uriChar reports whether RFC 3986 allows c unencoded somewhere in a URI:
// unreserved, gen-delims, sub-delims and '%' of a percent-encoding.
func uriChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("-._~:/?#[]@!$&'()*+,;=%", c) >= 0
}

// CheckAddresses checks spec.address (when set) and the string values of
// spec.addressExtensions against the grammar the CRDs enforce, and returns
// an *AddressError naming the first field that breaks it. Values of other
// JSON types and empty strings are not addresses and are not checked, as
// the proxy does not read them.
func (c *Connector) CheckAddresses() error {
	if c.Spec.Address != "" {
		if r := addressReason(c.Spec.Address); r != "" {
			return &AddressError{Field: "spec.address", Reason: r}
		}
	}
	for i, ext := range c.Spec.AddressExtensions {
		var s string
		if json.Unmarshal(ext.Value.Raw, &s) != nil || s == "" {
			continue
		}
		if r := addressReason(s); r != "" {
			field := fmt.Sprintf("spec.addressExtensions[%d]", i)
			if plainName.MatchString(ext.Name) {
				field = "spec.addressExtensions[" + ext.Name + "]"
			}
			return &AddressError{Field: field, Reason: r}
		}
	}
	return nil
}
