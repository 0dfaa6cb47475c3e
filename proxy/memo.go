package proxy

import (
	"encoding/json"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/connectors-node/connectors-node/grammar/match"
	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
)

// maxMemoEntries bounds each memo; a full memo is emptied and refills.
const maxMemoEntries = 4096

// memo is a bounded, concurrent map of values derived from strings or
// objects that every request would otherwise derive again: a Connector's
// parsed addresses, a Secret's Authorization value.
type memo[K comparable, V any] struct {
	m sync.Map
	n atomic.Int64
}

func (c *memo[K, V]) load(k K) (V, bool) {
	v, ok := c.m.Load(k)
	if !ok {
		var zero V
		return zero, false
	}
	return v.(V), true
}

func (c *memo[K, V]) store(k K, v V) {
	if _, loaded := c.m.Swap(k, v); loaded {
		return
	}
	if c.n.Add(1) > maxMemoEntries {
		c.m.Clear()
		c.n.Store(0)
	}
}

// parsedAddress is an address string parsed for matching and for joining
// request paths onto it.
type parsedAddress struct {
	addr match.Address
	err  error
	// origin is scheme://host of the address as written; basePath its
	// escaped path without a trailing slash; joinErr why the address as
	// written does not parse as a URL.
	origin, basePath string
	joinErr          error
}

// memos hold what the proxy derives per request from Connectors and
// Secrets. Parsing is a pure function of the address string, so a changed
// address is simply another key; an Authorization value is kept with the
// Secret's UID and resourceVersion and rebuilt when either changes.
type memos struct {
	addresses  memo[string, *parsedAddress]
	extensions memo[string, string]
	auth       memo[types.NamespacedName, *secretAuth]
	classAPIs  memo[types.UID, *versionedClassAPI]
}

// versionedClassAPI is the parsed OpenAPI description of one version of a
// ConnectorClass.
type versionedClassAPI struct {
	version string
	api     *classAPI
}

// classAPI returns parseClassAPI of the class's spec.api, parsed once per
// version of the class. A class without UID or resourceVersion (not from
// the API) is not kept.
func (m *memos) classAPI(c *v1alpha1.ConnectorClass) *classAPI {
	if c.UID == "" || c.ResourceVersion == "" {
		return parseClassAPI(c.Spec.API)
	}
	if v, ok := m.classAPIs.load(c.UID); ok && v.version == c.ResourceVersion {
		return v.api
	}
	api := parseClassAPI(c.Spec.API)
	m.classAPIs.store(c.UID, &versionedClassAPI{version: c.ResourceVersion, api: api})
	return api
}

// address parses raw as a Connector address (match.ParseAddress), once.
func (m *memos) address(raw string) *parsedAddress {
	if pa, ok := m.addresses.load(raw); ok {
		return pa
	}
	pa := &parsedAddress{}
	pa.addr, pa.err = match.ParseAddress(raw)
	if u, err := url.Parse(raw); err == nil {
		pa.origin = u.Scheme + "://" + u.Host
		pa.basePath = strings.TrimSuffix(u.EscapedPath(), "/")
	} else {
		pa.joinErr = err
	}
	m.addresses.store(raw, pa)
	return pa
}

// extension is the address string of an addressExtensions value, "" when
// it is not a JSON string.
func (m *memos) extension(raw []byte) string {
	if s, ok := m.extensions.load(string(raw)); ok {
		return s
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		s = ""
	}
	m.extensions.store(string(raw), s)
	return s
}

// candidates lists the parseable addresses of a Connector: spec.address and
// the string values of spec.addressExtensions.
func (m *memos) candidates(index int, c *v1alpha1.Connector) []match.Candidate {
	out := make([]match.Candidate, 0, 1+len(c.Spec.AddressExtensions))
	if pa := m.address(c.Spec.Address); pa.err == nil {
		out = append(out, match.Candidate{Index: index, Address: pa.addr})
	}
	for _, ext := range c.Spec.AddressExtensions {
		s := m.extension(ext.Value.Raw)
		if s == "" {
			continue
		}
		if pa := m.address(s); pa.err == nil {
			out = append(out, match.Candidate{Index: index, Address: pa.addr})
		}
	}
	return out
}

// secretAuth is the Authorization value of one version of a Secret.
type secretAuth struct {
	uid     types.UID
	version string
	value   string
	err     error
}

// authorization returns authorizationFor(s), built once per version of s.
// A Secret without UID or resourceVersion (not from the API) is not kept.
func (m *memos) authorization(s *corev1.Secret) (string, error) {
	if s.UID == "" || s.ResourceVersion == "" {
		return authorizationFor(s)
	}
	key := types.NamespacedName{Namespace: s.Namespace, Name: s.Name}
	if a, ok := m.auth.load(key); ok && a.uid == s.UID && a.version == s.ResourceVersion {
		return a.value, a.err
	}
	a := &secretAuth{uid: s.UID, version: s.ResourceVersion}
	a.value, a.err = authorizationFor(s)
	m.auth.store(key, a)
	return a.value, a.err
}
