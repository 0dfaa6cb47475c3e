package proxy

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"strings"

	"github.com/connectors-node/connectors-node/grammar/match"
	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
)

// ErrNotAPIAddress is returned by SendToAPI for a URL outside the class
// API's address: the request is not sent.
var ErrNotAPIAddress = errors.New("not under the connectorclass API address")

// The headers that carry a Connector to a ConnectorClass API, as upstream's
// API specification defines them: base64 of {"baseURL": spec.address}, of
// the Secret's type, and of the JSON of the Secret's data.
const (
	HeaderPluginMeta   = "X-Plugin-Meta"
	HeaderPluginAuth   = "X-Plugin-Auth"
	HeaderPluginSecret = "X-Plugin-Secret"
)

// SendToAPI sends r to a ConnectorClass API on Connector c's behalf (the
// status reconciler's api probes; c nil checks the API without a
// Connector). api is the class's resolved API address. r's URL must have
// api's scheme, host and port and a clean path under api's path; any other
// URL, and the proxy's own address, is refused with an error wrapping
// ErrNotAPIAddress before anything is sent. When c has a Secret the request
// carries it in upstream's X-Plugin-Meta, X-Plugin-Auth and X-Plugin-Secret
// headers, and only then: the class API is where upstream sends it. The
// request is verified with api's CACerts and the proxy's roots and dials
// through the SSRF guard. Client Authorization and X-Plugin headers are
// dropped; redirects are returned, never followed. Errors never carry the
// credential.
func (p *Proxy) SendToAPI(ctx context.Context, c *v1alpha1.Connector, api *v1alpha1.Addressable, r *http.Request) (*http.Response, error) {
	if api == nil {
		return nil, fmt.Errorf("no API address: %w", ErrNotAPIAddress)
	}
	base, err := url.Parse(api.URL)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("API address %q: %w", api.URL, ErrNotAPIAddress)
	}
	t, err := match.ParseURL(r.URL)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotAPIAddress, err)
	}
	if !underAPI(base, r.URL) || p.isSelf(t) {
		return nil, fmt.Errorf("%s://%s:%s%s: %w", t.Scheme, t.Host, t.Port, r.URL.EscapedPath(), ErrNotAPIAddress)
	}
	out := r.Clone(ctx)
	for _, h := range []string{"Authorization", "Proxy-Authorization", HeaderPluginMeta, HeaderPluginAuth, HeaderPluginSecret} {
		out.Header.Del(h)
	}
	if c != nil {
		if err := p.pluginHeaders(ctx, c, out.Header); err != nil {
			return nil, err
		}
	}
	tr, err := p.upstreams.transport([]byte(api.CACerts))
	if err != nil {
		return nil, fmt.Errorf("API address CACerts: %w", err)
	}
	return tr.auto.RoundTrip(out)
}

// pluginHeaders sets the X-Plugin headers of Connector c.
func (p *Proxy) pluginHeaders(ctx context.Context, c *v1alpha1.Connector, h http.Header) error {
	meta, err := json.Marshal(map[string]string{"baseURL": c.Spec.Address})
	if err != nil {
		return err
	}
	h.Set(HeaderPluginMeta, base64.StdEncoding.EncodeToString(meta))
	s, err := p.secret(ctx, c)
	if err != nil || s == nil {
		return err
	}
	data, err := json.Marshal(s.Data) // each value base64, as Kubernetes writes Secret data
	if err != nil {
		return fmt.Errorf("connector %q: encoding the auth secret failed", c.Key())
	}
	h.Set(HeaderPluginAuth, base64.StdEncoding.EncodeToString([]byte(s.Type)))
	h.Set(HeaderPluginSecret, base64.StdEncoding.EncodeToString(data))
	return nil
}

// underAPI reports whether u is base or below it: the same scheme, host
// and port (default ports made explicit), no user info, and a path with no
// dot segments or encoded separators that starts with base's path at a
// segment boundary.
func underAPI(base, u *url.URL) bool {
	if u.User != nil || !strings.EqualFold(u.Scheme, base.Scheme) {
		return false
	}
	if apiHostPort(base) != apiHostPort(u) {
		return false
	}
	raw := strings.ToLower(u.EscapedPath())
	if strings.Contains(raw, "%2f") || strings.Contains(raw, "%2e") || strings.Contains(raw, "%5c") || strings.Contains(u.Path, `\`) {
		return false
	}
	p := u.Path
	if p == "" {
		p = "/"
	}
	if cleaned := path.Clean(p); cleaned != strings.TrimSuffix(p, "/") && cleaned != p {
		return false
	}
	prefix := strings.TrimSuffix(base.Path, "/")
	return prefix == "" || p == prefix || strings.HasPrefix(p, prefix+"/")
}

func apiHostPort(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = match.DefaultPort(strings.ToLower(u.Scheme))
	}
	return strings.ToLower(strings.TrimSuffix(u.Hostname(), ".")) + ":" + port
}
