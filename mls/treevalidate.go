package mls

import (
	"bytes"
	"fmt"
	"slices"
)

// Validation of leaf nodes (RFC 9420 §7.3) and of a whole ratchet tree
// received when joining a group (§12.4.3.1).

// validateLeafNode performs the checks of §7.3 that concern one LeafNode
// in the group described by gc, as leaf index i:
//
//   - its leaf_node_source is source (any source when source is 0, as in
//     a received tree);
//   - its signature verifies, with gc.GroupID and i in the signed content
//     for the update and commit sources;
//   - its encryption key is a valid HPKE public key of the suite;
//   - its capabilities cover the protocol version and cipher suite (§11.1),
//     the required_capabilities extension of gc (§11.1), every GroupContext
//     extension (§13.4), its own credential type and its own extensions
//     (§7.2).
//
// The group-wide checks (unique keys, credential types supported by all
// members) are treeKeys'. Credential validation by the Authentication
// Service (§5.3.1) and the lifetime check, which needs a clock, are left
// to the caller.
func validateLeafNode(s *suite, gc *GroupContext, leaf *LeafNode, i leafIndex, source LeafNodeSource) error {
	if source != 0 && leaf.Source != source {
		return errorf("leaf node source is %d, want %d", leaf.Source, source)
	}
	if !leaf.verifySignature(s, gc.GroupID, i) {
		return badSignature(s, leaf.SignatureKey, fmt.Sprintf("leaf node %d", i))
	}
	return checkLeafNode(s, gc, leaf, i)
}

// checkLeafNode performs the checks of validateLeafNode after the source
// and the signature, for a leaf whose source and signature the caller
// has already checked: validateKeyPackage for a KeyPackage's leaf,
// mergeUpdatePath for an UpdatePath's. Each signature is verified once.
func checkLeafNode(s *suite, gc *GroupContext, leaf *LeafNode, i leafIndex) error {
	if s.validatePublicKey(leaf.EncryptionKey) != nil {
		return errorf("invalid encryption key in leaf %d", i)
	}
	caps := &leaf.Capabilities
	if !contains(caps.Versions, gc.Version) || !contains(caps.CipherSuites, gc.CipherSuite) {
		return errorf("leaf %d does not support the group's version and cipher suite", i)
	}
	if data, ok := gc.Extensions.Find(ExtRequiredCapabilities); ok {
		var req RequiredCapabilities
		if err := decode(data, &req, "required_capabilities"); err != nil {
			return err
		}
		if !req.satisfiedBy(caps) {
			return errorf("leaf %d lacks a required capability", i)
		}
	}
	for _, e := range gc.Extensions {
		if !caps.supportsExtension(e.Type) {
			return errorf("leaf %d does not support group context extension 0x%04x", i, uint16(e.Type))
		}
	}
	for _, e := range leaf.Extensions {
		if !caps.supportsExtension(e.Type) {
			return errorf("leaf %d carries extension 0x%04x its capabilities omit", i, uint16(e.Type))
		}
	}
	if !caps.supportsCredential(leaf.Credential.Type) {
		return errorf("leaf %d does not support its own credential type", i)
	}
	return nil
}

// treeKeys indexes a tree's keys and credential types for the group-wide
// checks of §7.3 and §12.4.3.1: encryption keys are unique across all
// nodes, signature keys across leaves, and every member supports every
// credential type in use. The tree keeps it up to date with every change
// (setNode), and it is persistent: a clone of the tree shares it, and each
// change costs O(log n). Checking a leaf or a path's keys against it costs
// O(log n) too, so validating a commit never rescans the tree.
type treeKeys struct {
	encKeys keySet // encryption keys of non-blank nodes, with multiplicity
	sigKeys keySet // signature keys of leaves, with multiplicity
	members int
	// creds counts, per credential type, the members using and the
	// members supporting it. Shared between versions: copied on change.
	creds []credCount
}

