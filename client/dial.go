//go:build !js

package client

import (
	"net/http"
	"strconv"

	"github.com/coder/websocket"

	"github.com/hush-chat/hush/proto"
)

// dialOptions authenticate the WebSocket with the Authorization header,
// over the HTTP client's transport.
func dialOptions(hc *http.Client, auth string) *websocket.DialOptions {
	h := http.Header{}
	h.Set(proto.HeaderAuthorization, auth)
	h.Set(proto.HeaderVersion, strconv.Itoa(proto.Version))
	return &websocket.DialOptions{HTTPClient: hc, HTTPHeader: h, Subprotocols: []string{proto.WebSocketProtocol}}
}
