// Package configgen renders the files of a Connectors CSI volume: the
// built-in files every volume gets (the pod's token, forward-proxy URLs, a
// .env file, the proxy CA), the built-in generators (gitconfig,
// registry-config, buildkitd) and the configuration templates of
// ConnectorClasses.
//
// Rendering is a pure function of its Input: it reads no file, environment
// variable, clock or network, and the same Input always gives the same bytes,
// so a caller can compare two renders to find what changed. The caller owns
// every read (objects, token, CA, system roots) and every write.
//
// # Built-in files
//
// Every volume gets these unless a "!name" exclusion drops them:
//
//	context.token                  the pod's token, no newline
//	http.proxy, https.proxy        http://<ns1>%2F<name1>,<ns2>%2F<name2>:<token>@<proxy-host[:port]>
//	.env                           http_proxy, https_proxy, no_proxy, then HTTP_PROXY,
//	                               HTTPS_PROXY, NO_PROXY, one KEY='value' per line
//	connector.status.proxyAddress  the last Connector's reverse-proxy address
//	ca.crt, context.proxy.caCert,
//	ca.cert                        the proxy CA (ca.cert is deprecated)
//	ca-bundle.crt                  the system roots, then the proxy CA
//
// When the last Connector's class has a proxy of its own
// (Connector.ClassProxyURL), http.proxy, https.proxy and .env point at that
// proxy instead of ProxyURL, as upstream applies the proxy settings of the
// last ConnectorClass.
//
// no_proxy starts from loopback and the cluster-local suffixes of
// Input.ClusterDomain; for the default cluster.local
//
//	localhost,127.0.0.1,::1,.svc,.svc.cluster.local,.cluster.local
//
// adds the forward proxy's host and every Connector's reverse-proxy host
// (clients reach the reverse proxy directly), and then drops every entry
// that would match the host of a mounted Connector's address or address
// extension, so that tool is still reached through the forward proxy.
//
// The built-in generators, used for a configuration name no mounted
// Connector's class has: gitconfig (.gitconfig), registry-config
// (config.json) and buildkitd (buildkitd.toml).
//
// # Templates
//
// ConnectorClass configuration data are Go text/template templates with the
// sprig functions, minus every function that reads the node (environment,
// DNS, clock, local time zone) or draws random numbers; see nodeFuncs.
//
// Templates run as upstream runs them, with text/template's default
// missingkey option: a missing map key is nil, so it tests false and prints
// "<no value>" (upstream's SonarQube class reads the port urlParse never
// sets), and so is every field under it. Parse errors, unknown functions,
// wrong function arguments and a field of a non-map value still fail with
// an ErrTemplate error naming the class, configuration and file. The map
// form of a Connector always carries its list and string fields, empty when
// unset, so `{{ range .connector.spec.params }}` works on any Connector;
// unset object fields (caCertSecretRef, status.proxy) stay missing.
//
// Templates also get escaping functions, one per file format the catalog
// writes (gitConfigValue, gitConfigSubsection, xmlText, xmlAttr, iniValue,
// npmrcValue, yamlString, yamlKey, tomlString, shellQuote; see escape.go):
// each writes a value so that the format's reader reads back that value and
// nothing else, or fails the render when it cannot. The built-in
// generators use the same functions. urlParse fails on a value that is not
// a URL or decodes to a control character; keys and values follow key
// order.
//
// Rendered files are a trust boundary, also for classes that escape
// nothing: a value from a Connector (spec, metadata, status),
// configuration.params or the class's status proxy address that holds a
// control character (C0, DEL, C1, U+2028, U+2029) and reaches a file fails
// the volume (see guard.go). The token and the CA are the renderer's own.
//
// .configurations.<param> holds the rendered configuration's own params
// (defaults, then configuration.params), as upstream documents it, and
// .configurations.<name>.<param> the params of every rendered
// configuration. When a param has the name of a configuration, the flat
// param wins. .connector.spec.params lists the Connector's params, then
// the class's spec.params defaults for the names it does not set.
// One template writes at most MaxTemplateOutput bytes.
//
// # Errors
//
// Errors match one of three sentinels with errors.Is: ErrUnknownConfiguration
// (a configuration name nothing provides), ErrInvalid (a bad volume
// attribute, a bad file name in a class, a control character a Connector or
// configuration.params brings into a file, or a value a template function
// cannot write) and ErrTemplate (a class template or param default that
// does not work). Any other error means the caller passed an Input it
// should never pass (no Connectors, no token, no ProxyURL). No error
// message carries the token, and none repeats the value it refuses.
package configgen
