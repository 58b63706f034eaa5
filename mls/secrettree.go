package mls

import (
	"cmp"
	"errors"
	"maps"
	"math"
	"slices"

	"golang.org/x/crypto/cryptobyte"
)

// The secret tree of RFC 9420 §9 and the per-sender hash ratchets that key
// PrivateMessages, with the deletion schedule of §9.2.
//
// The tree is expanded lazily: it starts as the root secret alone, and the
// first use of a leaf splits only the nodes on that leaf's direct path
// (O(log n) derivations), keeping each split-off sibling secret and erasing
// the secret that was split. A leaf's own secret becomes its handshake and
// application ratchet secrets and is erased. Each ratchet step erases the
// secret it advanced from, and each message key is erased once used.
//
// A secretTree is not safe for concurrent use.

// ratchetType selects one of the two hash ratchets of a leaf (§9.1).
type ratchetType uint8

const (
	// handshakeRatchet keys PrivateMessages that carry a Proposal or Commit.
	handshakeRatchet ratchetType = iota
	// applicationRatchet keys PrivateMessages that carry application data.
	applicationRatchet
)

// RatchetWindow bounds how far out of order PrivateMessages from one
// sender may arrive (§9.2 leaves the policy to the application).
type RatchetWindow struct {
	// MaxForward is how many generations a message may skip beyond the next
	// one expected from its sender. Skipping costs one key derivation per
	// generation, so this also bounds the work a single message can cause.
	MaxForward uint32
	// MaxRetained is how many generations back from the next expected one
	// the keys of skipped messages are kept, so that late messages can still
	// be read. Older keys are erased, and their messages rejected.
	MaxRetained uint32
}

// DefaultRatchetWindow accepts messages up to 1000 generations ahead and
// keeps the keys of skipped messages for 1000 generations.
var DefaultRatchetWindow = RatchetWindow{MaxForward: 1000, MaxRetained: 1000}

// ErrRatchetWindow is wrapped by the error for a message whose generation
// lies beyond the RatchetWindow's MaxForward.
var ErrRatchetWindow = errors.New("mls: generation too far ahead of its sender's ratchet")

// secretTree is the secret tree of one epoch together with the hash
// ratchets of the leaves used so far.
type secretTree struct {
	suite  *suite
	leaves uint32
	window RatchetWindow

	// nodes holds the tree secrets not yet split. Together with the leaves
	// in ratchets they cover every leaf of the tree exactly once.
	nodes    map[nodeIndex][]byte
	ratchets map[leafIndex]*leafRatchets
}

// leafRatchets holds a leaf's two ratchets, indexed by ratchetType.
type leafRatchets [2]hashRatchet

// hashRatchet is one sender's hash ratchet (§9.1).
type hashRatchet struct {
	next   uint32 // generation of secret: the next one to send or expect
	secret []byte // ratchet_secret_[next]
	// skipped holds the keys of generations below next that were skipped
	// and not yet used, in increasing order of generation.
	skipped []skippedKey
}

// skippedKey is the key and nonce of one skipped generation, in one buffer.
type skippedKey struct {
	generation uint32
	keyNonce   []byte
}

// maxSecretTreeLeaves is the largest tree whose node indices fit a uint32.
const maxSecretTreeLeaves = 1 << 31

// newSecretTree makes the secret tree of an epoch with the given number of
// leaves (the ratchet tree's leaf count), rooted at encryption_secret
// (§9). encryptionSecret is copied: the caller should erase its own copy
// once the tree exists, as §9.2 asks.
func newSecretTree(s *suite, encryptionSecret []byte, leaves uint32, w RatchetWindow) (*secretTree, error) {
	if leaves == 0 || leaves > maxSecretTreeLeaves {
		return nil, errorf("secret tree of %d leaves", leaves)
	}
	if len(encryptionSecret) != s.nh() {
		return nil, errorf("encryption_secret of %d bytes, want %d", len(encryptionSecret), s.nh())
	}
	t := emptySecretTree(s, leaves, w)
	t.nodes[root(leaves)] = append([]byte(nil), encryptionSecret...)
	return t, nil
}

