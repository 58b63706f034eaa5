package mls

import (
	"bytes"
	"crypto/rand"
	"maps"
	"slices"

	"golang.org/x/crypto/cryptobyte"
)

// TreeKEM (RFC 9420 §7.4–§7.6): creating, merging and decrypting update
// paths, and a member's private view of the tree.
//
// A committer, on a staged clone of the tree to which the commit's
// proposals have been applied:
//
//	p, err := t.createUpdatePath(me, leafTemplate, sigKey, groupID)
//	// build the provisional GroupContext with t.treeHash() (§12.4.1)
//	path, err := p.encrypt(provisionalContext, addedLeaves)
//	// p.commitSecret feeds the key schedule, p.pathSecretFor(joiner) the
//	// Welcome, p.priv replaces the committer's treePrivate; p.wipe() once
//	// the commit secret and path secrets have been used.
//
// A receiver, on a staged clone with the proposals applied:
//
//	err := t.mergeUpdatePath(sender, path, groupID)
//	// build the provisional GroupContext with t.treeHash() (§12.4.2)
//	priv2, commitSecret, err := t.decryptPath(priv, sender, path, addedLeaves, provisionalContext)

// UpdatePathNode is one node of an UpdatePath: the node's new public key
// and its path secret encrypted to each node of the resolution of its
// copath child (§7.6).
type UpdatePathNode struct {
	EncryptionKey       []byte // HPKEPublicKey
	EncryptedPathSecret []HPKECiphertext
}

func (n *UpdatePathNode) marshal(b *cryptobyte.Builder) {
	addOpaque(b, n.EncryptionKey)
	addVector(b, func(b *cryptobyte.Builder) {
		for i := range n.EncryptedPathSecret {
			n.EncryptedPathSecret[i].marshal(b)
		}
	})
}

func (n *UpdatePathNode) unmarshal(s *cryptobyte.String) bool {
	n.EncryptedPathSecret = nil
	return readOpaque(s, &n.EncryptionKey) && readList(s, func(s *cryptobyte.String) bool {
		var c HPKECiphertext
		if !c.unmarshal(s) {
			return false
		}
		n.EncryptedPathSecret = append(n.EncryptedPathSecret, c)
		return true
	})
}

// UpdatePath is the committer's new leaf and the new public keys and
// encrypted path secrets of its filtered direct path, bottom up (§7.6).
type UpdatePath struct {
	LeafNode LeafNode
	Nodes    []UpdatePathNode
}

func (p *UpdatePath) marshal(b *cryptobyte.Builder) {
	p.LeafNode.marshal(b)
	addVector(b, func(b *cryptobyte.Builder) {
		for i := range p.Nodes {
			p.Nodes[i].marshal(b)
		}
	})
}

func (p *UpdatePath) unmarshal(s *cryptobyte.String) bool {
	p.Nodes = nil
	return p.LeafNode.unmarshal(s) && readList(s, func(s *cryptobyte.String) bool {
		var n UpdatePathNode
		if !n.unmarshal(s) {
			return false
		}
		p.Nodes = append(p.Nodes, n)
		return true
	})
}

// deriveNodeKeyPair derives the key pair of a node from its path secret
// (§7.4): node_secret = DeriveSecret(path_secret, "node"), then
// KEM.DeriveKeyPair(node_secret).
func deriveNodeKeyPair(s *suite, pathSecret []byte) (priv, pub []byte, err error) {
	nodeSecret := s.deriveSecret(pathSecret, "node")
	defer clear(nodeSecret)
	return s.deriveKeyPair(nodeSecret)
}

// treePrivate is a member's private view of the ratchet tree (§4.2): its
// leaf, the HPKE private key of that leaf, and the private keys it knows
// for parent nodes on its direct path. It is secret; wipe clears it.
type treePrivate struct {
	self  leafIndex
	leaf  []byte
	nodes map[nodeIndex][]byte
}

