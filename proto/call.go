package proto

// Call is the "call" WebSocket frame, in both directions: the signalling
// the SFU needs to route a call's media, and nothing more. It names the
// room (a group id and a call id) and carries SDP, whose ICE candidates
// are gathered in full before it is sent (no trickle). Who calls whom,
// ringing, declining and hanging up travel as MLS application messages
// among the group's members, end-to-end encrypted; see docs/PROTOCOL.md,
// "Calls".
//
// The SFU always makes the offers: it sends a new one whenever the tracks
// it forwards to the device change, and the device answers each.
type Call struct {
	GroupID []byte `json:"group_id"`
	// CallID tells apart successive calls of a group; the caller picks it
	// at random. At most MaxCallIDBytes.
	CallID string `json:"call_id"`
	Op     CallOp `json:"op"`
	// SDP is the SFU's offer (CallOffer) or the device's answer
	// (CallAnswer). Media is SFrame ciphertext in the codecs' own payload
	// formats, so no SDP attribute announces it (docs/PROTOCOL.md).
	SDP string `json:"sdp,omitempty"`
	// ICEServers, with the first offer, are the STUN and TURN servers the
	// device should use for this call.
	ICEServers []ICEServer `json:"ice_servers,omitempty"`
	// Reason, with CallEnded, says why in a few words.
	Reason string `json:"reason,omitempty"`
	// URL, with CallMoved, is the base URL of the server node that hosts
	// the room: the device joins there, over a WebSocket of its own to
	// that node.
	URL string `json:"url,omitempty"`
}

// CallOp is what a Call frame does.
type CallOp string

const (
	CallJoin   CallOp = "join"   // device → server: enter the room, publishing audio and video
	CallOffer  CallOp = "offer"  // server → device: an SDP offer to answer
	CallAnswer CallOp = "answer" // device → server: the answer to the last offer
	CallLeave  CallOp = "leave"  // device → server: leave the room
	CallEnded  CallOp = "ended"  // server → device: the device is no longer in the room
	CallMoved  CallOp = "moved"  // server → device: the room is on another node (URL); join there
)

// ICEServer is a STUN or TURN server, as in the WebRTC RTCIceServer.
type ICEServer struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username,omitempty"`
	Credential string   `json:"credential,omitempty"`
}

// Call limits.
const (
	MaxCallIDBytes = 64
	MaxSDPBytes    = 64 << 10
)

// CodeCallFull (409) refuses a join to a room that has as many
// participants as the server allows.
const CodeCallFull Code = "call_full"