func emptySecretTree(s *suite, leaves uint32, w RatchetWindow) *secretTree {
	return &secretTree{
		suite:    s,
		leaves:   leaves,
		window:   w,
		nodes:    make(map[nodeIndex][]byte),
		ratchets: make(map[leafIndex]*leafRatchets),
	}
}

// wipe erases every secret and key the tree still holds. The tree must not
// be used afterwards.
func (t *secretTree) wipe() {
	for x, secret := range t.nodes {
		clear(secret)
		delete(t.nodes, x)
	}
	for l, lr := range t.ratchets {
		for i := range lr {
			lr[i].wipe()
		}
		delete(t.ratchets, l)
	}
}

func (r *hashRatchet) wipe() {
	clear(r.secret)
	r.secret = nil
	for _, k := range r.skipped {
		clear(k.keyNonce)
	}
	r.skipped = nil
}

// nextSenderKey returns the key and nonce for the next message this member
// sends from leaf with the given ratchet, and that message's generation
// (§9.1). The ratchet moves on at once: the generation is never handed out
// again, whether or not the message is sent. The caller owns key and nonce
// and should erase them once the message is sealed.
func (t *secretTree) nextSenderKey(leaf leafIndex, rt ratchetType) (generation uint32, key, nonce []byte, err error) {
	r, err := t.ratchet(leaf, rt)
	if err != nil {
		return 0, nil, nil, err
	}
	if r.next == math.MaxUint32 {
		return 0, nil, nil, errorf("hash ratchet exhausted")
	}
	key, nonce, next := t.step(r.secret, r.next)
	generation = r.next
	r.advance(next, generation+1, t.window)
	return generation, key, nonce, nil
}

// withReceiverKey finds the key and nonce of the message of the given
// generation from the sender at leaf, and calls use with them (§9.1, §9.2).
// Only if use returns nil is the key consumed: it is erased, the ratchet
// moves past it, and the keys of any generations skipped on the way are
// kept for late messages within the RatchetWindow. If use fails (the
// message does not decrypt), the tree is left as it was, so a forged
// message cannot destroy the keys of genuine ones.
//
// A generation already consumed, or too old for its key to be kept, gives
// ErrReplay; one too far ahead gives ErrRatchetWindow. use must neither
// keep nor modify key and nonce.
func (t *secretTree) withReceiverKey(leaf leafIndex, rt ratchetType, generation uint32, use func(key, nonce []byte) error) error {
	r, err := t.ratchet(leaf, rt)
	if err != nil {
		return err
	}
	if generation < r.next {
		return r.useSkipped(generation, t.suite.nk, use)
	}
	if generation-r.next > t.window.MaxForward {
		return ErrRatchetWindow
	}
	if generation == math.MaxUint32 {
		return errorf("hash ratchet exhausted")
	}
	pending, secret := t.skipTo(r, generation)
	key, nonce, next := t.step(secret, generation)
	if generation != r.next {
		clear(secret) // an intermediate secret, not the ratchet's own
	}
	err = use(key, nonce)
	clear(key)
	clear(nonce)
	if err != nil {
		clear(next)
		for _, k := range pending {
			clear(k.keyNonce)
		}
		return err
	}
	r.skipped = append(r.skipped, pending...)
	r.advance(next, generation+1, t.window)
	return nil
}

// skipTo ratchets tentatively from r.next up to (not including) target,
// without changing r: it returns the keys of the skipped generations that
// the window would retain, and the ratchet secret of target (r.secret
// itself when nothing is skipped).
func (t *secretTree) skipTo(r *hashRatchet, target uint32) (pending []skippedKey, secret []byte) {
	secret = r.secret
	for g := r.next; g < target; g++ {
		key, nonce, next := t.step(secret, g)
		if uint64(target)+1-uint64(g) <= uint64(t.window.MaxRetained) {
			pending = append(pending, skippedKey{generation: g, keyNonce: slices.Concat(key, nonce)})
		}
		clear(key)
		clear(nonce)
		if g != r.next {
			clear(secret)
		}
		secret = next
	}
	return pending, secret
}

