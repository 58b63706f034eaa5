// Package proto is Hush's client–server wire protocol, version 1: the
// HTTP endpoints, their JSON bodies, the WebSocket frames and the stable
// error codes. docs/PROTOCOL.md describes it for people; this file is the
// source of truth for code. Byte fields ([]byte) travel as standard base64
// in JSON.
//
// The server only ever sees what is here: account and device ids, public
// keys and certificates, KeyPackages, MLS messages (ciphertext, or
// PublicMessage handshakes whose content is keys and signatures), group ids,
// rosters of device ids, sizes and times. Never plaintext, never a private
// key.
package proto

import "time"

// Version is the protocol version, sent as the X-Hush-Version header and
// in the WebSocket hello. A request whose X-Hush-Version header names
// another version is refused with CodeVersion; a request without the
// header is taken to be of this version. History:
//
//	1 — first version. (Before release, the GroupInfo endpoint and
//	    Send.GroupInfo were taken out until the store keeps GroupInfo, and
//	    KeyPackageCount.LastResort with them, for the same reason;
//	    Send.ExpiresAt gave way to Send.Timer and Send.Blobs, so that the
//	    server times a disappearing message by its own clock, and
//	    Messages.Time came with them.)
const Version = 1

// Endpoints. {id} and {username} are path parameters.
const (
	PathAccounts        = "/v1/accounts"             // POST: register a user and its first device
	PathUser            = "/v1/users/{username}"     // GET: a user's identity key and devices
	PathDevices         = "/v1/devices"              // POST: add a linked device (authenticated as a device of the same user)
	PathDevice          = "/v1/devices/{id}"         // DELETE: revoke a device
	PathKeyPackages     = "/v1/keypackages"          // POST: upload a batch
	PathKeyPackageCount = "/v1/keypackages/count"    // GET: how many are left
	PathClaim           = "/v1/keypackages/claim"    // POST: claim one KeyPackage per device of some users
	PathGroups          = "/v1/groups"               // POST: create a group
	PathGroupMessages   = "/v1/groups/{id}/messages" // POST: send to a group ({id}: the group id in unpadded base64url)
	PathMessages        = "/v1/messages"             // GET: fetch pending messages
	PathAck             = "/v1/ack"                  // POST: acknowledge delivered messages
	PathBlobs           = "/v1/blobs"                // POST: upload an encrypted attachment (raw body)
	PathBlob            = "/v1/blobs/{id}"           // GET: download one
	PathProvision       = "/v1/provision"            // POST: open a device-linking channel
	PathProvisionBox    = "/v1/provision/{id}"       // GET ?box=new|old / PUT: the channel's two encrypted mailboxes
	PathWebSocket       = "/v1/ws"                   // GET: upgrade to the push WebSocket
	PathHealth          = "/healthz"                 // GET: liveness and store health
	PathMetrics         = "/metrics"                 // GET: Prometheus metrics
	HeaderVersion       = "X-Hush-Version"           //
	HeaderAuthorization = "Authorization"            // "Bearer <device id>.<secret>"
	ContentTypeJSON     = "application/json"         //
	ContentTypeBlob     = "application/octet-stream" //
	WebSocketProtocol   = "hush.v1"                  // the WebSocket subprotocol
	// WebSocketAuthPrefix, followed by the bearer token in unpadded
	// base64url, is a second subprotocol that carries the credentials of
	// clients (browsers) that cannot set the Authorization header on a
	// WebSocket. The server never selects it.
	WebSocketAuthPrefix  = "hush.auth."
	MaxMessageBytes      = 256 << 10           // largest MLS message accepted
	MaxRequestBytes      = 4 << 20             // largest JSON request body or WebSocket frame
	MaxKeyPackageBytes   = 32 << 10            // largest KeyPackage
	MaxTypingBytes       = 4 << 10             // largest typing payload
	MaxProvisionBytes    = 64 << 10            // largest provisioning mailbox content
	MaxClaimTargets      = 100                 // usernames plus device ids in one claim
	MaxAcks              = 1000                // items in one Ack
	MaxBlobBytes         = 100 << 20           // largest attachment blob
	MaxKeyPackageBatch   = 100                 // KeyPackages per upload
	RefillBelow          = 10                  // clients upload more KeyPackages below this count
	MaxRosterSize        = 10000               // devices in one group
	MaxFetch             = 500                 // messages per fetch
	MaxGroupIDBytes      = 64                  //
	MaxClientMsgIDBytes  = 64                  //
	MaxUsernameBytes     = 32                  //
	MaxCredentialBytes   = 4096                //
	MaxIdentityKeyBytes  = 256                 //
	AuthSecretBytes      = 32                  // device secrets are this many random bytes
	ProvisionTTL         = 10 * time.Minute    // a linking channel lives this long
	DefaultRetention     = 30 * 24 * time.Hour // undelivered messages are kept this long
	DeliveryGrace        = 24 * time.Hour      // extra time for a disappearing message to reach an offline device
	MinTimer             = 5 * time.Second     // shortest disappearing-message timer
	MaxTimer             = 90 * 24 * time.Hour // longest disappearing-message timer
	MaxMessageBlobs      = 16                  // blobs one disappearing message may declare
	RateLimitPerSecond   = 50                  // sustained requests per device
	RateLimitBurst       = 200                 //
	IPRateLimitPerSecond = 5                   // sustained unauthenticated requests per IP address
	IPRateLimitBurst     = 20                  //
)

