package proxy

import (
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestUnderAPIKeepsRequestsBelowTheAPIAddress(t *testing.T) {
	base, err := url.Parse("http://api.tools.svc.cluster.local/api")
	require.NoError(t, err)
	for raw, want := range map[string]bool{
		"http://api.tools.svc.cluster.local/api":               true,
		"http://api.tools.svc.cluster.local:80/api/auth/check": true,
		"http://API.tools.svc.cluster.local./api/x?y=1":        true,
		"http://api.tools.svc.cluster.local/apix":              false,
		"http://api.tools.svc.cluster.local/api/../admin":      false,
		"http://api.tools.svc.cluster.local/api/%2e%2e/admin":  false,
		"http://api.tools.svc.cluster.local/api/a%2fb":         false,
		"http://api.tools.svc.cluster.local/api//x":            false,
		"https://api.tools.svc.cluster.local/api/x":            false,
		"http://api.tools.svc.cluster.local:8080/api/x":        false,
		"http://other.tools.svc.cluster.local/api/x":           false,
		"http://user:pass@api.tools.svc.cluster.local/api/x":   false,
		"http://api.tools.svc.cluster.local/admin":             false,
	} {
		u, err := url.Parse(raw)
		require.NoError(t, err)
		require.Equal(t, want, underAPI(base, u), raw)
	}
}
