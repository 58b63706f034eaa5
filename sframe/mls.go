package sframe

import (
	"errors"
	"fmt"
	"math/bits"
	"sync"
)

// Exporter is the MLS-Exporter of one MLS epoch (RFC 9420 §8.5): it derives
// length secret bytes for label and context from that epoch's
// exporter_secret. Taking a function keeps this package independent of the
// MLS implementation.
//
// The returned slice must be freshly allocated: MLSKeys keeps it as the
// epoch's base key and clears it when the epoch is dropped.
type Exporter func(label string, context []byte, length int) ([]byte, error)

// mlsExporterLabel is the exporter label of RFC 9605 §5.2.
const mlsExporterLabel = "SFrame 1.0 Base Key"

const (
	// DefaultEpochBits is the number of low-order epoch bits carried in a
	// KID (E in RFC 9605 §5.2) when MLSConfig.EpochBits is 0.
	DefaultEpochBits = 4

	// DefaultEpochs is how many epochs, the current one included, MLSKeys
	// keeps for decryption when MLSConfig.Epochs is 0.
	DefaultEpochs = 4
)

// ErrClosed is returned by the methods of an [MLSKeys] after Close.
var ErrClosed = errors.New("sframe: keys closed")

// MLSConfig configures [MLSKeys]. Every member of the group must agree on
// Suite and EpochBits.
type MLSConfig struct {
	// Suite is the cipher suite for every frame.
	Suite CipherSuite

	// LeafIndex is this member's leaf index in the MLS group, which stays
	// the same for as long as the member is in the group.
	LeafIndex uint32

	// ContextID is the context value of the KIDs this member sends with.
	// Each of a member's uncoordinated outgoing streams needs its own
	// ContextID and its own MLSKeys; 0 gives the shortest header.
	ContextID uint64

	// EpochBits is E: how many low-order bits of the epoch a KID carries,
	// from 1 to 32. 0 selects DefaultEpochBits.
	EpochBits int

	// Epochs is how many epochs, the current one included, stay available
	// for decrypting frames still in flight after a rekey. It is at most
	// 2^EpochBits. 0 selects DefaultEpochs.
	Epochs int

	// ReplayWindow is the width of each KID's replay window, as for
	// [NewReceiver]: 0 selects DefaultReplayWindow and a negative value
	// disables replay protection.
	ReplayWindow int
}

// MLSKeys derives SFrame keys from an MLS group as in RFC 9605 §5.2. It
// encrypts this member's frames with the current epoch's key and decrypts
// other members' frames from the last few epochs.
//
// For each epoch the group shares one base key,
//
//	base_key = MLS-Exporter("SFrame 1.0 Base Key", "", AEAD.Nk)
//
// and each member sends with its own KIDs,
//
//	KID = (context << (S + E)) + (sender_index << E) + (epoch % (1 << E))
//
// where S is the smallest number of bits with group_size <= 1 << S. Since
// the key and salt are derived from the base key and the KID
// (RFC 9605 §4.4.2), every sender has its own key. A receiver derives the key
// for a KID the first time it sees a frame that authenticates under it.
//
// An MLSKeys is safe for concurrent use.
type MLSKeys struct {
	suite     CipherSuite
	leafIndex uint32
	contextID uint64
	epochBits uint
	epochs    uint64
	replay    int

	mu      sync.RWMutex
	closed  bool
	sender  *Sender     // the current epoch's
	windows []*mlsEpoch // newest first
}

// mlsEpoch is the receiving state of one epoch.
type mlsEpoch struct {
	epoch     uint64
	indexBits uint // S
	baseKey   []byte
	keys      map[uint64]*recvKey
}

// NewMLSKeys returns MLSKeys for the given MLS epoch; see
// [MLSKeys.SetEpoch] for the arguments.
func NewMLSKeys(cfg MLSConfig, epoch uint64, groupSize uint32, export Exporter) (*MLSKeys, error) {
	if cfg.Suite.params() == nil {
		return nil, ErrUnsupportedSuite
	}
	if cfg.EpochBits == 0 {
		cfg.EpochBits = DefaultEpochBits
	}
	if cfg.Epochs == 0 {
		cfg.Epochs = DefaultEpochs
	}
	if cfg.EpochBits < 1 || cfg.EpochBits > 32 {
		return nil, fmt.Errorf("sframe: EpochBits %d outside 1 to 32", cfg.EpochBits)
	}
	// RFC 9605 §5.2: no more than 2^E epochs can be active at a time.
	if cfg.Epochs < 1 || uint64(cfg.Epochs) > 1<<cfg.EpochBits {
		return nil, fmt.Errorf("sframe: Epochs %d outside 1 to 2^EpochBits", cfg.Epochs)
	}
	replay, err := replayWindowSize(cfg.ReplayWindow)
	if err != nil {
		return nil, err
	}
	m := &MLSKeys{
		suite:     cfg.Suite,
		leafIndex: cfg.LeafIndex,
		contextID: cfg.ContextID,
		epochBits: uint(cfg.EpochBits),
		epochs:    uint64(cfg.Epochs),
		replay:    replay,
	}
	if err := m.SetEpoch(epoch, groupSize, export); err != nil {
		return nil, err
	}
	return m, nil
}

