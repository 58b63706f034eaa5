package mls

import "math/bits"

// Tree math for the left-balanced binary tree of RFC 9420 §4.1 and
// Appendix C, in the array representation: leaves sit at even node indices,
// parents at odd ones, and a tree with n leaves (n a power of two) has
// 2n-1 nodes.

// nodeIndex is an index into the array representation of the tree.
type nodeIndex uint32

// leafIndex is the index of a leaf among the leaves (node index / 2).
type leafIndex uint32

func (l leafIndex) node() nodeIndex { return nodeIndex(2 * l) }

func (x nodeIndex) isLeaf() bool { return x&1 == 0 }

func (x nodeIndex) leaf() leafIndex { return leafIndex(x / 2) }

// level is the number of trailing one bits: 0 for leaves.
func (x nodeIndex) level() uint { return uint(bits.TrailingZeros32(^uint32(x))) }

// nodeWidth is the number of nodes in a tree with n leaves.
func nodeWidth(n uint32) uint32 {
	if n == 0 {
		return 0
	}
	return 2*(n-1) + 1
}

// root is the root node of a tree with n leaves.
func root(n uint32) nodeIndex {
	w := nodeWidth(n)
	return nodeIndex(uint32(1)<<(bits.Len32(w)-1) - 1)
}

// left is the left child of the parent node x.
func (x nodeIndex) left() nodeIndex {
	k := x.level()
	return x ^ (1 << (k - 1))
}

// right is the right child of the parent node x.
func (x nodeIndex) right() nodeIndex {
	k := x.level()
	return x ^ (3 << (k - 1))
}

// parent is x's parent, for x not the root.
func (x nodeIndex) parent() nodeIndex {
	k := x.level()
	b := (x >> (k + 1)) & 1
	return (x | (1 << k)) ^ (b << (k + 1))
}

// sibling is x's sibling, for x not the root.
func (x nodeIndex) sibling() nodeIndex {
	p := x.parent()
	if x < p {
		return p.right()
	}
	return p.left()
}

// directPath lists the ancestors of x from its parent up to the root of a
// tree with n leaves.
func directPath(x nodeIndex, n uint32) []nodeIndex {
	r := root(n)
	var d []nodeIndex
	for x != r {
		x = x.parent()
		d = append(d, x)
	}
	return d
}

// copath lists the siblings of x and of each node on its direct path but
// the root.
func copath(x nodeIndex, n uint32) []nodeIndex {
	r := root(n)
	var d []nodeIndex
	for x != r {
		d = append(d, x.sibling())
		x = x.parent()
	}
	return d
}

// isAncestor reports whether a is an ancestor of (or equal to) x.
func (a nodeIndex) isAncestor(x nodeIndex) bool {
	k := a.level()
	return x>>(k+1) == a>>(k+1)
}

// commonAncestor is the lowest node that is an ancestor of both x and y.
func commonAncestor(x, y nodeIndex) nodeIndex {
	lx, ly := x.level()+1, y.level()+1
	if lx <= ly && x>>ly == y>>ly {
		return y
	}
	if ly <= lx && x>>lx == y>>lx {
		return x
	}
	xn, yn := x, y
	k := uint(0)
	for xn != yn {
		xn >>= 1
		yn >>= 1
		k++
	}
	return nodeIndex((uint32(xn) << k) + (1 << (k - 1)) - 1)
}
