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
	conn := func(ns, name, subresource string) decision {
		return decision{verb: "get", namespace: ns, name: name, subresource: subresource}
	}
	path := func(verb, p string) decision { return decision{verb: verb, path: p} }
	ds := []struct {
		u User
		d decision
	}{
		{u("a", "", nil, nil), conn("ns", "c", "")},
		{u("a", "", nil, nil), conn("ns", "c", "proxy")},
		{u("", "a", nil, nil), conn("ns", "c", "")},
		{u("a", "", nil, nil), conn("n", "sc", "")},
		{u("a", "", nil, nil), conn("nsc", "", "")},
		{u("a", "", []string{"g"}, nil), conn("ns", "c", "")},
		{u("a", "", []string{"g", ""}, nil), conn("ns", "c", "")},
		{u("a", "", []string{"", "g"}, nil), conn("ns", "c", "")},
		{u("a", "", []string{"gh"}, nil), conn("ns", "c", "")},
		{u("a", "", []string{"g", "h"}, nil), conn("ns", "c", "")},
		{u("a", "", nil, map[string][]string{"k": {"v"}}), conn("ns", "c", "")},
		{u("a", "", nil, map[string][]string{"k": {"v", "w"}}), conn("ns", "c", "")},
		{u("a", "", nil, map[string][]string{"k": {"vw"}}), conn("ns", "c", "")},
		{u("a", "", nil, map[string][]string{"k": {"v"}, "l": nil}), conn("ns", "c", "")},
		{u("a", "", nil, map[string][]string{"kv": nil}), conn("ns", "c", "")},
		{u("a", "", []string{"k"}, map[string][]string{"v": nil}), conn("ns", "c", "")},
		// Non-resource URLs never share a key with a Connector.
		{u("a", "", nil, nil), path("get", "/metrics")},
		{u("a", "", nil, nil), path("get", "/debug/pprof/heap")},
		{u("a", "", nil, nil), path("list", "/metrics")},
		{u("a", "", nil, nil), conn("/metrics", "", "")},
		{u("a", "", nil, nil), conn("", "/metrics", "")},
		{u("b", "", nil, nil), path("get", "/metrics")},
	}
	seen := map[string]int{}
	for i, d := range ds {
		k := d.d.key(d.u)
		if j, ok := seen[k]; ok {
			t.Errorf("decisions %d and %d share a key", j, i)
		}
		seen[k] = i
	}
	// The same decision, extra keys in any order, has one key.
	a := conn("ns", "c", "").key(u("a", "", nil, map[string][]string{"x": {"1"}, "y": {"2"}, "z": {"3"}}))
	for range 20 {
		if b := conn("ns", "c", "").key(u("a", "", nil, map[string][]string{"z": {"3"}, "y": {"2"}, "x": {"1"}})); b != a {
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
		_ = decision{verb: "get", namespace: "team-a", name: "git"}.key(user)
	}
}