// newTreePrivate starts the private view of the member at leaf self of t
// from its leaf's HPKE private key, which must match the leaf's public key.
func newTreePrivate(t *ratchetTree, self leafIndex, leafKey []byte) (*treePrivate, error) {
	leaf := t.leaf(self)
	if leaf == nil {
		return nil, errorf("leaf %d is blank", self)
	}
	pub, err := t.suite.hpkePublicFromPrivate(leafKey)
	if err != nil || !bytes.Equal(pub, leaf.EncryptionKey) {
		return nil, errorf("private key does not match leaf %d", self)
	}
	return &treePrivate{self: self, leaf: bytes.Clone(leafKey), nodes: make(map[nodeIndex][]byte)}, nil
}

// keyFor returns the private key of node x, or nil when it is unknown.
func (p *treePrivate) keyFor(x nodeIndex) []byte {
	if x == p.self.node() {
		return p.leaf
	}
	return p.nodes[x]
}

// setNodeSecret sets the private key of parent node x from its path
// secret, checking it against the public key in t.
func (p *treePrivate) setNodeSecret(t *ratchetTree, x nodeIndex, pathSecret []byte) error {
	pn := t.parentNode(x)
	if pn == nil {
		return errorf("path secret for blank node %d", x)
	}
	priv, pub, err := deriveNodeKeyPair(t.suite, pathSecret)
	if err != nil {
		return err
	}
	if !bytes.Equal(pub, pn.EncryptionKey) {
		clear(priv)
		return errorf("path secret does not match node %d", x)
	}
	clear(p.nodes[x])
	p.nodes[x] = priv
	return nil
}

// setPathSecret takes in the path secret a new member receives in a
// Welcome (§12.4.3.1): the secret of the lowest common ancestor of its
// leaf and the committer's. It derives the private keys of that node and
// of the nodes above it on the committer's filtered direct path, checking
// each against the public key in t.
func (p *treePrivate) setPathSecret(t *ratchetTree, committer leafIndex, pathSecret []byte) error {
	if uint32(committer) >= t.numLeaves() || committer == p.self {
		return errorf("invalid committer %d", committer)
	}
	path, _ := t.filteredDirectPath(committer)
	at := slices.Index(path, commonAncestor(p.self.node(), committer.node()))
	if at < 0 {
		return errorf("common ancestor is not on the committer's path")
	}
	secret := bytes.Clone(pathSecret)
	defer func() { clear(secret) }()
	for _, x := range path[at:] {
		if err := p.setNodeSecret(t, x, secret); err != nil {
			return err
		}
		next := t.suite.deriveSecret(secret, "path")
		clear(secret)
		secret = next
	}
	return nil
}

// clone returns a deep copy of p.
func (p *treePrivate) clone() *treePrivate {
	c := &treePrivate{self: p.self, leaf: bytes.Clone(p.leaf), nodes: make(map[nodeIndex][]byte, len(p.nodes))}
	for x, k := range p.nodes {
		c.nodes[x] = bytes.Clone(k)
	}
	return c
}

// wipe clears every private key in p.
func (p *treePrivate) wipe() {
	clear(p.leaf)
	for _, k := range p.nodes {
		clear(k)
	}
	clear(p.nodes)
}

// marshal persists p: the leaf index, the leaf key, then the node keys
// in increasing node order.
func (p *treePrivate) marshal(b *cryptobyte.Builder) {
	b.AddUint32(uint32(p.self))
	addOpaque(b, p.leaf)
	addVector(b, func(b *cryptobyte.Builder) {
		for _, x := range slices.Sorted(maps.Keys(p.nodes)) {
			b.AddUint32(uint32(x))
			addOpaque(b, p.nodes[x])
		}
	})
}

