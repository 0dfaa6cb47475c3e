//go:build !linux

package exepages

import "errors"

var errUnsupported = errors.New("releasing pages is supported on Linux only")

func madvise(Mapping, advice) error { return errUnsupported }