// useSkipped serves a generation below r.next from the retained keys.
func (r *hashRatchet) useSkipped(generation uint32, nk int, use func(key, nonce []byte) error) error {
	i, found := slices.BinarySearchFunc(r.skipped, generation, func(k skippedKey, g uint32) int {
		return cmp.Compare(k.generation, g)
	})
	if !found {
		return ErrReplay
	}
	kn := r.skipped[i].keyNonce
	if err := use(kn[:nk:nk], kn[nk:]); err != nil {
		return err
	}
	clear(kn)
	r.skipped = slices.Delete(r.skipped, i, i+1)
	return nil
}

// advance replaces the ratchet secret by that of generation next, erasing
// the old one, and erases the retained keys that fell out of the window.
func (r *hashRatchet) advance(secret []byte, next uint32, w RatchetWindow) {
	clear(r.secret)
	r.secret, r.next = secret, next
	keep := 0
	for keep < len(r.skipped) && uint64(next)-uint64(r.skipped[keep].generation) > uint64(w.MaxRetained) {
		clear(r.skipped[keep].keyNonce)
		keep++
	}
	r.skipped = slices.Delete(r.skipped, 0, keep)
}

// step derives, from ratchet_secret_[g], the key and nonce of generation g
// and ratchet_secret_[g+1] (§9.1):
//
//	key    = DeriveTreeSecret(secret, "key", g, AEAD.Nk)
//	nonce  = DeriveTreeSecret(secret, "nonce", g, AEAD.Nn)
//	secret = DeriveTreeSecret(secret, "secret", g, KDF.Nh)
//
// Each is one HKDF-Expand from crypto/hkdf: the KDF stays the standard
// library's, never a hand-rolled shortcut.
func (t *secretTree) step(secret []byte, g uint32) (key, nonce, next []byte) {
	s := t.suite
	return s.deriveTreeSecret(secret, "key", g, s.nk),
		s.deriveTreeSecret(secret, "nonce", g, s.nn),
		s.deriveTreeSecret(secret, "secret", g, s.nh())
}

// ratchet returns the ratchet of the given type for leaf, deriving the
// leaf's ratchets from the tree on first use.
func (t *secretTree) ratchet(leaf leafIndex, rt ratchetType) (*hashRatchet, error) {
	if uint32(leaf) >= t.leaves {
		return nil, errorf("leaf %d outside a secret tree of %d leaves", leaf, t.leaves)
	}
	if rt > applicationRatchet {
		return nil, errorf("unknown ratchet type %d", rt)
	}
	lr, ok := t.ratchets[leaf]
	if !ok {
		var err error
		if lr, err = t.deriveLeaf(leaf); err != nil {
			return nil, err
		}
	}
	return &lr[rt], nil
}

// deriveLeaf splits the tree secrets on the path from the nearest stored
// ancestor down to leaf (§9), then turns the leaf's secret into its two
// ratchets (§9.1). Each secret is erased once split.
func (t *secretTree) deriveLeaf(leaf leafIndex) (*leafRatchets, error) {
	x := leaf.node()
	top, ok := t.storedAncestor(x)
	if !ok {
		return nil, errorf("secret tree holds no secret for leaf %d", leaf)
	}
	s := t.suite
	secret := t.nodes[top]
	delete(t.nodes, top)
	for n := top; n != x; {
		left := s.expandWithLabel(secret, "tree", []byte("left"), s.nh())
		right := s.expandWithLabel(secret, "tree", []byte("right"), s.nh())
		clear(secret)
		if x < n {
			secret, n = left, n.left()
			t.keepNode(n.sibling(), right)
		} else {
			secret, n = right, n.right()
			t.keepNode(n.sibling(), left)
		}
	}
	lr := &leafRatchets{
		handshakeRatchet:   {secret: s.expandWithLabel(secret, "handshake", nil, s.nh())},
		applicationRatchet: {secret: s.expandWithLabel(secret, "application", nil, s.nh())},
	}
	clear(secret)
	t.ratchets[leaf] = lr
	return lr, nil
}

