// Package connref is the grammar of a connector list, the one way a volume
// and a forward-proxy credential name Connectors: comma-separated items,
// each <namespace>/<name> or, where a default namespace applies, <name>.
// The CSI plugin parses a volume's connectors attribute with it, configgen
// renders the forward proxy's user with Format, and the proxy parses that
// user back with it, so both sides accept the same lists up to the same
// limit, Max.
package connref