type credCount struct {
	typ               CredentialType
	inUse, supporting int
}

// index returns t's key index, building it in O(n) on first use; from
// then on setNode maintains it, and clones share it.
func (t *ratchetTree) index() *treeKeys {
	if !t.indexed {
		var k treeKeys
		for x := range nodeIndex(t.width) {
			n := t.node(x)
			if n.blank() {
				continue
			}
			k.encKeys.insert(n.encryptionKey())
			if n.leaf != nil {
				k.sigKeys.insert(n.leaf.SignatureKey)
				k.count(n.leaf, 1)
			}
		}
		t.keys, t.indexed = k, true
	}
	return &t.keys
}

// replace records that a node changed from old to n.
func (k *treeKeys) replace(old, n node) {
	if old.blank() != n.blank() || !bytes.Equal(old.encryptionKey(), n.encryptionKey()) {
		if !old.blank() {
			k.encKeys = k.encKeys.add(old.encryptionKey(), -1)
		}
		if !n.blank() {
			k.encKeys = k.encKeys.add(n.encryptionKey(), 1)
		}
	}
	if old.leaf == n.leaf {
		return
	}
	if old.leaf != nil {
		k.sigKeys = k.sigKeys.add(old.leaf.SignatureKey, -1)
		k.creds = slices.Clone(k.creds)
		k.count(old.leaf, -1)
	}
	if n.leaf != nil {
		k.sigKeys = k.sigKeys.add(n.leaf.SignatureKey, 1)
		k.creds = slices.Clone(k.creds)
		k.count(n.leaf, 1)
	}
}

// count adds (delta 1) or removes (delta -1) a member's credential type
// and supported credential types, in place.
func (k *treeKeys) count(leaf *LeafNode, delta int) {
	k.members += delta
	k.cred(leaf.Credential.Type).inUse += delta
	for i, c := range leaf.Capabilities.Credentials {
		if !slices.Contains(leaf.Capabilities.Credentials[:i], c) {
			k.cred(c).supporting += delta
		}
	}
}

// cred returns the counts of credential type t, adding them if missing.
func (k *treeKeys) cred(t CredentialType) *credCount {
	i := slices.IndexFunc(k.creds, func(c credCount) bool { return c.typ == t })
	if i < 0 {
		i = len(k.creds)
		k.creds = append(k.creds, credCount{typ: t})
	}
	return &k.creds[i]
}

// counts returns the counts of credential type t.
func (k *treeKeys) counts(t CredentialType) credCount {
	i := slices.IndexFunc(k.creds, func(c credCount) bool { return c.typ == t })
	if i < 0 {
		return credCount{typ: t}
	}
	return k.creds[i]
}

// check verifies that leaf may sit at leaf index i in place of old, the
// leaf now there (nil for a new member): its encryption key appears in no
// node (old's included, §7.3 and §12.4.2), its signature key in no leaf
// but i, every other member supports its credential type, and it supports
// every credential type the other members use.
func (k *treeKeys) check(i leafIndex, leaf, old *LeafNode) error {
	if k.encKeys.count(leaf.EncryptionKey) > 0 {
		return errorf("encryption key of leaf %d is already in the tree", i)
	}
	if n := k.sigKeys.count(leaf.SignatureKey); n > 1 || n == 1 && (old == nil || !bytes.Equal(old.SignatureKey, leaf.SignatureKey)) {
		return errorf("signature key of leaf %d is already used by another leaf", i)
	}
	members, supporting := k.members, k.counts(leaf.Credential.Type).supporting
	if old != nil {
		members--
		if old.Capabilities.supportsCredential(leaf.Credential.Type) {
			supporting--
		}
	}
	if supporting != members {
		return errorf("credential type of leaf %d is not supported by all members", i)
	}
	for _, c := range k.creds {
		n := c.inUse
		if old != nil && old.Credential.Type == c.typ {
			n--
		}
		if n > 0 && !leaf.Capabilities.supportsCredential(c.typ) {
			return errorf("leaf %d does not support credential type %d in use", i, c.typ)
		}
	}
	return nil
}