// unmarshal restores p, requiring parent nodes in strictly increasing
// order, all of them above p's leaf. On failure it wipes what it read.
func (p *treePrivate) unmarshal(s *cryptobyte.String) bool {
	var self uint32
	if !s.ReadUint32(&self) || !readOpaque(s, &p.leaf) {
		return false
	}
	p.self, p.nodes = leafIndex(self), make(map[nodeIndex][]byte)
	prev := -1
	ok := readList(s, func(s *cryptobyte.String) bool {
		var x uint32
		var key []byte
		if !s.ReadUint32(&x) || !readOpaque(s, &key) {
			return false
		}
		n := nodeIndex(x)
		if int(x) <= prev || n.isLeaf() || !containsLeaf(n, p.self) {
			clear(key)
			return false
		}
		p.nodes[n], prev = key, int(x)
		return true
	})
	if !ok {
		p.wipe()
	}
	return ok
}

// containsLeaf reports whether leaf l lies in the subtree under x.
func containsLeaf(x nodeIndex, l leafIndex) bool {
	first, last := subtreeLeafRange(x)
	return l >= first && l <= last
}

// pendingPath is an update path being created. Its public part is already
// in the tree: encrypt completes it once the provisional GroupContext,
// which covers the new tree hash, is known (§12.4.1).
type pendingPath struct {
	tree    *ratchetTree
	from    leafIndex
	leaf    *LeafNode
	path    []nodeIndex // filtered direct path, bottom up
	copath  []nodeIndex // copath child of each node of path
	secrets [][]byte    // path secret of each node of path
	// commitSecret is the commit secret of §12.4.1.
	commitSecret []byte
	// priv is the committer's private view after the commit.
	priv *treePrivate
}

// createUpdatePath replaces the leaf and direct path of member from in t
// (§7.4, §7.5): it blanks the direct path, generates a fresh leaf key
// pair and the path secrets and key pairs of the filtered direct path,
// sets the new parent nodes with their parent hashes (§7.9), and installs
// a copy of template as the new leaf with the fresh encryption key, source
// commit and the leaf's parent hash, signed by sigKey with groupID and
// from. Apply the commit's proposals to t first; from may be a blank leaf
// reserved with freeLeaf for an external commit. On error t is unchanged.
func (t *ratchetTree) createUpdatePath(from leafIndex, template *LeafNode, sigKey *SignatureKey, groupID []byte) (*pendingPath, error) {
	if uint32(from) >= t.numLeaves() {
		return nil, errorf("leaf %d is outside the tree", from)
	}
	leafPriv, leafPub, err := t.suite.generateKeyPair()
	if err != nil {
		return nil, err
	}
	p := &pendingPath{tree: t, from: from}
	p.path, p.copath = t.filteredDirectPath(from)
	p.priv = &treePrivate{self: from, leaf: leafPriv, nodes: make(map[nodeIndex][]byte, len(p.path))}
	fail := func(err error) (*pendingPath, error) {
		p.wipe()
		p.priv.wipe()
		return nil, err
	}
	secret := make([]byte, t.suite.nh())
	rand.Read(secret)
	pubs := make([][]byte, len(p.path))
	for i, x := range p.path {
		p.secrets = append(p.secrets, secret)
		if p.priv.nodes[x], pubs[i], err = deriveNodeKeyPair(t.suite, secret); err != nil {
			return fail(err)
		}
		secret = t.suite.deriveSecret(secret, "path")
	}
	p.commitSecret = secret
	parents, leafParentHash := t.pathParents(p.path, p.copath, pubs)
	leaf := template.clone()
	leaf.EncryptionKey, leaf.Source = leafPub, SourceCommit
	leaf.Lifetime, leaf.ParentHash = Lifetime{}, leafParentHash
	tbs := leaf.tbs(groupID, from)
	if tbs == nil {
		return fail(errorf("leaf node cannot be encoded"))
	}
	if leaf.Signature, err = sigKey.signWithLabel("LeafNodeTBS", tbs); err != nil {
		return fail(err)
	}
	p.leaf = leaf
	t.applyPath(from, p.path, parents, leaf)
	return p, nil
}

