//go:build !linux

package httpapi

// tlsPollable: no poller here, so TLS connections have a reading
// goroutine (TLSListener is tls.NewListener).
const tlsPollable = false

// tryRead is never called here (no nbConn is made).
func (c *nbConn) tryRead(b []byte) (int, error) { return 0, errWouldBlock }