// Kind says what an MLS message is, as far as delivery is concerned.
type Kind string

const (
	KindApplication Kind = "application" // PrivateMessage with application data
	KindProposal    Kind = "proposal"    // a standalone proposal
	KindCommit      Kind = "commit"      // a commit: sequenced, one per epoch
	KindWelcome     Kind = "welcome"     // a Welcome, delivered to one device
)

// Register creates a user and its first device (POST /v1/accounts).
type Register struct {
	Username string `json:"username"`
	// IdentityKey is the user's Ed25519 identity public key.
	IdentityKey []byte `json:"identity_key"`
	// Device describes the first device.
	Device NewDevice `json:"device"`
}

// NewDevice is a device being added to an account.
type NewDevice struct {
	// Secret is the device's authentication secret (AuthSecretBytes random
	// bytes). The server stores only its hash.
	Secret []byte `json:"secret"`
	// Certificate is the device certificate: the identity key's signature
	// over the device's MLS signature key (see client/identity). The server
	// stores it opaquely and hands it out with the user's devices.
	Certificate []byte `json:"certificate"`
}

// Registered answers Register and AddDevice.
type Registered struct {
	UserID   string `json:"user_id"`
	DeviceID string `json:"device_id"`
}

// UserInfo answers GET /v1/users/{username}.
type UserInfo struct {
	UserID      string       `json:"user_id"`
	Username    string       `json:"username"`
	IdentityKey []byte       `json:"identity_key"`
	Devices     []DeviceInfo `json:"devices"`
}

// DeviceInfo is one live device of a user.
type DeviceInfo struct {
	DeviceID    string `json:"device_id"`
	Certificate []byte `json:"certificate"`
}

// UploadKeyPackages is POST /v1/keypackages.
type UploadKeyPackages struct {
	KeyPackages []KeyPackage `json:"key_packages"`
}

// KeyPackage is one MLSMessage(KeyPackage). LastResort must agree with
// the KeyPackage's last_resort extension; a device has at most one
// last-resort KeyPackage, and uploading one replaces the previous.
type KeyPackage struct {
	Data       []byte `json:"data"`
	LastResort bool   `json:"last_resort,omitempty"`
}

// KeyPackageCount answers GET /v1/keypackages/count and uploads. Count is
// the number of ordinary (not last-resort) KeyPackages left; clients
// upload more when it drops below RefillBelow.
type KeyPackageCount struct {
	Count       int `json:"count"`
	RefillBelow int `json:"refill_below"`
}

// Claim is POST /v1/keypackages/claim: one KeyPackage for each live
// device of each user (or of the listed devices).
type Claim struct {
	Usernames []string `json:"usernames,omitempty"`
	DeviceIDs []string `json:"device_ids,omitempty"`
}

// Claimed answers Claim.
type Claimed struct {
	KeyPackages []ClaimedKeyPackage `json:"key_packages"`
}

// ClaimedKeyPackage is one claimed KeyPackage and whose it is.
type ClaimedKeyPackage struct {
	UserID   string `json:"user_id"`
	DeviceID string `json:"device_id"`
	Data     []byte `json:"data"`
}

