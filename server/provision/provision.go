// Package provision keeps device-linking channels: short-lived pairs of
// mailboxes through which an existing device and a new one exchange sealed
// bytes (the new device's keys out, the account's certificate and the
// device secret back), without the server being able to read them.
//
// The existing device opens a channel and shows the new device a one-time
// code: the channel id plus a secret that never reaches the server and
// keys the mailboxes' encryption. The channel id is 128 random bits: it is
// the capability that lets the not-yet-authenticated new device write its
// box. Each box is written once, and a channel lives proto.ProvisionTTL.
//
// Channels live in memory: a restart loses the linkings in progress (they
// are retried), and in a multi-node deployment the channel's requests must
// reach the node that opened it.
//
// # Security considerations
//
// Boxes are opaque and sealed by the clients. The server bounds the number
// of open channels and each box's size; the HTTP layer rate-limits the
// unauthenticated requests per IP address, which with 128-bit ids makes
// guessing a channel hopeless.
package provision

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"sync"
	"time"

	"github.com/hush-chat/hush/proto"
	"github.com/hush-chat/hush/store"
)

// MaxChannels bounds the number of open channels.
const MaxChannels = 100_000

var (
	// ErrNotFound: no such channel, or it expired.
	ErrNotFound = errors.New("provision: no such channel")
	// ErrWritten: the box was already written.
	ErrWritten = errors.New("provision: box already written")
	// ErrForbidden: only the device that opened the channel writes "old".
	ErrForbidden = errors.New("provision: only the opening device writes the old box")
	// ErrFull: too many channels are open.
	ErrFull = errors.New("provision: too many open channels")
	// ErrBadBox: the box is neither "new" nor "old".
	ErrBadBox = errors.New(`provision: box must be "new" or "old"`)
)

type channel struct {
	opener   store.DeviceID
	expires  time.Time
	new, old []byte
}

// Channels is the set of open linking channels. It is safe for concurrent
// use.
type Channels struct {
	mu  sync.Mutex
	ttl time.Duration
	now func() time.Time
	m   map[string]*channel
}

// New returns an empty set of channels that live ttl.
func New(ttl time.Duration) *Channels {
	return &Channels{ttl: ttl, now: time.Now, m: make(map[string]*channel)}
}

// Open opens a channel for the device opener.
func (c *Channels) Open(opener store.DeviceID) (proto.ProvisionChannel, error) {
	var b [16]byte
	rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= MaxChannels {
		c.sweepLocked(now)
		if len(c.m) >= MaxChannels {
			return proto.ProvisionChannel{}, ErrFull
		}
	}
	ch := &channel{opener: opener, expires: now.Add(c.ttl)}
	c.m[id] = ch
	return proto.ProvisionChannel{ID: id, Expires: ch.expires}, nil
}

// get returns the live channel id; c.mu is held.
func (c *Channels) get(id string) (*channel, error) {
	ch := c.m[id]
	if ch == nil || !c.now().Before(ch.expires) {
		return nil, ErrNotFound
	}
	return ch, nil
}

// Get returns a box; Data is nil while it is unwritten.
func (c *Channels) Get(id, box string) (proto.ProvisionBox, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch, err := c.get(id)
	if err != nil {
		return proto.ProvisionBox{}, err
	}
	switch box {
	case "new":
		return proto.ProvisionBox{Box: box, Data: ch.new}, nil
	case "old":
		return proto.ProvisionBox{Box: box, Data: ch.old}, nil
	}
	return proto.ProvisionBox{}, ErrBadBox
}

// Put writes a box once. writer is the authenticated device, or nil for
// an unauthenticated request: only the opener may write "old".
func (c *Channels) Put(id string, writer *store.DeviceID, b proto.ProvisionBox) error {
	if b.Box != "new" && b.Box != "old" {
		return ErrBadBox
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	ch, err := c.get(id)
	if err != nil {
		return err
	}
	dst := &ch.new
	if b.Box == "old" {
		if writer == nil || *writer != ch.opener {
			return ErrForbidden
		}
		dst = &ch.old
	}
	if *dst != nil {
		return ErrWritten
	}
	*dst = b.Data
	return nil
}

// Sweep deletes expired channels.
func (c *Channels) Sweep() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sweepLocked(c.now())
}

func (c *Channels) sweepLocked(now time.Time) {
	for id, ch := range c.m {
		if !now.Before(ch.expires) {
			delete(c.m, id)
		}
	}
}
