//go:build tools

// Package tools pins the CoreDNS the real-node suite runs as its cluster DNS.
package tools

import (
	_ "github.com/coredns/coredns"
)
