package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Sentinel errors. Backends wrap them with context; test with errors.Is.
// Error strings never contain secrets, payloads or key material.
var (
	// ErrNotFound: the user, device, group or blob does not exist (or the
	// device is revoked, where a live device is required).
	ErrNotFound = errors.New("store: not found")
	// ErrNotMember: the device is not on the group's roster.
	ErrNotMember = errors.New("store: device is not a member of the group")
	// ErrEpochConflict: a commit was built on a stale epoch. The concrete
	// error is an *EpochConflictError carrying the current epoch.
	ErrEpochConflict = errors.New("store: epoch conflict")
	// ErrDuplicateUsername: the canonical username is taken.
	ErrDuplicateUsername = errors.New("store: username already taken")
	// ErrNoKeyPackage: none of the requested devices has a KeyPackage.
	ErrNoKeyPackage = errors.New("store: no KeyPackage available")
	// ErrExists: a group or blob with that id already exists.
	ErrExists = errors.New("store: already exists")
	// ErrInvalid: an argument is malformed (bad username, empty client
	// message id, ack beyond the end of the log, ...).
	ErrInvalid = errors.New("store: invalid argument")
	// ErrClosed: the store has been closed.
	ErrClosed = errors.New("store: closed")
)

// EpochConflictError is returned by AppendCommit when the group's epoch is
// not the expected one. errors.Is(err, ErrEpochConflict) reports true.
type EpochConflictError struct {
	Current uint64 // the group's epoch at the time of the attempt
}

func (e *EpochConflictError) Error() string {
	return fmt.Sprintf("store: epoch conflict (current epoch %d)", e.Current)
}

// Is makes errors.Is(err, ErrEpochConflict) true.
func (e *EpochConflictError) Is(target error) bool { return target == ErrEpochConflict }

// User is an account. The identity key is opaque to the server.
type User struct {
	ID          UserID
	Username    string // canonical form, see NormalizeUsername
	IdentityKey []byte
	CreatedAt   time.Time
}

// Device is one installation of a user's client.
type Device struct {
	ID     DeviceID
	UserID UserID
	// AuthHash is the hash of the device's authentication secret. The server
	// layer computes and compares it; the store only keeps the bytes.
	AuthHash []byte
	// Credential is the device's signature key / MLS credential, opaque.
	Credential []byte
	CreatedAt  time.Time
	LastSeen   time.Time
	Revoked    bool
}

// KeyPackage is an MLS KeyPackage uploaded by a device for others to claim
// when adding it to a group.
type KeyPackage struct {
	// Ref is the KeyPackageRef (a hash of the KeyPackage); unique. Uploading
	// a Ref that is already stored is a no-op.
	Ref  []byte
	Data []byte
	// LastResort marks the device's fallback KeyPackage, handed out (and
	// kept) when the device's ordinary KeyPackages are used up. A device has
	// at most one; uploading a new one replaces the old.
	LastResort bool
}

// ClaimedKeyPackage is a KeyPackage handed out by a claim.
type ClaimedKeyPackage struct {
	Device DeviceID
	KeyPackage
}

// Group is a group's routing state.
type Group struct {
	ID      GroupID
	Epoch   uint64
	LastSeq uint64     // sequence number of the latest message, 0 if none
	Roster  []DeviceID // devices that receive the group's messages, sorted
}

// Kind says what an MLS message is. The server routes on it only to tell
// commits (which change the epoch) from the rest.
type Kind uint8

// Message kinds.
const (
	KindApplication Kind = 1 + iota
	KindProposal
	KindCommit
	KindWelcome
)

// Message is an entry in a group's log, stored once for all recipients.
type Message struct {
	GroupID GroupID
	// Seq is assigned by the store: strictly increasing per group.
	Seq    uint64
	Sender DeviceID
	// ClientMsgID is the sender's idempotency key (1 to MaxClientMsgIDLen
	// bytes), unique per sender device. Appending the same (Sender,
	// ClientMsgID) again returns the original sequence number.
	ClientMsgID string
	Kind        Kind
	Epoch       uint64
	Payload     []byte
	// SentAt is assigned by the store (server time).
	SentAt time.Time
	// ExpiresAt makes the message disappearing: it is deleted at ExpiresAt,
	// or as soon as every recipient has acknowledged it, whichever is first.
	ExpiresAt *time.Time
}

// MaxClientMsgIDLen is the longest ClientMsgID the store accepts.
const MaxClientMsgIDLen = 64

// Direct is a message addressed to one device (typically an MLS Welcome),
// kept in the device's inbox until the device acknowledges it.
type Direct struct {
	To DeviceID
	// Seq is assigned by the store: strictly increasing per recipient.
	Seq    uint64
	Sender DeviceID
	// ClientMsgID is the idempotency key, unique per (To, Sender): a
	// sender may reuse one key for all the Welcomes of a single commit.
	ClientMsgID string
	GroupID     GroupID // optional: the group a Welcome is for
	Kind        Kind
	Payload     []byte
	SentAt      time.Time // assigned by the store
	ExpiresAt   *time.Time
}

