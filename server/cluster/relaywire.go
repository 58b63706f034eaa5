package cluster

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/hush-chat/hush/proto"
)

// The relay's messages on NATS, JSON-encoded.
//
// Subjects. A node's relay id is the first 16 bytes of the SHA-256 of
// its public URL, in hex (nodeID): a fixed-length token NATS accepts
// whatever the URL holds. A node receives everything relayed to it as a
// host on relaySubjectPrefix + its id (one subject, so the messages of
// one origin node arrive in the order it sent them), and the frames of
// each session it relays as an origin on that subject + "." + the
// session id (one subject per session, in order).

// relaySubjectPrefix starts every relay subject.
const relaySubjectPrefix = "hush.calls.relay."

// idLen is the length of node and session ids: 16 bytes in hex.
const idLen = 32

// maxKeepAliveIDs bounds the session ids of one keepalive message (a
// node relaying more sends several).
const maxKeepAliveIDs = 1000

// maxDeviceBytes bounds a relayed device id (ids are 32 hex characters;
// this leaves room without letting a message grow unbounded).
const maxDeviceBytes = 128

// nodeID is the relay id of the node whose public URL is url.
func nodeID(url string) string {
	h := sha256.Sum256([]byte(url))
	return hex.EncodeToString(h[:idLen/2])
}

// hostSubject is where a node receives what is relayed to it.
func hostSubject(node string) string { return relaySubjectPrefix + node }

// sessionSubject is where an origin node receives a session's frames.
func sessionSubject(origin, session string) string {
	return relaySubjectPrefix + origin + "." + session
}

// Operations of a toHost message.
const (
	opOpen      = "open"      // a new session: device, and call (its join); a request
	opFrame     = "frame"     // a frame of the device (call); a request
	opClose     = "close"     // the session is over: the device leaves the room
	opKeepAlive = "keepalive" // the origin's live sessions (sessions); a request
)

// toHost is a message from an origin node to the host of a room.
type toHost struct {
	Op       string      `json:"op"`
	Origin   string      `json:"origin"` // the origin node's id: replies go to its session subjects
	Session  string      `json:"session,omitempty"`
	Device   string      `json:"device,omitempty"`
	Call     *proto.Call `json:"call,omitempty"`
	Sessions []string    `json:"sessions,omitempty"`
}

// hostReply answers an open, frame or keepalive request.
type hostReply struct {
	// Error is the host's error for the frame (nil: handled).
	Error *proto.Error `json:"error,omitempty"`
	// NotHosted: the host does not host the room (calls.ErrNotHosted).
	NotHosted bool `json:"not_hosted,omitempty"`
	// Unknown lists, for a keepalive, the sessions the host does not
	// have (closed or expired there).
	Unknown []string `json:"unknown,omitempty"`
}

// toOrigin is a message from the host to an origin node about one
// session, on its session subject: a frame for the device, or the end of
// the session on the host (End says why).
type toOrigin struct {
	Call *proto.Call `json:"call,omitempty"`
	End  string      `json:"end,omitempty"`
}

// errBadRelay wraps every decoding error.
var errBadRelay = errors.New("cluster: bad relay message")

// isID reports whether s is a node or session id: idLen lower-case hex
// characters.
func isID(s string) bool {
	if len(s) != idLen {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// decodeToHost decodes and checks a message for the host. Its errors
// say what is wrong, never what the message holds.
func decodeToHost(data []byte) (toHost, error) {
	var m toHost
	if err := json.Unmarshal(data, &m); err != nil {
		return toHost{}, fmt.Errorf("%w: not JSON of a relay message", errBadRelay)
	}
	if !isID(m.Origin) {
		return toHost{}, fmt.Errorf("%w: bad origin id", errBadRelay)
	}
	switch m.Op {
	case opOpen, opFrame, opClose:
		if !isID(m.Session) {
			return toHost{}, fmt.Errorf("%w: bad session id", errBadRelay)
		}
	case opKeepAlive:
		if len(m.Sessions) > maxKeepAliveIDs {
			return toHost{}, fmt.Errorf("%w: keepalive of %d sessions (at most %d)", errBadRelay, len(m.Sessions), maxKeepAliveIDs)
		}
		for _, id := range m.Sessions {
			if !isID(id) {
				return toHost{}, fmt.Errorf("%w: bad session id in keepalive", errBadRelay)
			}
		}
		return m, nil
	default:
		return toHost{}, fmt.Errorf("%w: unknown op", errBadRelay)
	}
	switch m.Op {
	case opOpen:
		if m.Device == "" || len(m.Device) > maxDeviceBytes {
			return toHost{}, fmt.Errorf("%w: bad device id", errBadRelay)
		}
		if m.Call == nil || m.Call.Op != proto.CallJoin {
			return toHost{}, fmt.Errorf("%w: open without a join", errBadRelay)
		}
	case opFrame:
		if m.Call == nil {
			return toHost{}, fmt.Errorf("%w: frame without a call", errBadRelay)
		}
	}
	return m, nil
}

// decodeToOrigin decodes and checks a message for an origin node.
func decodeToOrigin(data []byte) (toOrigin, error) {
	var m toOrigin
	if err := json.Unmarshal(data, &m); err != nil {
		return toOrigin{}, fmt.Errorf("%w: not JSON of a relay message", errBadRelay)
	}
	if (m.Call == nil) == (m.End == "") {
		return toOrigin{}, fmt.Errorf("%w: want a call or an end", errBadRelay)
	}
	return m, nil
}

// decodeReply decodes a host's reply.
func decodeReply(data []byte) (hostReply, error) {
	var r hostReply
	if err := json.Unmarshal(data, &r); err != nil {
		return hostReply{}, fmt.Errorf("%w: not JSON of a relay reply", errBadRelay)
	}
	if r.Error != nil && r.Error.Code == "" {
		return hostReply{}, fmt.Errorf("%w: error without a code", errBadRelay)
	}
	for _, id := range r.Unknown {
		if !isID(id) {
			return hostReply{}, fmt.Errorf("%w: bad session id in reply", errBadRelay)
		}
	}
	return r, nil
}
