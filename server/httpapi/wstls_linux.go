package httpapi

import (
	"io"
	"net"
	"os"
	"syscall"
)

// tlsPollable: TLS connections can be held by the poller (epoll).
const tlsPollable = true

// tryRead makes one read attempt on the socket, without waiting:
// errWouldBlock when nothing is there.
func (c *nbConn) tryRead(b []byte) (int, error) {
	var (
		n     int
		errno error
	)
	err := c.rc.Read(func(fd uintptr) bool {
		for {
			n, errno = syscall.Read(int(fd), b)
			if errno != syscall.EINTR {
				return true // never wait for readiness
			}
		}
	})
	switch {
	case err != nil: // closed, or its deadline passed
		return 0, err
	case errno == syscall.EAGAIN:
		return 0, errWouldBlock
	case errno != nil:
		return 0, &net.OpError{Op: "read", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: os.NewSyscallError("read", errno)}
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}
