package proxy

import (
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"

	"k8s.io/apimachinery/pkg/types"

	"github.com/connectors-node/connectors-node/grammar/connref"
	"github.com/connectors-node/connectors-node/grammar/match"
	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
)

// route is where a reverse request goes.
type route struct {
	key types.NamespacedName
	// rest is the escaped request path below the route, "" or "/...".
	rest string
	// base is the proxy URL of the route as the client sees it.
	base string
}

// reverseRoute finds the Connector of an origin-form request: host form
// c-<name>.<ns>[.svc[.<cluster-domain>]][:port], else path form
// /namespaces/<ns>/connectors/<name>/....
func (p *Proxy) reverseRoute(r *http.Request) (route, bool) {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	origin := scheme + "://" + r.Host
	// Only an absolute path routes: the asterisk form ("OPTIONS *") and
	// anything else not starting with "/" would be joined onto a
	// Connector's address path without a segment boundary.
	if ep := r.URL.EscapedPath(); ep != "" && ep[0] != '/' {
		return route{}, false
	}
	if k, ok := hostRoute(r.Host, p.opts.ClusterDomain); ok {
		return route{key: k, rest: r.URL.EscapedPath(), base: origin}, true
	}
	parts := strings.SplitN(strings.TrimPrefix(r.URL.EscapedPath(), "/"), "/", 5)
	if len(parts) < 4 || parts[0] != "namespaces" || parts[2] != "connectors" {
		return route{}, false
	}
	k := types.NamespacedName{Namespace: parts[1], Name: parts[3]}
	if !connref.Valid(k) {
		return route{}, false
	}
	rt := route{key: k, base: origin + v1alpha1.PathPrefix(k.Namespace, k.Name)}
	if len(parts) == 5 {
		rt.rest = "/" + parts[4]
	}
	return rt, true
}

func hostRoute(hostport, clusterDomain string) (types.NamespacedName, bool) {
	h := hostport
	if host, _, err := net.SplitHostPort(hostport); err == nil {
		h = host
	}
	h = match.NormalizeHost(h)
	for _, suffix := range []string{".svc." + clusterDomain, ".svc"} {
		if strings.HasSuffix(h, suffix) {
			h = strings.TrimSuffix(h, suffix)
			break
		}
	}
	if !strings.HasPrefix(h, "c-") {
		return types.NamespacedName{}, false
	}
	h = h[2:]
	i := strings.LastIndexByte(h, '.')
	if i <= 0 {
		return types.NamespacedName{}, false
	}
	k := types.NamespacedName{Namespace: h[i+1:], Name: h[:i]}
	return k, connref.Valid(k)
}

// serveReverse handles an origin-form request: the registry ping, or a
// request to a Connector named by host form or path form.
func (p *Proxy) serveReverse(w http.ResponseWriter, r *http.Request) {
	if p.serveRegistryPing(w, r) {
		return
	}
	p.exchange(w, r, p.resolveReverse)
}

// resolveReverse routes an origin-form request to its Connector, finds the
// client's token (the class's authExtractor, else Authorization), admits
// the caller and joins the request path onto the Connector's address.
func (p *Proxy) resolveReverse(r *http.Request) (*routed, error) {
	rt, registryPrefix, ok := p.registryRoute(r)
	rawQuery := r.URL.RawQuery
	if ok {
		rawQuery = stripMountPrefix(rawQuery, registryPrefix)
	} else {
		rt, ok = p.reverseRoute(r)
	}
	if !ok {
		return nil, statusErrorf(http.StatusNotFound,
			"no connector route: use /namespaces/<ns>/connectors/<name>/ or host c-<name>.<ns>")
	}
	token, err := p.reverseClientToken(r, rt.key)
	if err != nil {
		return nil, err
	}
	c, err := p.admit(r.Context(), token, []types.NamespacedName{rt.key}, reverseChallenge)
	if err != nil {
		return nil, err
	}
	conn := c.connectors[0]
	addr, target, err := p.joinTarget(conn, conn.Spec.Address, "spec.address", rt.rest, rawQuery)
	if err != nil {
		return nil, err
	}
	pl := &plan{mode: modeReverse, target: target, dropAuthorization: true, token: token,
		location: &locationRewrite{backend: addr, base: rt.base, registryPrefix: registryPrefix}}
	return &routed{plan: pl, conn: conn, addr: addr, injects: true}, nil
}

