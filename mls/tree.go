package mls

import (
	"bytes"
	"slices"
	"sync/atomic"

	"golang.org/x/crypto/cryptobyte"
)

// This file holds the public ratchet tree of RFC 9420 §4 and §7 in the
// array representation of Appendix C, with the operations proposals apply
// to it (§7.7, §12.1.1–§12.1.3) and the ratchet_tree extension encoding
// (§12.4.3.3). Tree hashes and parent hashes are in treehash.go, the
// validation of a received tree in treevalidate.go and TreeKEM in
// treekem.go.
//
// Nodes stored in a ratchetTree are never modified in place: every
// operation installs a fresh *LeafNode or *ParentNode. That lets clones
// share nodes (and, copy-on-write, the arrays holding them) while each can
// be modified independently, and it means callers must treat the nodes
// they read from a tree, and the leaves they hand to it, as read-only.

// ParentNode is the content of a non-blank parent node (§7.1).
type ParentNode struct {
	EncryptionKey  []byte      // HPKEPublicKey
	ParentHash     []byte      // §7.9
	UnmergedLeaves []leafIndex // sorted in increasing order
}

func (p *ParentNode) marshal(b *cryptobyte.Builder) {
	addOpaque(b, p.EncryptionKey)
	addOpaque(b, p.ParentHash)
	addVector(b, func(b *cryptobyte.Builder) {
		for _, l := range p.UnmergedLeaves {
			b.AddUint32(uint32(l))
		}
	})
}

func (p *ParentNode) unmarshal(s *cryptobyte.String) bool {
	p.UnmergedLeaves = nil
	return readOpaque(s, &p.EncryptionKey) && readOpaque(s, &p.ParentHash) &&
		readList(s, func(s *cryptobyte.String) bool {
			var l uint32
			if !s.ReadUint32(&l) {
				return false
			}
			p.UnmergedLeaves = append(p.UnmergedLeaves, leafIndex(l))
			return true
		})
}

// withUnmerged returns a copy of p with leaf l added to its unmerged
// leaves, keeping them sorted (§12.1.1).
func (p *ParentNode) withUnmerged(l leafIndex) *ParentNode {
	c := *p
	pos, found := slices.BinarySearch(p.UnmergedLeaves, l)
	if found {
		return &c
	}
	c.UnmergedLeaves = slices.Insert(slices.Clip(p.UnmergedLeaves), pos, l)
	return &c
}

// node is one entry of the array representation: a leaf (at even
// indices), a parent (at odd indices), or blank when both are nil.
type node struct {
	leaf   *LeafNode
	parent *ParentNode
}

func (n node) blank() bool { return n.leaf == nil && n.parent == nil }

// encryptionKey is the HPKE public key of a non-blank node.
func (n node) encryptionKey() []byte {
	switch {
	case n.leaf != nil:
		return n.leaf.EncryptionKey
	case n.parent != nil:
		return n.parent.EncryptionKey
	}
	return nil
}

// NodeType values of the ratchet_tree extension and of TreeHashInput (§7.8).
const (
	nodeTypeLeaf   uint8 = 1
	nodeTypeParent uint8 = 2
)

// ratchetTree is the public state of a group's ratchet tree. Its nodes
// always form a full tree of 2^d leaves (2^(d+1)-1 nodes). It caches the
// tree hash of every node, so that after a change only the hashes on the
// changed node's direct path are recomputed, and it can keep an index of
// its members' keys (treeKeys), updated with every change.
//
// The nodes live in copy-on-write chunks of chunkSize nodes, so that clone
// copies one pointer per chunk and a change copies only the chunks it
// touches: staging a commit on a clone of a large tree costs O(log n)
// chunk copies, not a copy of the tree.
type ratchetTree struct {
	suite  *suite
	chunks []*nodeChunk
	width  int // number of nodes
	// version identifies this tree among the trees sharing its chunks:
	// only a chunk whose owner is version may be written in place.
	version uint64
	// keys indexes the tree's keys once indexed is set (see index).
	keys    treeKeys
	indexed bool
	// free is a search hint: every leaf below it is non-blank.
	free leafIndex
}

// chunkSize is the number of nodes in a nodeChunk (a power of two).
const (
	chunkBits = 5
	chunkSize = 1 << chunkBits
)

// nodeChunk holds chunkSize consecutive nodes and their cached tree
// hashes: hashes[i] is the tree hash of the chunk's node i, or nil when
// stale. Invariant: when a node's hash is nil, so is every ancestor's.
type nodeChunk struct {
	owner  uint64
	nodes  [chunkSize]node
	hashes [chunkSize][]byte
}

