package server

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// socketUnread is the number of bytes received on nc's socket and not
// yet read (SIOCINQ), 0 when nc has no socket or the kernel does not say.
func socketUnread(nc net.Conn) int {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return 0
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0
	}
	n := 0
	_ = rc.Control(func(fd uintptr) {
		if v, err := unix.IoctlGetInt(int(fd), unix.SIOCINQ); err == nil && v > 0 {
			n = v
		}
	})
	return n
}
