package mls

import (
	"bytes"
	"slices"

	"golang.org/x/crypto/cryptobyte"
)

// Tree hashes (RFC 9420 §7.8) and parent hashes (§7.9).

// treeHash returns the tree hash of the whole tree: the hash of its root,
// which goes into the GroupContext. Only stale hashes are recomputed, so
// after changing one leaf this costs O(log n) hashes.
func (t *ratchetTree) treeHash() []byte { return t.hashOf(t.root()) }

// hashOf returns the tree hash of node x, computing and caching it and the
// stale hashes below it. Its result must not be modified.
func (t *ratchetTree) hashOf(x nodeIndex) []byte {
	if h := t.cachedHash(x); h != nil {
		return h
	}
	var h []byte
	if x.isLeaf() {
		h = t.leafHash(x.leaf(), t.node(x).leaf)
	} else {
		h = t.parentTreeHash(t.node(x).parent, t.hashOf(x.left()), t.hashOf(x.right()))
	}
	t.cacheHash(x, h)
	return h
}

// leafHash hashes TreeHashInput for leaf i holding leaf (nil when blank).
func (t *ratchetTree) leafHash(i leafIndex, leaf *LeafNode) []byte {
	b := cryptobyte.NewBuilder(nil)
	b.AddUint8(nodeTypeLeaf)
	b.AddUint32(uint32(i))
	addOptional(b, leaf != nil, func(b *cryptobyte.Builder) { leaf.marshal(b) })
	// Every node in a tree was decoded or built by this package, so it
	// encodes: an error here is a programming error.
	return t.suite.hash(b.BytesOrPanic())
}

// parentTreeHash hashes TreeHashInput for a parent node p (nil when blank)
// whose children have the tree hashes left and right.
func (t *ratchetTree) parentTreeHash(p *ParentNode, left, right []byte) []byte {
	b := cryptobyte.NewBuilder(nil)
	b.AddUint8(nodeTypeParent)
	addOptional(b, p != nil, func(b *cryptobyte.Builder) { p.marshal(b) })
	addOpaque(b, left)
	addOpaque(b, right)
	return t.suite.hash(b.BytesOrPanic())
}

// subtreeLeafRange returns the first and the last leaf of the subtree under x.
func subtreeLeafRange(x nodeIndex) (first, last leafIndex) {
	half := uint32(1)<<x.level() - 1
	return leafIndex((uint32(x) - half) / 2), leafIndex((uint32(x) + half) / 2)
}

// leavesUnder returns the leaves of the sorted list ls that lie in the
// subtree under x, as a sub-slice of ls.
func leavesUnder(ls []leafIndex, x nodeIndex) []leafIndex {
	first, last := subtreeLeafRange(x)
	lo, _ := slices.BinarySearch(ls, first)
	hi, _ := slices.BinarySearch(ls, last+1)
	return ls[lo:hi]
}

// originalTreeHash returns the tree hash of x in the tree modified as §7.9
// describes for original_sibling_tree_hash: each leaf of removed (sorted)
// is blanked and dropped from the unmerged leaves of every parent. Only
// the nodes above removed leaves are hashed anew.
func (t *ratchetTree) originalTreeHash(x nodeIndex, removed []leafIndex) []byte {
	removed = leavesUnder(removed, x)
	if len(removed) == 0 {
		return t.hashOf(x)
	}
	if x.isLeaf() {
		return t.leafHash(x.leaf(), nil)
	}
	p := t.node(x).parent
	if p != nil {
		q := *p
		q.UnmergedLeaves = slices.DeleteFunc(slices.Clone(p.UnmergedLeaves), func(l leafIndex) bool {
			_, found := slices.BinarySearch(removed, l)
			return found
		})
		p = &q
	}
	return t.parentTreeHash(p, t.originalTreeHash(x.left(), removed), t.originalTreeHash(x.right(), removed))
}

// hashParentHashInput hashes ParentHashInput (§7.9).
func (t *ratchetTree) hashParentHashInput(encryptionKey, parentHash, siblingHash []byte) []byte {
	b := cryptobyte.NewBuilder(nil)
	addOpaque(b, encryptionKey)
	addOpaque(b, parentHash)
	addOpaque(b, siblingHash)
	return t.suite.hash(b.BytesOrPanic())
}

