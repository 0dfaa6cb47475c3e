package registryauth

import (
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"
)

func TestRegistryScopes(t *testing.T) {
	cases := []struct {
		method, below, query string
		want                 []string
	}{
		{http.MethodGet, "/v2/", "", nil},
		{http.MethodGet, "/v2", "", nil},
		{http.MethodGet, "/v2/_catalog", "", []string{"registry:catalog:*"}},
		{http.MethodGet, "/v2/app/manifests/latest", "", []string{"repository:app:pull"}},
		{http.MethodHead, "/v2/a/b/c/blobs/sha256:1", "", []string{"repository:a/b/c:pull"}},
		{http.MethodGet, "/v2/app/tags/list", "", []string{"repository:app:pull"}},
		{http.MethodGet, "/v2/app/referrers/sha256:1", "", []string{"repository:app:pull"}},
		{http.MethodPut, "/v2/app/manifests/v1", "", []string{"repository:app:pull,push"}},
		{http.MethodPost, "/v2/app/blobs/uploads/", "", []string{"repository:app:pull,push"}},
		{http.MethodPatch, "/v2/app/blobs/uploads/abc", "", []string{"repository:app:pull,push"}},
		{http.MethodPut, "/v2/blobs/blobs/uploads/abc", "", []string{"repository:blobs:pull,push"}},
		{http.MethodGet, "/v2/manifests/manifests/latest", "", []string{"repository:manifests:pull"}},
		{http.MethodDelete, "/v2/app/manifests/sha256:1", "", []string{"repository:app:delete"}},
		{http.MethodPost, "/v2/app/blobs/uploads/", "mount=sha256:1&from=base/img", []string{"repository:app:pull,push", "repository:base/img:pull"}},
		{http.MethodPost, "/v2/app/blobs/uploads/", "mount=sha256:1&from=Bad:Name", []string{"repository:app:pull,push"}},
		{http.MethodGet, "/v2/App/manifests/latest", "", nil},
		{http.MethodGet, "/v2/a%3Ab/manifests/latest", "", nil},
		{http.MethodGet, "/v2/app/other/x", "", nil},
	}
	for _, tc := range cases {
		if got := Scopes(tc.method, tc.below, tc.query); !slices.Equal(got, tc.want) {
			t.Errorf("%s %s?%s: %q, want %q", tc.method, tc.below, tc.query, got, tc.want)
		}
	}
}

func TestParseChallenges(t *testing.T) {
	cases := []struct {
		in        string
		wantOK    bool
		realm     string
		service   string
		scope     string
		wantCount int
	}{
		{`Bearer realm="https://auth/token",service="reg",scope="repository:a:pull"`, true, "https://auth/token", "reg", "repository:a:pull", 1},
		{`bearer realm=https://auth/token, service=reg`, true, "https://auth/token", "reg", "", 1},
		{`Basic realm="x", Bearer realm="https://a/t",scope="repository:a:pull repository:b:pull"`, true, "https://a/t", "", "repository:a:pull repository:b:pull", 2},
		{`Bearer realm="https://a/t\"q"`, true, `https://a/t"q`, "", "", 1},
		{`Basic realm="registry"`, false, "", "", "", 1},
		{`Bearer service="no-realm"`, false, "", "", "", 1},
		{`Bearer realm="unterminated`, false, "", "", "", 1},
		{``, false, "", "", "", 0},
		{`Negotiate abc==`, false, "", "", "", 1},
	}
	for _, tc := range cases {
		if n := len(parseChallenges(tc.in)); n != tc.wantCount {
			t.Errorf("%q: %d challenges, want %d", tc.in, n, tc.wantCount)
		}
		ch, ok := bearerChallenge([]string{tc.in})
		if ok != tc.wantOK || ch.realm != tc.realm || ch.service != tc.service || ch.scope != tc.scope {
			t.Errorf("%q: got %+v %v", tc.in, ch, ok)
		}
	}
}

func TestTokenCacheLifetime(t *testing.T) {
	cases := map[int64]time.Duration{
		0:       54 * time.Second,
		60:      54 * time.Second,
		5:       4 * time.Second,
		1:       0,
		300:     270 * time.Second,
		3600:    3570 * time.Second,
		1 << 40: 24*time.Hour - 30*time.Second,
	}
	for in, want := range cases {
		if got := tokenCacheLifetime(in); got != want {
			t.Errorf("expires_in %d: %v, want %v", in, got, want)
		}
	}
}

func TestExpiringCacheBoundAndExpiry(t *testing.T) {
	c := newExpiringCache[int](3)
	now := time.Unix(1000, 0)
	for i := range 5 {
		c.put(strconv.Itoa(i), i, now.Add(time.Minute))
	}
	if c.len() != 3 {
		t.Fatalf("len %d, want 3", c.len())
	}
	if _, ok := c.get("0", now); ok {
		t.Errorf("oldest entry kept")
	}
	if v, ok := c.get("4", now); !ok || v != 4 {
		t.Errorf("newest entry lost")
	}
	if _, ok := c.get("4", now.Add(time.Minute)); ok {
		t.Errorf("expired entry returned")
	}
	c.remove("3")
	if _, ok := c.get("3", now); ok {
		t.Errorf("removed entry returned")
	}
}
