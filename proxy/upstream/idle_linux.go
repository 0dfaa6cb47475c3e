package upstream

import (
	"errors"
	"net"
	"syscall"
)

// idleClean reports whether an idle connection may carry the next request:
// the upstream has not closed it and has sent nothing since the last
// response (bytes there would be read as the next request's answer). It
// peeks without blocking, one system call.
func idleClean(nc net.Conn) bool {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	clean := false
	var buf [1]byte
	err = rc.Read(func(fd uintptr) bool {
		_, _, rerr := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		// Nothing to read (EAGAIN) is the only clean answer; data, the
		// end of the stream or another error are not.
		clean = errors.Is(rerr, syscall.EAGAIN)
		return true
	})
	return err == nil && clean
}