// treeVersions hands out tree versions; 0 is never used.
var treeVersions atomic.Uint64

func newTreeVersion() uint64 { return treeVersions.Add(1) }

// newRatchetTree returns the one-leaf tree of a new group's creator (§11).
// The tree takes ownership of leaf.
func newRatchetTree(s *suite, leaf *LeafNode) *ratchetTree {
	t := &ratchetTree{suite: s, version: newTreeVersion()}
	t.resize(1)
	t.setNode(0, node{leaf: leaf})
	return t
}

// numLeaves is the number of leaves, blank or not (a power of two).
func (t *ratchetTree) numLeaves() uint32 { return uint32(t.width+1) / 2 }

// root is the index of the root node.
func (t *ratchetTree) root() nodeIndex { return root(t.numLeaves()) }

// node returns node x, which must lie in the tree. Its leaf or parent
// must not be modified.
func (t *ratchetTree) node(x nodeIndex) node {
	return t.chunks[x>>chunkBits].nodes[x&(chunkSize-1)]
}

// leaf returns the LeafNode at leaf i, or nil when the leaf is blank or
// outside the tree. The result must not be modified.
func (t *ratchetTree) leaf(i leafIndex) *LeafNode {
	if uint32(i) >= t.numLeaves() {
		return nil
	}
	return t.node(i.node()).leaf
}

// parentNode returns the ParentNode at node x, or nil when it is blank.
// The result must not be modified.
func (t *ratchetTree) parentNode(x nodeIndex) *ParentNode {
	if int(x) >= t.width {
		return nil
	}
	return t.node(x).parent
}

// clone returns a copy of t that can be changed without affecting t, for
// staging a commit. The two share their chunks, cached hashes and key
// index until either changes them: clone costs one pointer per chunk.
// Both get new versions, so that neither writes a shared chunk in place.
func (t *ratchetTree) clone() *ratchetTree {
	t.version = newTreeVersion()
	c := *t
	c.chunks = slices.Clone(t.chunks)
	c.version = newTreeVersion()
	return &c
}

// writable returns the chunk of node x, first copying it if t does not
// own it.
func (t *ratchetTree) writable(x nodeIndex) *nodeChunk {
	c := t.chunks[x>>chunkBits]
	if c.owner != t.version {
		cp := *c
		cp.owner = t.version
		c = &cp
		t.chunks[x>>chunkBits] = c
	}
	return c
}

// setNode replaces node x, keeping the key index up to date, and
// invalidates the cached hashes it affects.
func (t *ratchetTree) setNode(x nodeIndex, n node) {
	c := t.writable(x)
	if t.indexed {
		t.keys.replace(c.nodes[x&(chunkSize-1)], n)
	}
	c.nodes[x&(chunkSize-1)] = n
	t.invalidate(x)
}

// cachedHash returns the cached tree hash of node x, or nil.
func (t *ratchetTree) cachedHash(x nodeIndex) []byte {
	return t.chunks[x>>chunkBits].hashes[x&(chunkSize-1)]
}

// cacheHash records h as the tree hash of node x.
func (t *ratchetTree) cacheHash(x nodeIndex, h []byte) {
	t.writable(x).hashes[x&(chunkSize-1)] = h
}

// invalidate drops the cached tree hashes of x and its ancestors.
func (t *ratchetTree) invalidate(x nodeIndex) {
	r := t.root()
	for t.cachedHash(x) != nil {
		t.cacheHash(x, nil)
		if x == r {
			return
		}
		x = x.parent()
	}
}

// resize makes the tree width nodes wide. New nodes are blank; dropped
// ones must be.
func (t *ratchetTree) resize(width int) {
	old := t.width
	n := (width + chunkSize - 1) >> chunkBits
	if width < old {
		clear(t.chunks[n:]) // let the dropped chunks be collected
		t.chunks, t.width = t.chunks[:n], width
		return
	}
	// The tail of the last chunk may hold what a truncation left there.
	if end := min(width, len(t.chunks)<<chunkBits); old < end {
		c := t.writable(nodeIndex(old))
		lo, hi := old&(chunkSize-1), (end-1)&(chunkSize-1)+1
		clear(c.nodes[lo:hi])
		clear(c.hashes[lo:hi])
	}
	for len(t.chunks) < n {
		t.chunks = append(t.chunks, &nodeChunk{owner: t.version})
	}
	t.width = width
}

// blankLeaf blanks leaf i, keeping the search hint for free leaves.
func (t *ratchetTree) blankLeaf(i leafIndex) {
	t.setNode(i.node(), node{})
	t.free = min(t.free, i)
}

