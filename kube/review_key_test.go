package kube

import (
	"crypto/sha256"
	"testing"
)

// Decisions that differ in any field, or only in where one field ends and
// the next begins, have different access cache keys.
func TestAccessKeysAreDistinct(t *testing.T) {
	u := func(name, uid string, groups []string, extra map[string][]string) User {
		return User{Name: name, UID: uid, Groups: groups, Extra: extra}
	}
	type decision struct {
		u                     User
		ns, name, subresource string
	}
	ds := []decision{
		{u("a", "", nil, nil), "ns", "c", ""},
		{u("a", "", nil, nil), "ns", "c", "proxy"},
		{u("", "a", nil, nil), "ns", "c", ""},
		{u("a", "", nil, nil), "n", "sc", ""},
		{u("a", "", nil, nil), "nsc", "", ""},
		{u("a", "", []string{"g"}, nil), "ns", "c", ""},
		{u("a", "", []string{"g", ""}, nil), "ns", "c", ""},
		{u("a", "", []string{"", "g"}, nil), "ns", "c", ""},
		{u("a", "", []string{"gh"}, nil), "ns", "c", ""},
		{u("a", "", []string{"g", "h"}, nil), "ns", "c", ""},
		{u("a", "", nil, map[string][]string{"k": {"v"}}), "ns", "c", ""},
		{u("a", "", nil, map[string][]string{"k": {"v", "w"}}), "ns", "c", ""},
		{u("a", "", nil, map[string][]string{"k": {"vw"}}), "ns", "c", ""},
		{u("a", "", nil, map[string][]string{"k": {"v"}, "l": nil}), "ns", "c", ""},
		{u("a", "", nil, map[string][]string{"kv": nil}), "ns", "c", ""},
		{u("a", "", []string{"k"}, map[string][]string{"v": nil}), "ns", "c", ""},
	}
	seen := map[string]int{}
	for i, d := range ds {
		k := accessKey(d.u, "connector", d.ns, d.name, d.subresource)
		if j, ok := seen[k]; ok {
			t.Errorf("decisions %d and %d share a key", j, i)
		}
		seen[k] = i
	}
	// A non-resource URL never shares a key with a connector.
	for _, k := range []string{
		accessKey(u("a", "", nil, nil), "path", "get", "/metrics"),
		accessKey(u("a", "", nil, nil), "path", "get", "/metrics", ""),
		accessKey(u("a", "", nil, nil), "path", "get/metrics", ""),
		accessKey(u("a", "", nil, nil), "path", "get", "/debug/pprof/heap"),
		accessKey(u("a", "", nil, nil), "connector", "get", "/metrics"),
	} {
		if j, ok := seen[k]; ok {
			t.Errorf("a path decision shares a key with decision %d", j)
		}
		seen[k] = -1
	}
	// The same decision, extra keys in any order, has one key.
	a := accessKey(u("a", "", nil, map[string][]string{"x": {"1"}, "y": {"2"}, "z": {"3"}}), "connector", "ns", "c", "")
	for range 20 {
		if b := accessKey(u("a", "", nil, map[string][]string{"z": {"3"}, "y": {"2"}, "x": {"1"}}), "connector", "ns", "c", ""); b != a {
			t.Fatal("one decision has two keys")
		}
	}
}

func BenchmarkCacheKeys(b *testing.B) {
	user := User{Name: "system:serviceaccount:team-a:default", UID: "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:team-a", "system:authenticated"}}
	token := "eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOlsiY29ubmVjdG9ycyJdLCJleHAiOjE3OTk5OTk5OTl9.c2lnbmF0dXJlLXNpZ25hdHVyZS1zaWduYXR1cmU"
	b.ReportAllocs()
	for b.Loop() {
		sum := sha256.Sum256([]byte(token))
		_ = string(sum[:])
		_ = accessKey(user, "connector", "team-a", "git", "")
	}
}
