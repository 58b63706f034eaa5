package httpapi

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// readyToRead reports whether bytes wait in c's receive queue (SIOCINQ).
func readyToRead(c syscall.Conn) bool {
	rc, err := c.SyscallConn()
	if err != nil {
		return false
	}
	n := 0
	if rc.Control(func(fd uintptr) { n, err = unix.IoctlGetInt(int(fd), unix.SIOCINQ) }) != nil || err != nil {
		return false
	}
	return n > 0
}
