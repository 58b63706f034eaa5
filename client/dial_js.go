//go:build js

package client

import (
	"encoding/base64"
	"net/http"
	"strings"

	"github.com/coder/websocket"

	"github.com/hush-chat/hush/proto"
)

// dialOptions carry the credentials as a second subprotocol: a browser
// cannot set headers on a WebSocket (see proto.WebSocketAuthPrefix).
func dialOptions(_ *http.Client, auth string) *websocket.DialOptions {
	token := strings.TrimPrefix(auth, "Bearer ")
	return &websocket.DialOptions{Subprotocols: []string{
		proto.WebSocketProtocol, proto.WebSocketAuthPrefix + base64.RawURLEncoding.EncodeToString([]byte(token)),
	}}
}
