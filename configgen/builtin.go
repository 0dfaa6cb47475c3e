package configgen

import (
	"bytes"
	"net/url"
	"strings"

	"k8s.io/apimachinery/pkg/types"

	"github.com/connectors-node/connectors-node/grammar/connref"
)

// Names of the built-in files.
const (
	FileToken        = "context.token"
	FileHTTPProxy    = "http.proxy"
	FileHTTPSProxy   = "https.proxy"
	FileEnv          = ".env"
	FileProxyAddress = "connector.status.proxyAddress"
	FileCACert       = "ca.crt"
	FileContextCA    = "context.proxy.caCert"
	// FileCACertLegacy is the deprecated twin of FileCACert.
	FileCACertLegacy = "ca.cert"
	FileCABundle     = "ca-bundle.crt"
)

// addBuiltins puts the built-in files into files.
//
// The forward proxy is the last Connector's class's own proxy when it has
// one (upstream: "the proxy settings from the last ConnectorClass are
// applied"), else the built-in proxy.
func addBuiltins(in *Input, proxy *url.URL, files map[string][]byte) error {
	if own := in.Connectors[len(in.Connectors)-1].ClassProxyURL; own != "" {
		if u, err := url.Parse(own); err == nil && u.Host != "" && (u.Scheme == "http" || u.Scheme == "https") {
			proxy = &url.URL{Scheme: u.Scheme, Host: u.Host}
		}
	}
	forward := forwardProxyURL(in, proxy)
	env, err := envFile(forward, noProxy(in, proxy))
	if err != nil {
		return err
	}
	files[FileToken] = []byte(in.Token)
	files[FileHTTPProxy] = []byte(forward)
	files[FileHTTPSProxy] = []byte(forward)
	files[FileEnv] = env
	files[FileProxyAddress] = []byte(in.Connectors[len(in.Connectors)-1].ProxyAddress)
	files[FileCACert] = bytes.Clone(in.CACertPEM)
	files[FileContextCA] = bytes.Clone(in.CACertPEM)
	files[FileCACertLegacy] = bytes.Clone(in.CACertPEM)
	files[FileCABundle] = caBundle(in.SystemRootsPEM, in.CACertPEM)
	return nil
}

// forwardProxyURL is the forward proxy with the credentials in userinfo:
// the Connectors as a connector list (grammar/connref), '/' escaped as %2F,
// as the user and the token as the password.
func forwardProxyURL(in *Input, proxy *url.URL) string {
	keys := make([]types.NamespacedName, 0, len(in.Connectors))
	for _, c := range in.Connectors {
		keys = append(keys, types.NamespacedName{Namespace: c.Object.Namespace, Name: c.Object.Name})
	}
	u := url.URL{
		Scheme: proxy.Scheme,
		User:   url.UserPassword(connref.Format(keys), in.Token),
		Host:   proxy.Host,
	}
	return u.String()
}

// envFile is the .env file: lower-case then upper-case proxy variables,
// one KEY='value' per line, readable by `set -a; . ./.env; set +a` and by
// dotenv parsers.
func envFile(forward, noProxy string) ([]byte, error) {
	var b strings.Builder
	for _, names := range [][3]string{
		{"http_proxy", "https_proxy", "no_proxy"},
		{"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"},
	} {
		for i, value := range []string{forward, forward, noProxy} {
			quoted, err := shellQuote(value)
			if err != nil {
				return nil, &InvalidError{Field: FileEnv + " " + names[i], Reason: err.Error()}
			}
			b.WriteString(names[i] + "=" + quoted + "\n")
		}
	}
	return []byte(b.String()), nil
}

// caBundle is the system roots followed by the proxy CA, with a newline
// between them when the roots lack one.
func caBundle(roots, ca []byte) []byte {
	out := make([]byte, 0, len(roots)+1+len(ca))
	out = append(out, roots...)
	if len(out) > 0 && out[len(out)-1] != '\n' {
		out = append(out, '\n')
	}
	return append(out, ca...)
}
