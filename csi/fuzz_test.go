package csi

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// attrsOf builds the volume_context kubelet sends, with the token JSON.
func attrsOf(connectors, names, params, expiration, tokens string) map[string]string {
	return map[string]string{
		AttrPodNamespace:        "team-a",
		AttrServiceAccount:      "default",
		AttrPodName:             "pod",
		AttrConnectors:          connectors,
		AttrConfigurationNames:  names,
		AttrConfigurationParams: params,
		AttrTokenExpiration:     expiration,
		TokensKey:               tokens,
	}
}

func FuzzVolumeAttributes(f *testing.F) {
	tokens := `{"connectors-proxy":{"token":"tok-fuzz-seed-1234","expirationTimestamp":"2030-01-01T00:00:00Z"}}`
	for _, s := range [][5]string{
		{"git", "", "", "", tokens},
		{"git,shared/registry", "gitconfig,!.env", `{"settings":{"mirror":"x"}}`, "10m", tokens},
		{"a/b/c", "", "", "", `{"connectors-proxy":{"token":""}}`},
		{"", "", "null", "-1s", `[`},
		{"git", "", `{"x":null}`, "1h", `{"other":{"token":"t"}}`},
	} {
		f.Add(s[0], s[1], s[2], s[3], s[4])
	}
	f.Fuzz(func(t *testing.T, connectors, names, params, expiration, tokens string) {
		attrs := attrsOf(connectors, names, params, expiration, tokens)
		if _, err := parseAttributes(attrs); err != nil {
			if c := status.Code(err); c != codes.InvalidArgument && c != codes.FailedPrecondition {
				t.Fatalf("attributes: code %s: %v", c, err)
			}
		}
		tok, err := podToken(nil, attrs, DefaultAudience)
		if err != nil {
			if c := status.Code(err); c != codes.InvalidArgument && c != codes.FailedPrecondition {
				t.Fatalf("token: code %s: %v", c, err)
			}
			if strings.Contains(err.Error(), tokens) && len(tokens) > 8 {
				t.Fatalf("token error quotes the token JSON: %v", err)
			}
			return
		}
		if tok.Token == "" {
			t.Fatal("empty token accepted")
		}
	})
}

func FuzzConfigurationParams(f *testing.F) {
	for _, s := range []string{``, `{}`, `{"settings":{"mirror":"x"}}`, `{"a":null}`, `[]`, `{"a":{"b":[1,{"c":null}]}}`, ` `, `{"a":1}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		params, err := parseParams(raw)
		if err != nil {
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("code %s: %v", status.Code(err), err)
			}
			return
		}
		for name, p := range params {
			if p == nil {
				t.Fatalf("params of %q are nil", name)
			}
		}
	})
}
