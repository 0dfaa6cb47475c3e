// Package publicurl is how pods reach the proxy: its public URL,
// http(s)://host[:port] and nothing else, and the cluster DNS domain that
// completes Service names. The command parses --public-url and
// --cluster-domain once; the CSI plugin, configgen, the proxy and the
// status writer take the checked values and parse nothing again.
package publicurl
