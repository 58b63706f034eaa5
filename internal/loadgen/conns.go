package loadgen

import (
	"context"
	"net"
)

// DialIdle opens an authenticated push WebSocket to server (http://…) as
// the idle workload does: a minimal client, without a goroutine or a
// buffer of its own, from the local address src (any if nil). It returns
// the connection after the server's hello frame. Tests use it to hold
// connections that cost their own process nothing but the socket.
func DialIdle(ctx context.Context, server, token string, src net.IP) (net.Conn, error) {
	return dialRaw(ctx, server, token, src)
}

// Ping sends an application ping frame on a connection from DialIdle and
// waits for the pong, skipping any other frame.
func Ping(cn net.Conn) error { return ping(cn, make([]byte, 512)) }
