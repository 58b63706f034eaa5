package call

import (
	"errors"
	"fmt"
	"sync"

	"github.com/hush-chat/hush/mls"
	"github.com/hush-chat/hush/sframe"
)

// Suite is the SFrame cipher suite of every Hush call.
const Suite = sframe.AES_128_GCM_SHA256_128

// Context IDs of a member's two streams, so that audio and video never
// share a (key, CTR) pair (RFC 9605 §5.2).
const (
	contextAudio = 0
	contextVideo = 1
)

// ErrNotMember is returned by [NewKeys] and [Keys.Update] for a group we
// are no longer a member of.
var ErrNotMember = errors.New("call: not a member of the group")

// Keys are a device's SFrame keys for the calls of one conversation,
// exported from the conversation's MLS group (RFC 9605 §5.2): one
// sframe.MLSKeys for each of its streams, audio and video, and the keys
// to decrypt every other member's frames from the current epoch and the
// few before it. Keys are safe for concurrent use.
type Keys struct {
	mu           sync.Mutex // serialises Update
	audio, video *sframe.MLSKeys
}

// NewKeys derives the keys of g's current epoch.
func NewKeys(g *mls.Group) (*Keys, error) {
	epoch, size, err := groupState(g)
	if err != nil {
		return nil, err
	}
	audio, err := sframe.NewMLSKeys(sframe.MLSConfig{Suite: Suite, LeafIndex: g.Index(), ContextID: contextAudio}, epoch, size, g.Export)
	if err != nil {
		return nil, fmt.Errorf("call: audio keys: %w", err)
	}
	video, err := sframe.NewMLSKeys(sframe.MLSConfig{Suite: Suite, LeafIndex: g.Index(), ContextID: contextVideo}, epoch, size, g.Export)
	if err != nil {
		audio.Close()
		return nil, fmt.Errorf("call: video keys: %w", err)
	}
	return &Keys{audio: audio, video: video}, nil
}

// Update moves the keys to g's current epoch, if it is newer than theirs.
// Call it after every commit the group merges: from then on frames are
// sent under the new epoch's keys, and frames of the last
// sframe.DefaultEpochs epochs are still accepted. A member that a commit
// removed derives no key of the new epoch, so it cannot decrypt what is
// sent after it.
func (k *Keys) Update(g *mls.Group) error {
	epoch, size, err := groupState(g)
	if err != nil {
		return err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if epoch <= k.audio.Epoch() {
		return nil
	}
	if err := k.audio.SetEpoch(epoch, size, g.Export); err != nil {
		return fmt.Errorf("call: audio keys: %w", err)
	}
	if err := k.video.SetEpoch(epoch, size, g.Export); err != nil {
		return fmt.Errorf("call: video keys: %w", err)
	}
	return nil
}

// Epoch returns the MLS epoch the keys send under.
func (k *Keys) Epoch() uint64 { return k.audio.Epoch() }

// Close erases every key.
func (k *Keys) Close() {
	k.audio.Close()
	k.video.Close()
}

// String describes the keys without revealing them.
func (k *Keys) String() string { return fmt.Sprintf("call.Keys(epoch=%d, redacted)", k.Epoch()) }

// encrypt seals a frame of our own stream of the given kind.
func (k *Keys) encrypt(dst []byte, video bool, frame []byte) ([]byte, error) {
	if video {
		return k.video.Encrypt(dst, nil, frame)
	}
	return k.audio.Encrypt(dst, nil, frame)
}

// decrypt opens another member's frame. Any MLSKeys of the group can, as
// receiving keys are derived per KID from the epoch's base key.
func (k *Keys) decrypt(dst, frame []byte) ([]byte, error) {
	return k.audio.Decrypt(dst, nil, frame)
}

// Open decrypts one SFrame frame of any member's stream, as a [Remote]
// does, and appends the plaintext to dst. It fails for a frame under a
// key these keys do not hold (an epoch we are not in, or older than the
// window), a forged frame, or a replayed one.
func (k *Keys) Open(dst, frame []byte) ([]byte, error) { return k.decrypt(dst, frame) }

// groupState returns g's epoch and the size of its ratchet tree as all
// members see it: one more than the highest leaf index in use.
func groupState(g *mls.Group) (epoch uint64, size uint32, err error) {
	if !g.Active() {
		return 0, 0, ErrNotMember
	}
	ms := g.Members()
	if len(ms) == 0 {
		return 0, 0, ErrNotMember
	}
	return g.Epoch(), ms[len(ms)-1].Index + 1, nil
}

// Format makes every fmt verb print [Keys.String].
func (k *Keys) Format(f fmt.State, _ rune) { fmt.Fprint(f, k.String()) }
