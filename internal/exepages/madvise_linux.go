package exepages

import (
	"errors"

	"golang.org/x/sys/unix"
)

var errUnsupported = errors.New("advice not supported by this kernel")

func madvise(m Mapping, a advice) error {
	var flag uintptr
	switch a {
	case adviseRandom:
		flag = unix.MADV_RANDOM
	case advisePageout:
		flag = unix.MADV_PAGEOUT
	case adviseDontNeed:
		flag = unix.MADV_DONTNEED
	default:
		return errors.New("unknown advice " + a.String())
	}
	// The range is a whole mapping of this process's executable; madvise
	// takes it as plain numbers, so no Go pointer is made of it.
	_, _, e := unix.Syscall(unix.SYS_MADVISE, m.Start, m.Len(), flag)
	if e == unix.EINVAL && a == advisePageout {
		return errUnsupported
	}
	if e != 0 {
		return e
	}
	return nil
}