// SetEpoch moves to a new MLS epoch, which must be newer than the current
// one. groupSize is the number of leaves in the epoch's ratchet tree, so
// that every leaf index is below it, and export is the epoch's
// MLS-Exporter.
//
// From then on Encrypt uses the new epoch's key, starting again at CTR 0.
// Decrypt keeps accepting frames from the epochs less than Epochs behind the
// new one; the keys of older epochs are erased.
func (m *MLSKeys) SetEpoch(epoch uint64, groupSize uint32, export Exporter) error {
	if groupSize == 0 || m.leafIndex >= groupSize {
		return fmt.Errorf("sframe: leaf index %d outside a group of %d", m.leafIndex, groupSize)
	}
	indexBits := uint(bits.Len32(groupSize - 1))
	if indexBits+m.epochBits > 64 || m.contextID>>(64-indexBits-m.epochBits) != 0 {
		return fmt.Errorf("sframe: context ID %d does not fit in the KID", m.contextID)
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	if len(m.windows) > 0 && epoch <= m.windows[0].epoch {
		return fmt.Errorf("sframe: epoch %d is not newer than %d", epoch, m.windows[0].epoch)
	}
	nk := m.suite.params().nk
	baseKey, err := export(mlsExporterLabel, nil, nk)
	if err != nil {
		return fmt.Errorf("sframe: exporting the base key: %w", err)
	}
	if len(baseKey) != nk {
		clear(baseKey)
		return fmt.Errorf("sframe: exporter returned %d bytes, want %d", len(baseKey), nk)
	}
	kid := m.contextID<<(indexBits+m.epochBits) | uint64(m.leafIndex)<<m.epochBits | epoch&m.epochMask()
	sender, err := NewSender(m.suite, kid, baseKey)
	if err != nil {
		clear(baseKey)
		return err
	}

	if m.sender != nil {
		m.sender.erase()
	}
	m.sender = sender
	windows := []*mlsEpoch{{epoch: epoch, indexBits: indexBits, baseKey: baseKey, keys: make(map[uint64]*recvKey)}}
	for _, e := range m.windows {
		// Epochs within 2^E of each other differ in their low E bits, so
		// this also drops any epoch whose KIDs the new one reuses.
		if epoch-e.epoch < m.epochs {
			windows = append(windows, e)
		} else {
			e.erase()
		}
	}
	m.windows = windows
	return nil
}

// Epoch returns the current MLS epoch.
func (m *MLSKeys) Epoch() uint64 {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if len(m.windows) == 0 {
		return 0
	}
	return m.windows[0].epoch
}

// Encrypt encrypts a frame with this member's key for the current epoch, as
// [Sender.Encrypt] does.
func (m *MLSKeys) Encrypt(dst, metadata, plaintext []byte) ([]byte, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return nil, ErrClosed
	}
	return m.sender.Encrypt(dst, metadata, plaintext)
}

// Decrypt decrypts a frame from another member, as [Receiver.Decrypt] does.
// It returns [ErrUnknownKey] for a frame from an epoch it does not hold
// (not yet set, or too old), and for a frame with this member's own leaf
// index, since a key is used for sending or receiving, never both.
func (m *MLSKeys) Decrypt(dst, metadata, frame []byte) ([]byte, error) {
	h, n, err := ParseHeader(frame)
	if err != nil {
		return nil, err
	}
	m.mu.RLock()
	e, k := m.lookup(h.KID)
	if k != nil {
		out, err := k.open(dst, h, n, metadata, frame)
		m.mu.RUnlock()
		return out, err
	}
	m.mu.RUnlock()
	if e == nil {
		return nil, ErrUnknownKey
	}
	return m.learn(dst, h, n, metadata, frame)
}

// learn decrypts a frame whose KID has no key yet, deriving one from the
// epoch's base key. It keeps the key only if the frame authenticates, so
// that forged KIDs cost no memory.
func (m *MLSKeys) learn(dst []byte, h Header, n int, metadata, frame []byte) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, k := m.lookup(h.KID)
	if e == nil {
		return nil, ErrUnknownKey
	}
	if k != nil {
		return k.open(dst, h, n, metadata, frame)
	}
	k, err := newRecvKey(m.suite, h.KID, e.baseKey, m.replay)
	if err != nil {
		return nil, err
	}
	out, err := k.open(dst, h, n, metadata, frame)
	if err != nil {
		k.erase()
		return nil, err
	}
	e.keys[h.KID] = k
	return out, nil
}

// lookup returns the epoch a KID belongs to, or nil if that epoch is not
// held or the KID is one of this member's, and the KID's key if it has one.
// The caller holds m.mu.
func (m *MLSKeys) lookup(kid uint64) (*mlsEpoch, *recvKey) {
	for _, e := range m.windows {
		if e.epoch&m.epochMask() != kid&m.epochMask() {
			continue
		}
		if (kid>>m.epochBits)&(1<<e.indexBits-1) == uint64(m.leafIndex) {
			return nil, nil
		}
		return e, e.keys[kid]
	}
	return nil, nil
}

func (m *MLSKeys) epochMask() uint64 { return 1<<m.epochBits - 1 }

// Close erases every key. Afterwards Encrypt and SetEpoch return ErrClosed
// and Decrypt returns ErrUnknownKey.
func (m *MLSKeys) Close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	m.sender.erase()
	for _, e := range m.windows {
		e.erase()
	}
	m.windows = nil
}

// String describes the keys without revealing key material.
func (m *MLSKeys) String() string {
	return fmt.Sprintf("sframe.MLSKeys(%v, leaf=%d, epoch=%d, keys=redacted)", m.suite, m.leafIndex, m.Epoch())
}

// Format makes every fmt verb print [MLSKeys.String], so that no verb dumps
// key material by reflection.
func (m *MLSKeys) Format(f fmt.State, _ rune) { fmt.Fprint(f, m.String()) }

// erase clears the epoch's base key and every key derived from it.
func (e *mlsEpoch) erase() {
	clear(e.baseKey)
	for _, k := range e.keys {
		k.erase()
	}
	clear(e.keys)
}
