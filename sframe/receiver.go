package sframe

import (
	"errors"
	"fmt"
	"sync"
)

// ErrUnknownKey is returned for a frame whose KID has no key. The RFC lets a
// receiver buffer such a frame and retry once the key arrives
// (RFC 9605 §4.4.4).
var ErrUnknownKey = errors.New("sframe: unknown key ID")

// Receiver decrypts frames, the receiving half of an SFrame context
// (RFC 9605 §4.4.1): a map from KID to the key derived for it, each with its
// own replay window.
//
// A Receiver is safe for concurrent use.
type Receiver struct {
	suite  CipherSuite
	replay int // replay window width; 0 disables

	mu   sync.RWMutex
	keys map[uint64]*recvKey
}

// recvKey is the receiving state of one KID.
type recvKey struct {
	mu     sync.Mutex
	key    *frameKey
	replay replayWindow
}

// NewReceiver returns a Receiver for suite with no keys.
//
// replayWindow sets the width, in CTR values, of each KID's replay window:
// 0 selects [DefaultReplayWindow], a negative value disables replay
// protection, and the width may be at most [MaxReplayWindow]. See "Security
// considerations" in the package documentation.
func NewReceiver(suite CipherSuite, replayWindow int) (*Receiver, error) {
	if suite.params() == nil {
		return nil, ErrUnsupportedSuite
	}
	n, err := replayWindowSize(replayWindow)
	if err != nil {
		return nil, err
	}
	return &Receiver{suite: suite, replay: n, keys: make(map[uint64]*recvKey)}, nil
}

// AddKey derives the key for kid from baseKey and adds it. A key kid
// already had is erased and replaced, and the replay window starts afresh.
// The Receiver keeps no reference to baseKey.
func (r *Receiver) AddKey(kid uint64, baseKey []byte) error {
	k, err := newRecvKey(r.suite, kid, baseKey, r.replay)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if old := r.keys[kid]; old != nil {
		old.erase()
	}
	r.keys[kid] = k
	return nil
}

// RemoveKey removes and erases the key for kid, if there is one.
func (r *Receiver) RemoveKey(kid uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if k := r.keys[kid]; k != nil {
		k.erase()
		delete(r.keys, kid)
	}
}

// Decrypt authenticates and decrypts the SFrame ciphertext frame, with the
// metadata the sender passed to [Sender.Encrypt], appends the plaintext to
// dst and returns the result.
//
// It returns [ErrInvalidHeader] for a malformed header, [ErrUnknownKey] if
// the frame's KID has no key, [ErrReplay] if the replay window rejects its
// CTR, and [ErrAuth] if it fails authentication. A frame that fails is not
// recorded in the replay window.
//
// With room in dst for len(frame) more bytes, Decrypt does not allocate
// under the GCM suites, and allocates once under the AES-CTR-HMAC suites.
// dst must not overlap frame.
func (r *Receiver) Decrypt(dst, metadata, frame []byte) ([]byte, error) {
	h, n, err := ParseHeader(frame)
	if err != nil {
		return nil, err
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	k := r.keys[h.KID]
	if k == nil {
		return nil, ErrUnknownKey
	}
	return k.open(dst, h, n, metadata, frame)
}

// String describes the receiver without revealing key material.
func (r *Receiver) String() string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return fmt.Sprintf("sframe.Receiver(%v, %d keys=redacted)", r.suite, len(r.keys))
}

// Format makes every fmt verb print [Receiver.String], so that no verb
// dumps key material by reflection.
func (r *Receiver) Format(f fmt.State, _ rune) { fmt.Fprint(f, r.String()) }

func newRecvKey(suite CipherSuite, kid uint64, baseKey []byte, replay int) (*recvKey, error) {
	k, err := newFrameKey(suite, kid, baseKey)
	if err != nil {
		return nil, err
	}
	return &recvKey{key: k, replay: newReplayWindow(replay)}, nil
}

// open decrypts a frame for this KID, checking and then updating its replay
// window. The caller holds a read lock on the map k is in, so k is not erased
// meanwhile.
func (k *recvKey) open(dst []byte, h Header, n int, metadata, frame []byte) ([]byte, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if !k.replay.check(h.CTR) {
		return nil, ErrReplay
	}
	out, err := k.key.open(dst, h, n, metadata, frame)
	if err != nil {
		return nil, err
	}
	k.replay.accept(h.CTR)
	return out, nil
}

// erase clears the key. The caller holds the write lock on the map k is in.
func (k *recvKey) erase() {
	k.key.erase()
	k.key = nil
}
