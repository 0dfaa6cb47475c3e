package configgen

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
)

// Names of the built-in generators, used when no mounted Connector's class
// has a configuration of that name.
const (
	// GeneratorGitconfig writes .gitconfig.
	GeneratorGitconfig = "gitconfig"
	// GeneratorRegistryConfig writes config.json.
	GeneratorRegistryConfig = "registry-config"
	// GeneratorBuildkitd writes buildkitd.toml.
	GeneratorBuildkitd = "buildkitd"
)

// Names of the files the built-in generators write.
const (
	FileGitconfig      = ".gitconfig"
	FileRegistryConfig = "config.json"
	FileBuildkitd      = "buildkitd.toml"
)

// generator renders a built-in configuration over the given Connectors.
type generator struct {
	file   string
	render func(cs []Connector, token string) ([]byte, error)
}

func builtinGenerator(name string) (generator, bool) {
	switch name {
	case GeneratorGitconfig:
		return generator{file: FileGitconfig, render: gitconfig}, true
	case GeneratorRegistryConfig:
		return generator{file: FileRegistryConfig, render: registryConfig}, true
	case GeneratorBuildkitd:
		return generator{file: FileBuildkitd, render: buildkitd}, true
	}
	return generator{}, false
}

// gitconfig rewrites each Connector's address to its reverse-proxy address
// and sends the token only to that proxy address:
//
//	[http "<proxyAddress>/"]
//		extraHeader = Authorization: Basic base64(":"+token)
//		followRedirects = false
//	[url "<proxyAddress>/"]
//		insteadOf = <address>/
//
// git sends http.extraHeader with every request of a fetch or push, and
// after following a redirect it sends them to the redirect's host: the
// proxy passes an upstream's redirect to another host on to the client,
// so following it would hand the token to that host. followRedirects =
// false, scoped like the header, stops git there; other remotes keep
// git's default.
//
// Both URLs end in exactly one '/', so a path prefix matches on a segment
// boundary and git's per-URL http config never applies to other remotes. A
// Connector without an address gets the header section only.
func gitconfig(cs []Connector, token string) ([]byte, error) {
	header, err := gitConfigValue("Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(":"+token)))
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	for _, c := range unique(cs) {
		proxy, err := gitConfigSubsection(withSlash(c.ProxyAddress))
		if err != nil {
			return nil, &InvalidError{Field: connectorField(c, "proxy address"), Reason: err.Error()}
		}
		fmt.Fprintf(&b, "[http %s]\n\textraHeader = %s\n\tfollowRedirects = false\n", proxy, header)
		if c.Object.Spec.Address == "" {
			continue
		}
		if err := controlError(connectorField(c, "spec.address"), c.Object.Spec.Address); err != nil {
			return nil, err
		}
		address, err := gitConfigValue(withSlash(c.Object.Spec.Address))
		if err != nil {
			return nil, &InvalidError{Field: connectorField(c, "spec.address"), Reason: err.Error()}
		}
		fmt.Fprintf(&b, "[url %s]\n\tinsteadOf = %s\n", proxy, address)
	}
	return []byte(b.String()), nil
}

// dockerConfig is the part of the docker/podman/skopeo/crane config.json
// that carries credentials.
type dockerConfig struct {
	Auths map[string]dockerAuth `json:"auths"`
}

type dockerAuth struct {
	// Auth is base64("<user>:<password>").
	Auth string `json:"auth"`
}

// registryConfig writes config.json with one auths entry per reverse-proxy
// host[:port]. The entry's user is the first Connector on that host (the
// reverse proxy ignores the user and picks the Connector from the path) and
// the password is the token.
func registryConfig(cs []Connector, token string) ([]byte, error) {
	cfg := dockerConfig{Auths: make(map[string]dockerAuth)}
	for _, c := range unique(cs) {
		u, err := proxyAddressURL(c)
		if err != nil {
			return nil, err
		}
		if _, ok := cfg.Auths[u.Host]; ok {
			continue
		}
		cred := c.Object.Key() + ":" + token
		cfg.Auths[u.Host] = dockerAuth{Auth: base64.StdEncoding.EncodeToString([]byte(cred))}
	}
	out, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encoding %s: %w", FileRegistryConfig, err)
	}
	return append(out, '\n'), nil
}

// buildkitd writes buildkitd.toml marking every plain-HTTP reverse-proxy
// host[:port] as an HTTP registry. Proxy hosts served over https are left
// out: buildkitd then verifies them with its own trust store.
func buildkitd(cs []Connector, _ string) ([]byte, error) {
	var b strings.Builder
	seen := make(map[string]bool)
	for _, c := range unique(cs) {
		u, err := proxyAddressURL(c)
		if err != nil {
			return nil, err
		}
		if u.Scheme != "http" || seen[u.Host] {
			continue
		}
		seen[u.Host] = true
		if b.Len() > 0 {
			b.WriteByte('\n')
		}
		host, err := tomlString(u.Host)
		if err != nil {
			return nil, &InvalidError{Field: connectorField(c, "proxy address"), Reason: err.Error()}
		}
		fmt.Fprintf(&b, "[registry.%s]\n  http = true\n", host)
	}
	return []byte(b.String()), nil
}

// proxyAddressURL parses a Connector's reverse-proxy address and lower-cases
// its host.
func proxyAddressURL(c Connector) (*url.URL, error) {
	u, err := url.Parse(c.ProxyAddress)
	if err != nil || u.Host == "" {
		return nil, &InvalidError{Field: connectorField(c, "proxy address"), Reason: "is not a URL with a host"}
	}
	u.Host = strings.ToLower(u.Host)
	return u, nil
}

// unique drops later repeats of the same Connector.
func unique(cs []Connector) []Connector {
	out := make([]Connector, 0, len(cs))
	seen := make(map[string]bool, len(cs))
	for _, c := range cs {
		if k := c.Object.Key(); !seen[k] {
			seen[k] = true
			out = append(out, c)
		}
	}
	return out
}

// withSlash returns u ending in exactly one '/'.
func withSlash(u string) string { return strings.TrimRight(u, "/") + "/" }
