package httpapi

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gobwas/ws"
)

// TLS connections held by the poller, like plain ones, without a reading
// goroutine while idle. The poller watches the TCP socket, but a
// *tls.Conn can hold, after a frame was read, plaintext already decrypted
// (the rest of a record larger than the frame: more frames) or complete
// records not yet decrypted; then the socket has nothing more to report,
// and waiting for it would leave those frames unread. So after each frame
// the worker asks the *tls.Conn for one more byte without waiting (probe):
// a byte means a frame has begun, which is read at once (the rest with
// blocking reads bounded by frameTimeout, as on plain connections); "would
// block" means the TLS connection is drained, and only then is the
// poller re-armed.
//
// Reading without waiting needs no change to crypto/tls: the TCP
// connection under it is an nbConn, whose Read, while the probe runs, makes
// one read attempt (syscall.RawConn.Read, never waiting) and, when there is
// nothing, returns errWouldBlock: a net.Error that is a timeout and
// temporary, which crypto/tls does not keep as the connection's error
// (readRecordOrCCS in crypto/tls/conn.go keeps a read error only if it is
// not a net.Error with Temporary true; the bytes of a record read so far
// stay in its input buffer and the next Read carries on; checked against
// crypto/tls itself by TestTLSReadWithoutWaiting). Outside a probe
// (the handshake, HTTP before the upgrade, frames being read) an nbConn
// reads as the TCP connection does, with its deadlines; writes are the TCP
// connection's.

// TLSListener is tls.NewListener(inner, config), except that the push
// WebSocket can hold the connections it accepts without a goroutine while
// they are idle, as it holds plain ones. Where the poller is not available
// it is tls.NewListener.
func TLSListener(inner net.Listener, config *tls.Config) net.Listener {
	if !tlsPollable {
		return tls.NewListener(inner, config)
	}
	return &tlsListener{Listener: inner, config: config}
}

type tlsListener struct {
	net.Listener
	config *tls.Config
}

func (l *tlsListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		if rc, err := tc.SyscallConn(); err == nil {
			c = &nbConn{Conn: tc, rc: rc}
		}
	}
	return tls.Server(c, l.config), nil
}

// nbConn is a TCP connection under TLS whose reads do not wait while
// nonblock is set.
type nbConn struct {
	net.Conn // *net.TCPConn: deadlines, writes, Close
	rc       syscall.RawConn
	nonblock atomic.Bool // set by the session's worker for a probe only
}

// SyscallConn is the TCP connection's, for the poller.
func (c *nbConn) SyscallConn() (syscall.RawConn, error) { return c.rc, nil }

func (c *nbConn) Read(b []byte) (int, error) {
	if !c.nonblock.Load() || len(b) == 0 {
		return c.Conn.Read(b)
	}
	return c.tryRead(b)
}

// wouldBlock is the error of a read without waiting that found nothing.
// Temporary (deprecated in package net, but what crypto/tls checks) and
// Timeout, like a deadline's error: crypto/tls keeps its connection
// usable after it.
type wouldBlock struct{}

func (wouldBlock) Error() string   { return "read would block" }
func (wouldBlock) Timeout() bool   { return true }
func (wouldBlock) Temporary() bool { return true }

var errWouldBlock net.Error = wouldBlock{}

// firstByte reads b, then from r: the byte a probe took, then the rest of
// the frame.
type firstByte struct {
	b    byte
	done bool
	r    io.Reader
}

func (f *firstByte) Read(p []byte) (int, error) {
	if f.done || len(p) == 0 {
		return f.r.Read(p)
	}
	p[0], f.done = f.b, true
	return 1, nil
}

// probe asks the session's TLS connection for the first byte of a frame
// without waiting for the socket. It returns a reader of the frame if one
// has begun to arrive, nil if the connection is drained (the poller may
// be re-armed), and open false if the session is over (closed here if
// the connection failed or ended).
func (s *session) probe() (r io.Reader, open bool) {
	if s.closed.Load() {
		return nil, false
	}
	// The deadline of the rest of the frame; and a deadline left from the
	// last frame, passed, would fail the probe.
	s.conn.SetReadDeadline(time.Now().Add(frameTimeout))
	var b [1]byte
	s.nb.nonblock.Store(true)
	n, err := s.conn.Conn.Read(b[:])
	s.nb.nonblock.Store(false)
	switch {
	case n > 0:
		// An error with it (a close_notify alert after the byte) comes
		// again with the next read.
		return &firstByte{b: b[0], r: s.conn.Conn}, true
	case errors.Is(err, errWouldBlock):
		return nil, true
	}
	s.close(ws.StatusNormalClosure, "") // EOF, close_notify, reset
	return nil, false
}
