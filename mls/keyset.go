package mls

import (
	"bytes"
	"hash/maphash"
	"slices"
)

// keySet is a persistent multiset of byte strings (public keys): add
// returns a new set that shares all but O(log n) of its nodes with the old
// one, and the old one stays valid. That lets a ratchet tree and its
// clones each keep an index of their keys (treeKeys) that costs nothing to
// copy and O(log n) to update, so that checking a commit's new keys for
// uniqueness (§7.3, §12.4.2) does not depend on the size of the group.
//
// It is a hash trie: 16 ways per level on a 64-bit maphash of the key,
// with buckets of up to keyBucketSize entries at the bottom. The seed is
// random per process, so the shape of the trie cannot be steered by
// choosing keys. The zero value is the empty set. The set keeps the key
// slices it is given, which must not change: the keys of tree nodes,
// which are never modified in place.
type keySet struct {
	root *keyNode
}

// keyNode is an inner node (children set) or a bucket (entries). Nodes
// reachable from a published set are never modified.
type keyNode struct {
	children *[16]*keyNode
	entries  []keyEntry
}

type keyEntry struct {
	hash  uint64
	key   []byte
	count int
}

// keyBucketSize is the most entries a bucket holds before it is split (a
// bucket at the last level, where every hash bit is used, holds more).
const keyBucketSize = 8

var keySeed = maphash.MakeSeed()

func keyHash(key []byte) uint64 { return maphash.Bytes(keySeed, key) }

// slot is the child index of hash h at the level that uses bits shift and up.
func slot(h uint64, shift uint) int { return int(h >> shift & 15) }

// count returns how many times key is in s.
func (s keySet) count(key []byte) int {
	h := keyHash(key)
	n := s.root
	for shift := uint(0); n != nil && n.children != nil; shift += 4 {
		n = n.children[slot(h, shift)]
	}
	if n == nil {
		return 0
	}
	for _, e := range n.entries {
		if e.hash == h && bytes.Equal(e.key, key) {
			return e.count
		}
	}
	return 0
}

// add returns s with delta added to the count of key (a key whose count
// drops to zero leaves the set). s is unchanged.
func (s keySet) add(key []byte, delta int) keySet {
	return keySet{root: s.root.with(keyHash(key), 0, key, delta)}
}

// with returns a copy of the subtrie n (nil when empty), at the level of
// shift, with delta added to key's count; only the nodes on key's path are
// copied.
func (n *keyNode) with(h uint64, shift uint, key []byte, delta int) *keyNode {
	if n != nil && n.children != nil {
		children := *n.children
		i := slot(h, shift)
		children[i] = children[i].with(h, shift+4, key, delta)
		return &keyNode{children: &children}
	}
	var entries []keyEntry
	if n != nil {
		entries = n.entries
	}
	k := slices.IndexFunc(entries, func(e keyEntry) bool { return e.hash == h && bytes.Equal(e.key, key) })
	switch {
	case k < 0:
		entries = append(slices.Clip(entries), keyEntry{hash: h, key: key, count: delta})
	case entries[k].count+delta == 0:
		entries = slices.Delete(slices.Clone(entries), k, k+1)
	default:
		entries = slices.Clone(entries)
		entries[k].count += delta
	}
	switch {
	case len(entries) == 0:
		return nil
	case len(entries) > keyBucketSize && shift < 64:
		return splitBucket(entries, shift)
	}
	return &keyNode{entries: entries}
}

// splitBucket turns the entries of an overfull bucket at the level of
// shift into an inner node, splitting its children further as needed.
func splitBucket(entries []keyEntry, shift uint) *keyNode {
	var children [16]*keyNode
	for _, e := range entries {
		i := slot(e.hash, shift)
		if children[i] == nil {
			children[i] = new(keyNode)
		}
		children[i].entries = append(children[i].entries, e)
	}
	for i, c := range children {
		if c != nil && len(c.entries) > keyBucketSize && shift+4 < 64 {
			children[i] = splitBucket(c.entries, shift+4)
		}
	}
	return &keyNode{children: &children}
}

// insert adds key once to a set under construction, in place: no other
// set may share s's nodes. It builds an index in O(n) without the copies
// that add makes to keep earlier versions intact.
func (s *keySet) insert(key []byte) {
	h := keyHash(key)
	p := &s.root
	shift := uint(0)
	for *p != nil && (*p).children != nil {
		p = &(*p).children[slot(h, shift)]
		shift += 4
	}
	if *p == nil {
		*p = new(keyNode)
	}
	b := *p
	for i := range b.entries {
		if e := &b.entries[i]; e.hash == h && bytes.Equal(e.key, key) {
			e.count++
			return
		}
	}
	b.entries = append(b.entries, keyEntry{hash: h, key: key, count: 1})
	if len(b.entries) > keyBucketSize && shift < 64 {
		*p = splitBucket(b.entries, shift)
	}
}