// storedAncestor finds the node holding the tree secret above x (or x).
func (t *secretTree) storedAncestor(x nodeIndex) (nodeIndex, bool) {
	r := root(t.leaves)
	for {
		if _, ok := t.nodes[x]; ok {
			return x, true
		}
		if x == r {
			return 0, false
		}
		x = x.parent()
	}
}

// keepNode stores a split-off subtree secret, or erases it if the subtree
// holds no leaf of the tree (only when the leaf count is not a power of 2).
func (t *secretTree) keepNode(x nodeIndex, secret []byte) {
	if first, _ := subtreeLeaves(x); first >= t.leaves {
		clear(secret)
		return
	}
	t.nodes[x] = secret
}

// subtreeLeaves is the first leaf and the leaf count of the subtree at x.
func subtreeLeaves(x nodeIndex) (first, count uint32) {
	k := x.level()
	return uint32(x>>(k+1)) << k, 1 << k
}

// --- Sender data and reuse guard (§6.3) ---

// senderDataKeyNonce derives the key and nonce that protect the SenderData
// of a PrivateMessage (§6.3.2) from sender_data_secret and the message's
// ciphertext, of which the first KDF.Nh bytes (or all, if shorter) are the
// sample.
func senderDataKeyNonce(s *suite, senderDataSecret, ciphertext []byte) (key, nonce []byte) {
	sample := ciphertext[:min(len(ciphertext), s.nh())]
	return s.expandWithLabel(senderDataSecret, "key", sample, s.nk),
		s.expandWithLabel(senderDataSecret, "nonce", sample, s.nn)
}

// applyReuseGuard appends nonce to dst with its first four bytes XORed
// with the reuse_guard of the SenderData (§6.3.1), and returns the result.
// With a dst of enough capacity (such as a stack array's [:0]) it does not
// allocate.
func applyReuseGuard(dst, nonce []byte, guard [4]byte) []byte {
	n := len(dst)
	dst = append(dst, nonce...)
	for i, g := range guard {
		dst[n+i] ^= g
	}
	return dst
}

// --- Persistence ---

// secretTreeVersion is the version byte that starts an encoded secretTree,
// so that a later layout can still read this one.
const secretTreeVersion = 1

// marshal encodes the tree's current state for persisting a group: the
// unsplit tree secrets, each used leaf's ratchet heads and retained
// skipped keys, and the window. It is this package's own format, not an
// MLS wire structure:
//
//	uint8 version = 1; uint16 cipher_suite; uint32 leaves;
//	uint32 max_forward; uint32 max_retained;
//	struct { uint32 node; opaque secret<V>; } nodes<V>;            // ascending node
//	struct { uint32 leaf; Ratchet handshake; Ratchet application; } leaves<V>;  // ascending leaf
//	Ratchet: uint32 next; opaque secret<V>;
//	         struct { uint32 generation; opaque key_nonce<V>; } skipped<V>;  // ascending
//
// The encoding holds secrets: store it as such.
func (t *secretTree) marshal(b *cryptobyte.Builder) {
	b.AddUint8(secretTreeVersion)
	b.AddUint16(uint16(t.suite.id))
	b.AddUint32(t.leaves)
	b.AddUint32(t.window.MaxForward)
	b.AddUint32(t.window.MaxRetained)
	addVector(b, func(b *cryptobyte.Builder) {
		for _, x := range slices.Sorted(maps.Keys(t.nodes)) {
			b.AddUint32(uint32(x))
			addOpaque(b, t.nodes[x])
		}
	})
	addVector(b, func(b *cryptobyte.Builder) {
		for _, l := range slices.Sorted(maps.Keys(t.ratchets)) {
			b.AddUint32(uint32(l))
			for i := range t.ratchets[l] {
				t.ratchets[l][i].marshal(b)
			}
		}
	})
}

func (r *hashRatchet) marshal(b *cryptobyte.Builder) {
	b.AddUint32(r.next)
	addOpaque(b, r.secret)
	addVector(b, func(b *cryptobyte.Builder) {
		for _, k := range r.skipped {
			b.AddUint32(k.generation)
			addOpaque(b, k.keyNonce)
		}
	})
}