// applyPath blanks the direct path of leaf from, then installs the parent
// nodes of its filtered direct path and its new leaf (§7.5).
func (t *ratchetTree) applyPath(from leafIndex, path []nodeIndex, parents []*ParentNode, leaf *LeafNode) {
	t.blankDirectPath(from)
	for i, x := range path {
		t.setNode(x, node{parent: parents[i]})
	}
	t.setNode(from.node(), node{leaf: leaf})
}

// encrypt builds the UpdatePath, encrypting each path secret to the
// resolution of its copath child without the members added by the commit
// (§7.6), with context the encoded provisional GroupContext (§12.4.1).
// The encryptions are independent: they run in parallel.
func (p *pendingPath) encrypt(context []byte, added []leafIndex) (*UpdatePath, error) {
	t := p.tree
	excluded := newLeafSet(added)
	up := &UpdatePath{LeafNode: *p.leaf.clone(), Nodes: make([]UpdatePathNode, len(p.path))}
	type seal struct {
		out    *HPKECiphertext
		key    []byte
		secret []byte
	}
	var seals []seal
	for i, x := range p.path {
		n := &up.Nodes[i]
		n.EncryptionKey = t.node(x).parent.EncryptionKey
		res := t.resolution(p.copath[i], excluded)
		n.EncryptedPathSecret = make([]HPKECiphertext, len(res))
		for j, r := range res {
			seals = append(seals, seal{out: &n.EncryptedPathSecret[j], key: t.node(r).encryptionKey(), secret: p.secrets[i]})
		}
	}
	err := parallel(len(seals), func(i int) error {
		s := &seals[i]
		kem, ct, err := t.suite.encryptWithLabel(s.key, "UpdatePathNode", context, s.secret)
		*s.out = HPKECiphertext{KEMOutput: kem, Ciphertext: ct}
		return err
	})
	if err != nil {
		return nil, err
	}
	return up, nil
}

// pathSecretFor returns a copy of the path secret a member added at leaf
// joiner receives in its Welcome (§12.4.1): that of the lowest common
// ancestor of its leaf and the committer's.
func (p *pendingPath) pathSecretFor(joiner leafIndex) ([]byte, bool) {
	at := slices.Index(p.path, commonAncestor(p.from.node(), joiner.node()))
	if at < 0 || joiner == p.from {
		return nil, false
	}
	return bytes.Clone(p.secrets[at]), true
}

// wipe clears the path secrets and the commit secret. The private view
// p.priv is the caller's to keep or wipe.
func (p *pendingPath) wipe() {
	for _, s := range p.secrets {
		clear(s)
	}
	clear(p.commitSecret)
}

// mergeUpdatePath validates the UpdatePath sent by member sender and
// merges its public part into t (§7.5, §12.4.2): the leaf must have source
// commit and a valid signature over groupID and sender, the path must have
// one node per node of the sender's filtered direct path, its public keys
// must be valid, distinct and absent from every node of t, and the leaf's
// parent hash must match the one computed from the path (§7.9.2). The
// rest of §7.3 (checkPathLeaf) is the caller's. Apply the
// commit's proposals to t first; sender may be a blank leaf reserved with
// freeLeaf for an external commit. On error t is unchanged.
func (t *ratchetTree) mergeUpdatePath(sender leafIndex, path *UpdatePath, groupID []byte) error {
	if uint32(sender) >= t.numLeaves() {
		return errorf("update path from leaf %d outside the tree", sender)
	}
	leaf := &path.LeafNode
	if leaf.Source != SourceCommit {
		return errorf("update path leaf node source is %d", leaf.Source)
	}
	if !leaf.verifySignature(t.suite, groupID, sender) {
		return badSignature(t.suite, leaf.SignatureKey, "update path leaf node")
	}
	fdp, copath := t.filteredDirectPath(sender)
	if len(path.Nodes) != len(fdp) {
		return errorf("update path has %d nodes, want %d", len(path.Nodes), len(fdp))
	}
	keys := make([][]byte, len(fdp))
	for i := range path.Nodes {
		keys[i] = path.Nodes[i].EncryptionKey
	}
	if err := t.checkFreshKeys(append([][]byte{leaf.EncryptionKey}, keys...)); err != nil {
		return err
	}
	parents, leafParentHash := t.pathParents(fdp, copath, keys)
	if !bytes.Equal(leafParentHash, leaf.ParentHash) {
		return errorf("update path leaf node has an invalid parent hash")
	}
	t.applyPath(sender, fdp, parents, leaf.clone())
	return nil
}