// Appended is the outcome of an append.
type Appended struct {
	Seq    uint64
	SentAt time.Time
	// Duplicate reports that the idempotency key was already used: Seq and
	// SentAt are the original message's and nothing new was stored.
	Duplicate bool
}

// Pending is what Fetch returns: the device's direct mail first (a Welcome
// must be processed before the group's messages), then group messages after
// the device's cursors, ordered by group and then sequence number.
type Pending struct {
	Direct   []Direct
	Messages []Message
}

// Blob is an attachment's metadata; its bytes live in a BlobDir.
type Blob struct {
	ID        BlobID
	Uploader  DeviceID
	Size      int64
	Digest    []byte // optional, e.g. SHA-256 of the (encrypted) bytes
	CreatedAt time.Time
	ExpiresAt *time.Time
}

// PurgeResult reports what Purge deleted.
type PurgeResult struct {
	Messages int64 // group messages
	Direct   int64 // direct messages
	// Blobs lists the blobs whose metadata was deleted; the caller deletes
	// their bytes (BlobDir.Delete).
	Blobs []BlobID
}

// DefaultRetention is how long messages and blobs are kept, at most, when
// the caller has no policy of its own.
const DefaultRetention = 30 * 24 * time.Hour

// DefaultFetchLimit is the limit Fetch uses when given limit <= 0, and
// MaxFetchLimit caps it.
const (
	DefaultFetchLimit = 100
	MaxFetchLimit     = 1000
)

// Users stores accounts.
type Users interface {
	// CreateUser creates a user with a new random id. The username is
	// normalized (NormalizeUsername); ErrInvalid if it is malformed,
	// ErrDuplicateUsername if it is taken.
	CreateUser(ctx context.Context, username string, identityKey []byte) (User, error)
	User(ctx context.Context, id UserID) (User, error)
	// UserByName looks a user up by username, case-insensitively.
	UserByName(ctx context.Context, username string) (User, error)
}

// Devices stores devices.
type Devices interface {
	// CreateDevice creates a device for user with a new random id.
	// ErrNotFound if the user does not exist.
	CreateDevice(ctx context.Context, user UserID, authHash, credential []byte) (Device, error)
	Device(ctx context.Context, id DeviceID) (Device, error)
	// UserDevices lists a user's devices, revoked ones included, oldest
	// first.
	UserDevices(ctx context.Context, user UserID) ([]Device, error)
	// TouchDevice sets the device's last-seen time.
	TouchDevice(ctx context.Context, id DeviceID, at time.Time) error
	// RevokeDevice marks the device revoked and deletes its KeyPackages so
	// that nobody can add it to a group any more. Idempotent.
	RevokeDevice(ctx context.Context, id DeviceID) error
}

// KeyPackages stores MLS KeyPackages.
type KeyPackages interface {
	// UploadKeyPackages stores KeyPackages for a live device (ErrNotFound
	// otherwise).
	UploadKeyPackages(ctx context.Context, device DeviceID, kps []KeyPackage) error
	// ClaimKeyPackages atomically claims one KeyPackage for each listed
	// device: an ordinary one, which is deleted so that nobody else can
	// claim it, or else the device's last-resort one, which is kept.
	// Devices without any KeyPackage (or revoked, or unknown) are left out
	// of the result; ErrNoKeyPackage if that leaves nothing.
	ClaimKeyPackages(ctx context.Context, devices []DeviceID) ([]ClaimedKeyPackage, error)
	// ClaimUserKeyPackages is ClaimKeyPackages for all of a user's live
	// devices.
	ClaimUserKeyPackages(ctx context.Context, user UserID) ([]ClaimedKeyPackage, error)
	// CountKeyPackages counts the device's ordinary (not last-resort)
	// KeyPackages, so that its client knows when to upload more.
	CountKeyPackages(ctx context.Context, device DeviceID) (int, error)
}