// unmarshal decodes what marshal wrote, checking every invariant: sizes of
// secrets and keys, strictly increasing indices, retained keys within the
// window, and tree secrets and leaf ratchets that cover every leaf
// exactly once.
func (t *secretTree) unmarshal(s *cryptobyte.String) bool {
	var version uint8
	var cs uint16
	var leaves uint32
	var w RatchetWindow
	if !s.ReadUint8(&version) || version != secretTreeVersion || !s.ReadUint16(&cs) ||
		!s.ReadUint32(&leaves) || leaves == 0 || leaves > maxSecretTreeLeaves ||
		!s.ReadUint32(&w.MaxForward) || !s.ReadUint32(&w.MaxRetained) {
		return false
	}
	st, err := lookupSuite(CipherSuite(cs))
	if err != nil {
		return false
	}
	*t = *emptySecretTree(st, leaves, w)
	var spans []secretTreeSpan
	if !t.unmarshalNodes(s, &spans) || !t.unmarshalRatchets(s, &spans) || !coversExactly(spans, leaves) {
		t.wipe()
		return false
	}
	return true
}

// secretTreeSpan is the range [start, end) of leaves below a node.
type secretTreeSpan struct{ start, end uint32 }

// coversExactly reports whether spans tile the leaves [0, n) without gap
// or overlap. Spans of tree nodes are either nested or disjoint, so
// sorting them by start and chaining them is enough.
func coversExactly(spans []secretTreeSpan, n uint32) bool {
	slices.SortFunc(spans, func(a, b secretTreeSpan) int { return cmp.Compare(a.start, b.start) })
	next := uint32(0)
	for _, sp := range spans {
		if sp.start != next {
			return false
		}
		next = sp.end
	}
	return next == n
}

// unmarshalNodes reads the tree secrets, noting the leaves each covers.
func (t *secretTree) unmarshalNodes(s *cryptobyte.String, spans *[]secretTreeSpan) bool {
	first := true
	var prev nodeIndex
	rootLevel := root(t.leaves).level()
	return readList(s, func(s *cryptobyte.String) bool {
		var x uint32
		var secret []byte
		if !s.ReadUint32(&x) || !readOpaque(s, &secret) {
			return false
		}
		n := nodeIndex(x)
		start, count := subtreeLeaves(n)
		if len(secret) != t.suite.nh() || (!first && n <= prev) || n.level() > rootLevel || start >= t.leaves {
			clear(secret)
			return false
		}
		t.nodes[n] = secret
		*spans = append(*spans, secretTreeSpan{start, start + min(count, t.leaves-start)})
		first, prev = false, n
		return true
	})
}

// unmarshalRatchets reads the leaf ratchets, noting the leaves they cover.
func (t *secretTree) unmarshalRatchets(s *cryptobyte.String, spans *[]secretTreeSpan) bool {
	first := true
	var prev leafIndex
	return readList(s, func(s *cryptobyte.String) bool {
		var l uint32
		if !s.ReadUint32(&l) || l >= t.leaves || (!first && leafIndex(l) <= prev) {
			return false
		}
		lr := &leafRatchets{}
		t.ratchets[leafIndex(l)] = lr // first, so that wipe reaches it on failure
		for i := range lr {
			if !lr[i].unmarshal(s, t.suite, t.window) {
				return false
			}
		}
		*spans = append(*spans, secretTreeSpan{l, l + 1})
		first, prev = false, leafIndex(l)
		return true
	})
}

func (r *hashRatchet) unmarshal(s *cryptobyte.String, st *suite, w RatchetWindow) bool {
	if !s.ReadUint32(&r.next) || !readOpaque(s, &r.secret) || len(r.secret) != st.nh() {
		return false
	}
	return readList(s, func(s *cryptobyte.String) bool {
		var k skippedKey
		if !s.ReadUint32(&k.generation) || !readOpaque(s, &k.keyNonce) {
			return false
		}
		r.skipped = append(r.skipped, k) // first, so that wipe reaches it
		n := len(r.skipped)
		return len(k.keyNonce) == st.nk+st.nn && k.generation < r.next &&
			uint64(r.next)-uint64(k.generation) <= uint64(w.MaxRetained) &&
			(n == 1 || r.skipped[n-2].generation < k.generation)
	})
}