// joinTarget joins the escaped path rest and the query onto raw, the
// Connector's address in field (spec.address, or another address of the
// Connector the request goes to). The result must still fall under that
// address: dot segments or encoded slashes in the path could otherwise
// escape it.
func (p *Proxy) joinTarget(conn *v1alpha1.Connector, raw, field, rest, rawQuery string) (match.Address, *url.URL, error) {
	pa := p.memos.address(raw)
	if pa.err != nil {
		// A Connector stored before the CRDs checked addresses: the
		// gateway is misconfigured, and the message names the rule (the
		// error never holds the value).
		reason := "is not a valid address"
		var ae *v1alpha1.AddressError
		if errors.As(pa.err, &ae) {
			reason = ae.Reason
		}
		return match.Address{}, nil, &statusError{status: http.StatusBadGateway,
			msg: "connector " + quote(conn.Key()) + ": " + field + " " + reason, err: pa.err}
	}
	target, err := pa.join(rest, rawQuery)
	if err != nil {
		return match.Address{}, nil, statusErrorf(http.StatusBadRequest, "bad request path")
	}
	t, err := match.ParseURL(target)
	if _, ok := pa.addr.Matches(t); err != nil || !ok {
		return match.Address{}, nil, statusErrorf(http.StatusBadRequest, "request path escapes the connector's address")
	}
	return pa.addr, target, nil
}

// join appends the escaped path rest and the query to the address.
func (pa *parsedAddress) join(rest, rawQuery string) (*url.URL, error) {
	if pa.joinErr != nil {
		return nil, pa.joinErr
	}
	path := pa.basePath + rest
	if path == "" {
		path = "/"
	}
	u, err := url.Parse(pa.origin + path)
	if err != nil {
		return nil, err
	}
	u.RawQuery = rawQuery
	return u, nil
}

func quote(s string) string { return `"` + s + `"` }

// locationRewrite points Location headers that name the backend back at
// the proxy.
type locationRewrite struct {
	backend match.Address
	base    string
	// registryPrefix is the client's repository prefix of a path-form
	// registry route (registry.go); "" otherwise.
	registryPrefix string
}

func (l *locationRewrite) apply(resp *http.Response) {
	if loc := resp.Header.Get("Location"); loc != "" {
		if out, ok := l.rewrite(resp, loc); ok {
			resp.Header.Set("Location", out)
		}
	}
	// Registries page tag and catalog lists with Link: <url>; rel="next".
	if links := resp.Header.Values("Link"); len(links) > 0 {
		out := make([]string, len(links))
		for i, v := range links {
			out[i] = l.rewriteLinks(resp, v)
		}
		resp.Header["Link"] = out
	}
}

// rewriteLinks rewrites the <url> targets of one Link header value that
// point at the backend.
func (l *locationRewrite) rewriteLinks(resp *http.Response, v string) string {
	var b strings.Builder
	for {
		start := strings.IndexByte(v, '<')
		if start < 0 {
			break
		}
		end := strings.IndexByte(v[start:], '>')
		if end < 0 {
			break
		}
		end += start
		b.WriteString(v[:start+1])
		target := v[start+1 : end]
		if out, ok := l.rewrite(resp, target); ok {
			target = out
		}
		b.WriteString(target)
		b.WriteByte('>')
		v = v[end+1:]
	}
	b.WriteString(v)
	return b.String()
}

// rewrite maps a URL the backend sent (absolute or relative to the
// request) to the proxy's address when it points at the backend.
func (l *locationRewrite) rewrite(resp *http.Response, raw string) (string, bool) {
	u, err := resp.Request.URL.Parse(raw)
	if err != nil {
		return "", false
	}
	t, err := match.ParseURL(u)
	if err != nil {
		return "", false
	}
	if _, ok := l.backend.Matches(t); !ok {
		return "", false
	}
	out := l.base + l.backend.Below(u.EscapedPath())
	if loc, ok := registryLocation(l.base, l.registryPrefix, l.backend.Below(u.EscapedPath())); ok {
		out = loc
	}
	if u.RawQuery != "" {
		out += "?" + u.RawQuery
	}
	if u.Fragment != "" {
		out += "#" + u.EscapedFragment()
	}
	return out, true
}