// Groups stores groups, their logs and their members' cursors.
//
// Every member of a group has a delivery cursor: the sequence number up to
// which it has acknowledged the log. A device added to the roster starts
// at the sequence number of the commit that added it; it never sees the
// log before it joined (it could not decrypt it anyway).
type Groups interface {
	// CreateGroup creates a group at the given epoch (0 for a new MLS group)
	// whose roster is roster plus creator. ErrExists if the id is taken,
	// ErrNotFound if a roster device does not exist.
	CreateGroup(ctx context.Context, id GroupID, creator DeviceID, epoch uint64, roster []DeviceID) error
	Group(ctx context.Context, id GroupID) (Group, error)

	// AppendMessage appends m to its group's log, assigning the next
	// sequence number and the server time. m.Seq and m.SentAt are ignored.
	// A repeated (Sender, ClientMsgID) returns the original Seq with
	// Duplicate set. ErrNotMember if the sender is not on the roster.
	// The call returns once the message is durable.
	AppendMessage(ctx context.Context, m Message) (Appended, error)

	// AppendCommit appends an MLS commit and advances the epoch, in one
	// transaction: if the group's epoch is not expectedEpoch it stores
	// nothing and returns an *EpochConflictError; otherwise it appends m,
	// sets the epoch to expectedEpoch+1 and replaces the roster with
	// newRoster. Of several commits competing for one epoch, on any number
	// of server nodes, exactly one wins. Duplicates are handled as in
	// AppendMessage, before the epoch check, so a retried commit that won
	// reports Duplicate rather than a conflict.
	AppendCommit(ctx context.Context, m Message, expectedEpoch uint64, newRoster []DeviceID) (Appended, error)

	// AppendDirect appends d to the inbox of device d.To (ErrNotFound if it
	// does not exist or is revoked). Duplicates are handled as in
	// AppendMessage, for as long as the original is in the inbox.
	AppendDirect(ctx context.Context, d Direct) (Appended, error)

	// Fetch returns up to limit pending items for the device: its direct
	// mail, then messages of its groups after its cursors, leaving out the
	// device's own messages and expired ones. limit <= 0 means
	// DefaultFetchLimit; it is capped at MaxFetchLimit.
	Fetch(ctx context.Context, device DeviceID, limit int) (Pending, error)

	// FetchGroup returns, in order, up to limit of the group's messages
	// with a sequence number above after that Fetch would return to the
	// device: past its cursor, not its own, not expired. It returns none if
	// the device is not on the roster. limit is as in Fetch. It lets a
	// connection holder read only what it has not pushed yet, rather than
	// everything unacknowledged.
	FetchGroup(ctx context.Context, device DeviceID, group GroupID, after uint64, limit int) ([]Message, error)

	// Ack moves the device's cursor in the group forward to seq. Acks never
	// move a cursor backwards (an older seq is a no-op). ErrNotMember if the
	// device is not on the roster, ErrInvalid if seq is past the end of the
	// log. Disappearing messages that every member has now acknowledged are
	// deleted at once.
	Ack(ctx context.Context, device DeviceID, group GroupID, seq uint64) error

	// AckDirect deletes the device's direct mail up to and including seq.
	AckDirect(ctx context.Context, device DeviceID, seq uint64) error
}

// Blobs stores attachment metadata. The bytes are kept by a BlobDir.
type Blobs interface {
	// CreateBlob records a blob; CreatedAt is set by the store. ErrExists if
	// the id is taken.
	CreateBlob(ctx context.Context, b Blob) (Blob, error)
	Blob(ctx context.Context, id BlobID) (Blob, error)
	// ExpireBlobs ties blobs to the disappearing message that their
	// uploader appended with clientMsgID: each is deleted with the message
	// (by PurgeExpired, once the message is gone) and at expiresAt at the
	// latest, if that is sooner than its own ExpiresAt. Call it after the
	// message is appended. Blobs uploaded by another device, or unknown,
	// are left alone.
	ExpireBlobs(ctx context.Context, uploader DeviceID, clientMsgID string, ids []BlobID, expiresAt time.Time) error
}

// Store is the delivery service's storage. Implementations are safe for
// concurrent use.
type Store interface {
	Users
	Devices
	KeyPackages
	Groups
	Blobs

	// Purge deletes, as of now: messages, direct mail and blobs whose
	// ExpiresAt has passed; group messages every recipient has acknowledged;
	// and anything created more than retention ago. It returns what it
	// deleted; the caller removes the listed blobs' bytes.
	Purge(ctx context.Context, now time.Time, retention time.Duration) (PurgeResult, error)

	// PurgeExpired deletes, as of now, what disappearing messages leave
	// behind: messages and direct mail whose ExpiresAt has passed, and
	// blobs tied to a message (ExpireBlobs) that is gone or whose
	// ExpiresAt has passed. It reads only what has an expiry, so it is
	// cheap enough to run every second; Purge does the rest.
	PurgeExpired(ctx context.Context, now time.Time) (PurgeResult, error)

	// Close waits for writes under way and releases the store.
	Close() error
}

// OrderedAppender is implemented by stores that can split AppendMessage in
// two: queueing the append, in the caller's order, and waiting for it to be
// durable. A caller that queues several appends one after another, each
// after the previous QueueMessage has returned, gets them appended in that
// order (among themselves; others' appends may come between), while none of
// them waits for the others' commits. This lets a server take the next
// frame of a connection as soon as the previous send is queued.
//
// Stores that do not implement it are used through AppendMessage, one
// append at a time.
type OrderedAppender interface {
	// QueueMessage checks m and queues its append; it returns once the
	// append is queued, not once it is durable. wait blocks until the
	// append is durable (or failed) and returns what AppendMessage would
	// have; it must be called exactly once. ctx covers the whole append:
	// if it ends before the store starts the write, the write is skipped
	// and wait returns ctx.Err(). An error from QueueMessage itself means
	// nothing was queued.
	QueueMessage(ctx context.Context, m Message) (wait func() (Appended, error), err error)
}