// CreateGroup is POST /v1/groups: the creating device registers a group
// id, at epoch 0, with itself as the only device on the roster.
type CreateGroup struct {
	GroupID []byte `json:"group_id"`
}

// Send is POST /v1/groups/{id}/messages, and the "send" WebSocket frame.
type Send struct {
	// ClientMsgID makes the send idempotent: a retry with the same id
	// returns the first result and stores nothing twice.
	ClientMsgID string `json:"client_msg_id"`
	Kind        Kind   `json:"kind"`
	// Epoch is the MLS epoch the message was made in. For a commit it
	// must equal the group's current epoch, or the server answers
	// CodeEpochConflict.
	Epoch   uint64 `json:"epoch"`
	Payload []byte `json:"payload"` // an MLSMessage
	// Roster is, for a commit, the device ids on the roster after it.
	Roster []string `json:"roster,omitempty"`
	// Welcomes are delivered with a commit that adds devices; every
	// device they list must be on the new roster.
	Welcomes []Welcome `json:"welcomes,omitempty"`
	// Timer, in seconds, makes an application message disappearing: the
	// server deletes it as soon as every recipient device has acknowledged
	// it, and at the latest Timer seconds plus its delivery grace
	// (DeliveryGrace by default) after accepting it. 0, or from MinTimer
	// to MaxTimer. The server learns the timer, never the content.
	Timer uint32 `json:"timer,omitempty"`
	// Blobs lists the attachment blobs, uploaded by the sending device,
	// that a disappearing message refers to (at most MaxMessageBlobs):
	// they are deleted with it.
	Blobs []string `json:"blobs,omitempty"`
}

// Welcome is an MLSMessage(Welcome) for the listed devices.
type Welcome struct {
	DeviceIDs []string `json:"device_ids"`
	Payload   []byte   `json:"payload"`
}

// Sent answers Send.
type Sent struct {
	Seq       uint64    `json:"seq"`
	Time      time.Time `json:"time"`
	Duplicate bool      `json:"duplicate,omitempty"`
}

// Envelope is one message delivered to a device: from a group's log
// (GroupID and Seq set) or from its own inbox (Welcomes: Inbox set).
type Envelope struct {
	GroupID []byte     `json:"group_id,omitempty"`
	Seq     uint64     `json:"seq"`
	Inbox   bool       `json:"inbox,omitempty"`
	Sender  string     `json:"sender"` // device id
	Kind    Kind       `json:"kind"`
	Epoch   uint64     `json:"epoch"`
	Payload []byte     `json:"payload"`
	Time    time.Time  `json:"time"` // server time of acceptance
	Expires *time.Time `json:"expires_at,omitempty"`
}

// Messages answers GET /v1/messages.
type Messages struct {
	Messages []Envelope `json:"messages"`
	More     bool       `json:"more"`
	// Time is the server's clock when it answered: with the envelopes'
	// times, it tells a device how old a message is without trusting its
	// own clock.
	Time time.Time `json:"time"`
}

// Ack is POST /v1/ack and the "ack" WebSocket frame: the device has
// processed (and durably stored) everything up to Seq in each log.
type Ack struct {
	Acks []AckItem `json:"acks"`
}

// AckItem acknowledges one log up to and including Seq.
type AckItem struct {
	GroupID []byte `json:"group_id,omitempty"`
	Inbox   bool   `json:"inbox,omitempty"`
	Seq     uint64 `json:"seq"`
}

// BlobRef answers a blob upload.
type BlobRef struct {
	ID   string `json:"id"`
	Size int64  `json:"size"`
}

// Provision opens a device-linking channel (POST /v1/provision), made by
// the existing device. The channel id is part of the one-time code the
// existing device shows; the rest of the code is a secret that never
// reaches the server and keys the two mailboxes' encryption.
type Provision struct{}

// ProvisionChannel answers Provision.
type ProvisionChannel struct {
	ID      string    `json:"id"`
	Expires time.Time `json:"expires"`
}

// ProvisionBox is the content of a mailbox of a linking channel: "new"
// (written by the new device, unauthenticated: the channel id is the
// capability) or "old" (written by the device that opened the channel,
// authenticated). Data is sealed with a key derived from the code's
// secret. Each box is written once; reading a box that is not yet written
// returns it with no Data.
type ProvisionBox struct {
	Box  string `json:"box"` // "new" or "old"
	Data []byte `json:"data"`
}