// parentHash returns the parent hash of the non-blank parent node p with
// copath child s (§7.9).
func (t *ratchetTree) parentHash(p, s nodeIndex) []byte {
	pn := t.node(p).parent
	unmerged := pn.UnmergedLeaves
	if !slices.IsSorted(unmerged) { // only in a tree that fails validation
		unmerged = slices.Sorted(slices.Values(unmerged))
	}
	return t.hashParentHashInput(pn.EncryptionKey, pn.ParentHash, t.originalTreeHash(s, unmerged))
}

// pathParents builds the parent nodes of an update path (§7.5, §7.9.1):
// for the filtered direct path nodes path (bottom up), with copath
// children copath and new public keys keys, it returns the new parent
// nodes with their parent hashes, and the parent hash the leaf below must
// carry. The hashes are chained from the root down; the topmost node's
// parent hash is empty. The nodes' subtrees on the copath side must
// already be final.
func (t *ratchetTree) pathParents(path, copath []nodeIndex, keys [][]byte) (parents []*ParentNode, leafParentHash []byte) {
	parents = make([]*ParentNode, len(path))
	var above []byte
	for i := len(path) - 1; i >= 0; i-- {
		parents[i] = &ParentNode{EncryptionKey: keys[i], ParentHash: above}
		above = t.hashParentHashInput(keys[i], above, t.hashOf(copath[i]))
	}
	return parents, above
}

// verifyParentHashes checks that every non-blank parent node is
// parent-hash valid (§7.9.2), top down: each must have exactly one
// descendant D whose parent hash is valid with respect to it.
//
// For a parent P and its child C, a valid D must lie in the resolution of
// C, which apart from D must equal P's unmerged leaves under C; so each
// child offers at most one candidate, found without enumerating more of
// the resolution than that.
func (t *ratchetTree) verifyParentHashes() error {
	for x := range nodeIndex(t.width) {
		p := t.node(x).parent
		if p == nil {
			continue
		}
		valid := 0
		for _, c := range [2]nodeIndex{x.left(), x.right()} {
			d, ok := t.parentHashCandidate(p, c)
			if ok && bytes.Equal(t.nodeParentHash(d), t.parentHash(x, c.sibling())) {
				valid++
			}
		}
		if valid != 1 {
			return errorf("parent node %d is not parent-hash valid", x)
		}
	}
	return nil
}

// parentHashCandidate returns the only node D that may be parent-hash
// valid with respect to parent p through its child c (§7.9.2): the one
// node of c's resolution that is not among p's unmerged leaves under c,
// provided the rest of the resolution is exactly those unmerged leaves.
func (t *ratchetTree) parentHashCandidate(p *ParentNode, c nodeIndex) (nodeIndex, bool) {
	var want []nodeIndex
	first, last := subtreeLeafRange(c)
	for _, l := range p.UnmergedLeaves {
		if l >= first && l <= last {
			want = append(want, l.node())
		}
	}
	var res []nodeIndex
	complete := t.walkResolution(c, nil, func(y nodeIndex) bool {
		res = append(res, y)
		return len(res) <= len(want)+1
	})
	if !complete || len(res) != len(want)+1 {
		return 0, false
	}
	slices.Sort(res)
	slices.Sort(want)
	var extra []nodeIndex
	j := 0
	for _, y := range res {
		if j < len(want) && want[j] == y {
			j++
		} else {
			extra = append(extra, y)
		}
	}
	if j != len(want) || len(extra) != 1 {
		return 0, false
	}
	return extra[0], true
}

// nodeParentHash returns the parent_hash field of node x: that of a parent
// node, or of a leaf whose source is commit; nil for any other node.
func (t *ratchetTree) nodeParentHash(x nodeIndex) []byte {
	if int(x) >= t.width { // an unmerged leaf outside an unvalidated tree
		return nil
	}
	n := t.node(x)
	switch {
	case n.parent != nil:
		return n.parent.ParentHash
	case n.leaf != nil && n.leaf.Source == SourceCommit:
		return n.leaf.ParentHash
	}
	return nil
}