// blankDirectPath blanks every parent node on the direct path of leaf i.
func (t *ratchetTree) blankDirectPath(i leafIndex) {
	for _, x := range directPath(i.node(), t.numLeaves()) {
		if !t.node(x).blank() {
			t.setNode(x, node{})
		}
	}
}

// freeLeaf returns the leftmost blank leaf, first extending the tree to
// the right (§7.7) when every leaf is taken. This is where an Add places
// its member (§12.1.1) and where an external committer sits (§12.4.1).
func (t *ratchetTree) freeLeaf() leafIndex {
	n := t.numLeaves()
	for i := t.free; uint32(i) < n; i++ {
		if t.node(i.node()).blank() {
			t.free = i
			return i
		}
	}
	t.extend()
	t.free = leafIndex(n)
	return leafIndex(n)
}

// extend doubles the number of leaves: the old tree becomes the left
// subtree of a new blank root whose right subtree is all blank (§7.7).
// Node indices of the old tree do not change, nor do its cached hashes.
func (t *ratchetTree) extend() { t.resize(2*t.width + 1) }

// addLeaf places leaf at the leftmost blank leaf (extending the tree when
// there is none), adds it to the unmerged leaves of every non-blank parent
// on its direct path, and returns its index (§12.1.1). The tree takes
// ownership of leaf.
func (t *ratchetTree) addLeaf(leaf *LeafNode) leafIndex {
	i := t.freeLeaf()
	for _, x := range directPath(i.node(), t.numLeaves()) {
		if p := t.node(x).parent; p != nil {
			t.setNode(x, node{parent: p.withUnmerged(i)})
		}
	}
	t.setNode(i.node(), node{leaf: leaf})
	return i
}

// updateLeaf replaces the LeafNode of member i and blanks its direct path
// (§12.1.2). The tree takes ownership of leaf.
func (t *ratchetTree) updateLeaf(i leafIndex, leaf *LeafNode) error {
	if t.leaf(i) == nil {
		return errorf("update of blank or unknown leaf %d", i)
	}
	t.setNode(i.node(), node{leaf: leaf})
	t.blankDirectPath(i)
	return nil
}

// removeLeaf blanks member i and its direct path, then truncates the tree
// (§12.1.3).
func (t *ratchetTree) removeLeaf(i leafIndex) error {
	if t.leaf(i) == nil {
		return errorf("removal of blank or unknown leaf %d", i)
	}
	t.blankLeaf(i)
	t.blankDirectPath(i)
	t.truncate()
	return nil
}

// truncate removes the right subtree as long as it has no non-blank leaf
// (§7.7, §12.1.3): with rightmost non-blank leaf L, the tree keeps 2^d
// leaves for the smallest d with 2^d > L. It costs one look per trailing
// blank leaf. The parent nodes it drops are blank: a parent is set only
// by a path from a leaf below it, and blanked with that leaf.
func (t *ratchetTree) truncate() {
	last := leafIndex(t.numLeaves() - 1)
	for last > 0 && t.node(last.node()).blank() {
		last--
	}
	n := t.numLeaves()
	for n > 1 && uint32(last) < n/2 {
		n /= 2
	}
	t.resize(int(nodeWidth(n)))
	t.free = min(t.free, leafIndex(n))
}

// walkResolution calls f for each node of the resolution of x (§4.1.1) in
// order, leaving out the leaves in excluded wherever they would appear. It
// stops as soon as f returns false and reports whether it went through
// the whole resolution.
func (t *ratchetTree) walkResolution(x nodeIndex, excluded leafSet, f func(nodeIndex) bool) bool {
	n := t.node(x)
	switch {
	case n.leaf != nil:
		return excluded.has(x.leaf()) || f(x)
	case n.parent != nil:
		if !f(x) {
			return false
		}
		for _, l := range n.parent.UnmergedLeaves {
			if !excluded.has(l) && !f(l.node()) {
				return false
			}
		}
		return true
	case x.isLeaf():
		return true
	}
	return t.walkResolution(x.left(), excluded, f) && t.walkResolution(x.right(), excluded, f)
}

// resolution returns the resolution of x (§4.1.1) without the leaves in
// excluded, the members added by the current commit (§7.6).
func (t *ratchetTree) resolution(x nodeIndex, excluded leafSet) []nodeIndex {
	var out []nodeIndex
	t.walkResolution(x, excluded, func(y nodeIndex) bool {
		out = append(out, y)
		return true
	})
	return out
}

// hasNonBlank reports whether the subtree under x holds a non-blank node,
// that is whether its resolution is non-empty. It stops at the first one.
func (t *ratchetTree) hasNonBlank(x nodeIndex) bool {
	return !t.walkResolution(x, nil, func(nodeIndex) bool { return false })
}