// checkFreshKeys verifies that keys are valid HPKE public keys, distinct,
// and held by no node of t (§12.4.2).
func (t *ratchetTree) checkFreshKeys(keys [][]byte) error {
	index := t.index()
	for i, k := range keys {
		if t.suite.validatePublicKey(k) != nil {
			return errorf("invalid public key in update path")
		}
		if slices.ContainsFunc(keys[:i], func(o []byte) bool { return bytes.Equal(o, k) }) {
			return errorf("repeated public key in update path")
		}
		if index.encKeys.count(k) > 0 {
			return errorf("update path reuses a public key of the tree")
		}
	}
	return nil
}

// decryptPath recovers the path secrets of the UpdatePath that member
// sender sent and mergeUpdatePath merged into t (§7.5): the receiver priv
// decrypts the secret of the lowest common ancestor of its leaf and the
// sender's, with context the encoded provisional GroupContext, and derives
// the secrets above it, checking every derived public key against the
// path. added lists the members the commit added, who were left out of
// the encryptions (§7.6). It returns the receiver's new private view,
// without the keys of nodes the commit replaced or blanked, and the commit
// secret. priv itself is not modified.
func (t *ratchetTree) decryptPath(priv *treePrivate, sender leafIndex, path *UpdatePath, added []leafIndex, context []byte) (*treePrivate, []byte, error) {
	if priv.self == sender {
		return nil, nil, errorf("cannot decrypt an update path from oneself")
	}
	fdp, copath := t.filteredDirectPath(sender)
	if len(path.Nodes) != len(fdp) {
		return nil, nil, errorf("update path has %d nodes, want %d", len(path.Nodes), len(fdp))
	}
	excluded := newLeafSet(added)
	lca := commonAncestor(priv.self.node(), sender.node())
	at := slices.Index(fdp, lca)
	if at < 0 {
		return nil, nil, errorf("receiver is not below the update path")
	}
	var key []byte
	var ct *HPKECiphertext
	for i := range fdp {
		res := t.resolution(copath[i], excluded)
		cts := path.Nodes[i].EncryptedPathSecret
		if len(cts) != len(res) {
			return nil, nil, errorf("update path node %d has %d ciphertexts, want %d", fdp[i], len(cts), len(res))
		}
		if i != at {
			continue
		}
		for j, r := range res {
			if key = priv.keyFor(r); key != nil {
				ct = &cts[j]
				break
			}
		}
	}
	if key == nil {
		return nil, nil, errorf("no private key for the resolution of node %d", copath[at])
	}
	secret, err := t.suite.decryptWithLabel(key, "UpdatePathNode", context, ct.KEMOutput, ct.Ciphertext)
	if err != nil {
		return nil, nil, err
	}
	next := priv.clone()
	for x, k := range next.nodes {
		if int(x) >= t.width || t.node(x).blank() || containsLeaf(x, sender) {
			clear(k)
			delete(next.nodes, x)
		}
	}
	for i := at; i < len(fdp); i++ {
		if err := next.setNodeSecret(t, fdp[i], secret); err != nil {
			clear(secret)
			next.wipe()
			return nil, nil, err
		}
		s := t.suite.deriveSecret(secret, "path")
		clear(secret)
		secret = s
	}
	return next, secret, nil
}