// checkUnique verifies that no two nodes of t share an encryption key and
// no two leaves a signature key (§12.4.3.1).
func (t *ratchetTree) checkUnique() error {
	k := t.index()
	for x := range nodeIndex(t.width) {
		n := t.node(x)
		if n.blank() {
			continue
		}
		if k.encKeys.count(n.encryptionKey()) > 1 {
			return errorf("encryption key of node %d is not unique", x)
		}
		if n.leaf != nil && k.sigKeys.count(n.leaf.SignatureKey) > 1 {
			return errorf("signature key of leaf %d is not unique", x.leaf())
		}
	}
	return nil
}

// validate checks a ratchet tree received when joining the group whose
// context is gc, as §12.4.3.1 requires before the tree is used:
//
//   - the cipher suite is the group's and the tree hash is gc.TreeHash;
//   - every non-blank parent node is parent-hash valid (§7.9.2);
//   - unmerged leaves are sorted, name non-blank leaves below the node, and
//     appear at every non-blank node between the leaf and the node;
//   - encryption keys are unique across all nodes, signature keys across
//     leaves;
//   - every leaf passes validateLeafNode, with any source, and supports
//     the credential types of all the others.
func (t *ratchetTree) validate(gc *GroupContext) error {
	if gc.CipherSuite != t.suite.id {
		return errorf("ratchet tree for the wrong cipher suite")
	}
	if !bytes.Equal(t.treeHash(), gc.TreeHash) {
		return errorf("ratchet tree does not match the tree hash")
	}
	if err := t.verifyUnmergedLeaves(); err != nil {
		return err
	}
	if err := t.verifyParentHashes(); err != nil {
		return err
	}
	if err := t.checkUnique(); err != nil {
		return err
	}
	// The leaves' signatures are most of the cost of joining a large
	// group: they are checked in parallel, and the error reported is that
	// of the first invalid leaf, as if they were checked in order.
	k := t.index()
	return parallel(int(t.numLeaves()), func(i int) error {
		leaf := t.leaf(leafIndex(i))
		if leaf == nil {
			return nil
		}
		if err := validateLeafNode(t.suite, gc, leaf, leafIndex(i), 0); err != nil {
			return err
		}
		if k.counts(leaf.Credential.Type).supporting != k.members {
			return errorf("credential type of leaf %d is not supported by all members", i)
		}
		return nil
	})
}

// verifyUnmergedLeaves checks the unmerged_leaves of every parent node
// (§7.1, §12.4.3.1).
func (t *ratchetTree) verifyUnmergedLeaves() error {
	for x := range nodeIndex(t.width) {
		if n := t.node(x); n.parent != nil && !isStrictlyIncreasing(n.parent.UnmergedLeaves) {
			return errorf("unmerged leaves of node %d are not sorted", x)
		}
	}
	for p := range nodeIndex(t.width) {
		n := t.node(p)
		if n.parent == nil {
			continue
		}
		first, last := subtreeLeafRange(p)
		for _, l := range n.parent.UnmergedLeaves {
			if l < first || l > last || t.leaf(l) == nil {
				return errorf("unmerged leaf %d of node %d is blank or not below it", l, p)
			}
			for y := l.node().parent(); y != p; y = y.parent() {
				if q := t.node(y).parent; q != nil {
					if _, found := slices.BinarySearch(q.UnmergedLeaves, l); !found {
						return errorf("unmerged leaf %d of node %d is missing at node %d", l, p, y)
					}
				}
			}
		}
	}
	return nil
}

func isStrictlyIncreasing(ls []leafIndex) bool {
	for k := 1; k < len(ls); k++ {
		if ls[k] <= ls[k-1] {
			return false
		}
	}
	return true
}