// filteredDirectPath returns the filtered direct path of leaf i (§4.1.2),
// from the bottom up, and for each of its nodes the child on the copath
// of i. New members count toward the resolutions here: they are left out
// only of the encryptions (§7.6).
func (t *ratchetTree) filteredDirectPath(i leafIndex) (path, copath []nodeIndex) {
	r := t.root()
	for x := i.node(); x != r; x = x.parent() {
		if s := x.sibling(); t.hasNonBlank(s) {
			path = append(path, x.parent())
			copath = append(copath, s)
		}
	}
	return path, copath
}

// findLeaf returns the index of the leaf whose LeafNode is identical to
// leaf, as a new member looks for its own leaf (§12.4.3.1).
func (t *ratchetTree) findLeaf(leaf *LeafNode) (leafIndex, bool) {
	want, err := encode(leaf)
	if err != nil {
		return 0, false
	}
	for i := range leafIndex(t.numLeaves()) {
		l := t.leaf(i)
		if l != nil && bytes.Equal(l.EncryptionKey, leaf.EncryptionKey) && bytes.Equal(mustEncode(l), want) {
			return i, true
		}
	}
	return 0, false
}

// leafSet is a set of leaf indices. The nil set is empty.
type leafSet map[leafIndex]struct{}

func newLeafSet(leaves []leafIndex) leafSet {
	if len(leaves) == 0 {
		return nil
	}
	s := make(leafSet, len(leaves))
	for _, l := range leaves {
		s[l] = struct{}{}
	}
	return s
}

func (s leafSet) has(l leafIndex) bool { _, ok := s[l]; return ok }

// marshal writes the ratchet_tree extension data (§12.4.3.3): the nodes
// in array order as optional<Node>, without the trailing blank ones.
func (t *ratchetTree) marshal(b *cryptobyte.Builder) {
	end := nodeIndex(t.width)
	for end > 0 && t.node(end-1).blank() {
		end--
	}
	addVector(b, func(b *cryptobyte.Builder) {
		for x := range end {
			n := t.node(x)
			addOptional(b, !n.blank(), func(b *cryptobyte.Builder) {
				if n.leaf != nil {
					b.AddUint8(nodeTypeLeaf)
					n.leaf.marshal(b)
				} else {
					b.AddUint8(nodeTypeParent)
					n.parent.marshal(b)
				}
			})
		}
	})
}

// unmarshal reads ratchet_tree extension data; t.suite must be set. It
// requires each node's type to match its position (leaves at even
// indices), rejects a tree whose last node is blank, and pads the nodes
// with the fewest blanks that make a full tree (§12.4.3.3).
func (t *ratchetTree) unmarshal(s *cryptobyte.String) bool {
	var nodes []node
	ok := readList(s, func(s *cryptobyte.String) bool {
		var n node
		var present bool
		if !readOptional(s, &present, func(s *cryptobyte.String) bool {
			return n.unmarshal(s, nodeIndex(len(nodes)))
		}) {
			return false
		}
		nodes = append(nodes, n)
		return true
	})
	if !ok || len(nodes) == 0 || nodes[len(nodes)-1].blank() {
		return false
	}
	w := 1
	for w < len(nodes) {
		w = 2*w + 1
	}
	*t = ratchetTree{suite: t.suite, version: newTreeVersion()}
	t.resize(w)
	for x, n := range nodes {
		t.chunks[x>>chunkBits].nodes[x&(chunkSize-1)] = n
	}
	return true
}

// unmarshal reads the body of a present Node at index x, whose type must
// be leaf for even x and parent for odd x.
func (n *node) unmarshal(s *cryptobyte.String, x nodeIndex) bool {
	var typ uint8
	if !s.ReadUint8(&typ) {
		return false
	}
	switch {
	case typ == nodeTypeLeaf && x.isLeaf():
		n.leaf = new(LeafNode)
		return n.leaf.unmarshal(s)
	case typ == nodeTypeParent && !x.isLeaf():
		n.parent = new(ParentNode)
		return n.parent.unmarshal(s)
	}
	return false
}

// decodeRatchetTree parses ratchet_tree extension data for suite s. The
// result is structurally sound; validate checks it before use (§12.4.3.1).
// The same encoding persists a tree.
func decodeRatchetTree(s *suite, data []byte) (*ratchetTree, error) {
	t := &ratchetTree{suite: s}
	if err := decode(data, t, "ratchet tree"); err != nil {
		return nil, err
	}
	return t, nil
}