// Frame is one WebSocket message, in either direction, as JSON text.
type Frame struct {
	Type string `json:"type"` // see the Frame* constants
	// ID correlates a request frame with its reply.
	ID      uint64     `json:"id,omitempty"`
	Hello   *Hello     `json:"hello,omitempty"`
	Send    *SendFrame `json:"send,omitempty"`
	Sent    *Sent      `json:"sent,omitempty"`
	Message *Envelope  `json:"message,omitempty"`
	Ack     *Ack       `json:"ack,omitempty"`
	Typing  *Typing    `json:"typing,omitempty"`
	Call    *Call      `json:"call,omitempty"`
	Error   *Error     `json:"error,omitempty"`
	// Frames are the frames a batch frame carries, in order; never a
	// batch themselves.
	Frames []Frame `json:"frames,omitempty"`
}

// Frame types.
const (
	FrameHello   = "hello"   // server → client, first frame
	FrameSend    = "send"    // client → server
	FrameSent    = "sent"    // server → client, answers send
	FrameMessage = "message" // server → client: a new message
	FrameAck     = "ack"     // client → server
	FrameTyping  = "typing"  // client → server → online group members; never stored
	FrameCall    = "call"    // both ways: call signalling for the SFU (see Call)
	FrameError   = "error"   // server → client, answers a request
	FramePing    = "ping"
	FramePong    = "pong"
	// FrameBatch (server → client) carries several server frames (message
	// and typing) in one WebSocket message, in order; the server sends it
	// only to clients that connected with WebSocketBatchQuery, and keeps
	// each within MaxBatchBytes.
	FrameBatch = "batch"
)

// WebSocketBatchQuery, appended to PathWebSocket, asks the server to
// push batch frames: "/v1/ws?batch=1".
const WebSocketBatchQuery = "batch=1"

// MaxBatchBytes bounds a batch frame (and any other frame the server
// sends): a frame with one largest MLS message, base64 in JSON, fits.
const MaxBatchBytes = 2*MaxMessageBytes + 64<<10

// Hello opens a WebSocket session.
type Hello struct {
	Version  int    `json:"version"`
	DeviceID string `json:"device_id"`
}

// SendFrame is a Send to a group over the WebSocket.
type SendFrame struct {
	GroupID []byte `json:"group_id"`
	Send
}

// Typing is an ephemeral, end-to-end encrypted signal (typing
// indicators): the payload is an MLS application message that the server
// relays to the group's online devices and never stores.
type Typing struct {
	GroupID []byte `json:"group_id"`
	Payload []byte `json:"payload"`
	Sender  string `json:"sender,omitempty"`
}

// Error is the body of every error response and error frame.
type Error struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
	// Epoch is set with CodeEpochConflict: the group's current epoch.
	Epoch *uint64 `json:"epoch,omitempty"`
}

func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }

// Code is a stable error code.
type Code string

// Error codes, with the HTTP status each travels with.
const (
	CodeBadRequest    Code = "bad_request"         // 400: malformed JSON, missing or invalid field
	CodeTooLarge      Code = "too_large"           // 413: body or field over its limit
	CodeUnauthorized  Code = "unauthorized"        // 401: missing or wrong device credentials
	CodeForbidden     Code = "forbidden"           // 403: not allowed (e.g. not on the group's roster)
	CodeNotFound      Code = "not_found"           // 404
	CodeMethod        Code = "method_not_allowed"  // 405
	CodeConflict      Code = "conflict"            // 409: e.g. a provisioning box already written
	CodeUsernameTaken Code = "username_taken"      // 409
	CodeGroupExists   Code = "group_exists"        // 409
	CodeEpochConflict Code = "epoch_conflict"      // 409: another commit won this epoch; catch up and retry
	CodeNoKeyPackage  Code = "no_key_package"      // 404: a device has no KeyPackage left
	CodeRateLimited   Code = "rate_limited"        // 429
	CodeVersion       Code = "unsupported_version" // 400
	CodeInternal      Code = "internal"            // 500
	CodeUnavailable   Code = "unavailable"         // 503: shutting down
)
