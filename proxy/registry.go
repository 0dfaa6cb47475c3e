package proxy

import (
	"errors"
	"net/http"
	"net/url"
	"strings"

	"k8s.io/apimachinery/pkg/types"

	"github.com/connectors-node/connectors-node/grammar/connref"
	"github.com/connectors-node/connectors-node/grammar/match"
	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
	"github.com/connectors-node/connectors-node/proxy/registryauth"
)

// Registry (OCI distribution) support for the reverse proxy.
//
// Clients name a registry Connector in path form as the repository prefix
// namespaces/<ns>/connectors/<name>/, so an image reference looks like
// <proxy-host>/namespaces/<ns>/connectors/<name>/<repo>:<tag> and the
// client requests /v2/namespaces/<ns>/connectors/<name>/<repo>/... The proxy
// sends that as /v2/<repo>/... to the Connector's address and maps Location
// headers back. The client's ping (GET /v2/) is answered by the proxy.

// registryPathPrefix starts every registry API path.
const registryPathPrefix = "/v2/"

// serveRegistryPing answers GET and HEAD /v2/ on the reverse proxy: 401
// with the proxy's Basic challenge without a valid token, 200 with one. In
// host form the caller must also have access to the Connector. It reports
// whether it handled r.
func (p *Proxy) serveRegistryPing(w http.ResponseWriter, r *http.Request) bool {
	if r.URL.Path != "/v2/" && r.URL.Path != "/v2" {
		return false
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	token, err := reverseToken(r)
	if err != nil {
		p.fail(w, r, reverseChallenge.credentialError(err))
		return true
	}
	var keys []types.NamespacedName
	if k, ok := hostRoute(r.Host, p.opts.ClusterDomain); ok {
		keys = append(keys, k)
	}
	if _, err := p.admit(r.Context(), token, keys, reverseChallenge); err != nil {
		p.fail(w, r, err)
		return true
	}
	// The connector label is set only once the caller is admitted, so an
	// unauthenticated client cannot mint metric series with made-up hosts.
	if e := entryFrom(r.Context()); e != nil && len(keys) == 1 {
		e.connector = keys[0].String()
	}
	h := w.Header()
	h.Set("Docker-Distribution-Api-Version", "registry/2.0")
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", "2")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write([]byte("{}"))
	}
	return true
}

// registryRoute parses the path form of the registry API,
// /v2/namespaces/<ns>/connectors/<name>/<rest>, into a route whose rest is
// /v2/<rest>. prefix is the repository prefix the client uses,
// namespaces/<ns>/connectors/<name>.
func (p *Proxy) registryRoute(r *http.Request) (rt route, prefix string, ok bool) {
	if _, host := hostRoute(r.Host, p.opts.ClusterDomain); host {
		return route{}, "", false
	}
	path, found := strings.CutPrefix(r.URL.EscapedPath(), registryPathPrefix)
	if !found {
		return route{}, "", false
	}
	parts := strings.SplitN(path, "/", 5)
	if len(parts) < 5 || parts[0] != "namespaces" || parts[2] != "connectors" || parts[4] == "" {
		return route{}, "", false
	}
	k := types.NamespacedName{Namespace: parts[1], Name: parts[3]}
	if !connref.Valid(k) {
		return route{}, "", false
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	prefix = strings.TrimPrefix(v1alpha1.PathPrefix(k.Namespace, k.Name), "/")
	return route{key: k, rest: registryPathPrefix + parts[4], base: scheme + "://" + r.Host}, prefix, true
}

// stripMountPrefix removes the client's repository prefix from the from=
// parameter of a cross-repository blob mount, so the backend sees its own
// repository name. Other queries are returned unchanged.
func stripMountPrefix(rawQuery, prefix string) string {
	if !strings.Contains(rawQuery, "from=") {
		return rawQuery
	}
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return rawQuery
	}
	from, ok := strings.CutPrefix(q.Get("from"), prefix+"/")
	if !ok {
		return rawQuery
	}
	q.Set("from", from)
	return q.Encode()
}

// registryLocation maps the path of a backend Location below the
// Connector's address to the client's path form: /v2/<repo>/... becomes
// /v2/<prefix>/<repo>/... under base. It reports false for other paths.
func registryLocation(base, prefix, below string) (string, bool) {
	rest, ok := strings.CutPrefix(below, registryPathPrefix)
	if !ok || prefix == "" {
		return "", false
	}
	return base + registryPathPrefix + prefix + "/" + rest, true
}

// registryPlan turns on the registry token flow for a planned request to a
// registry API path when the Connector injects a username and password
// (basic-auth and registry-token Secrets). addr is the matched address of
// conn.
func (p *Proxy) registryPlan(pl *plan, conn *v1alpha1.Connector, addr match.Address, method string) {
	if !strings.HasPrefix(pl.credential, "Basic ") {
		return
	}
	escapedPath, rawQuery := pl.target.EscapedPath(), pl.target.RawQuery
	below := addr.Below(escapedPath)
	if below != "/v2" && !strings.HasPrefix(below, registryPathPrefix) {
		return
	}
	root := strings.TrimSuffix(strings.TrimSuffix(escapedPath, below), "/")
	pl.registry = &registryauth.Flow{
		Connector: conn.Key(),
		Addresses: p.memos.candidates(0, conn),
		Basic:     pl.credential,
		Ping:      pl.target.Scheme + "://" + pl.target.Host + root + registryPathPrefix,
		Scopes:    registryauth.Scopes(method, below, rawQuery),
	}
}

// registryError gives a failure of the registry token flow its status: a
// failed realm fetch is classified like any upstream failure, a refused or
// malformed answer is 502, and anything else is left to upstreamError.
func registryError(err error) error {
	var ts *registryauth.TokenServiceError
	if errors.As(err, &ts) {
		se := classifyUpstream(ts.Err)
		se.msg = "registry token service: " + se.msg
		return se
	}
	var re *registryauth.Error
	if errors.As(err, &re) {
		return &statusError{status: http.StatusBadGateway, msg: re.Message, err: re.Err}
	}
	return err
}
