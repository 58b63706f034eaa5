package mls

import (
	"bytes"
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
// members) are memberIndex's. Credential validation by the Authentication
// Service (§5.3.1) and the lifetime check, which needs a clock, are left
// to the caller.
func validateLeafNode(s *suite, gc *GroupContext, leaf *LeafNode, i leafIndex, source LeafNodeSource) error {
	if source != 0 && leaf.Source != source {
		return errorf("leaf node source is %d, want %d", leaf.Source, source)
	}
	if !leaf.verifySignature(s, gc.GroupID, i) {
		return errorf("invalid leaf node signature at leaf %d", i)
	}
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

// memberIndex summarises the nodes of a tree for the group-wide checks of
// §7.3 and §12.4.3.1: encryption keys are unique across all nodes,
// signature keys across leaves, and every member supports every credential
// type in use. Built once in O(n), it checks and records a leaf in O(1)
// (for a bounded number of credential types), so validating a commit that
// adds k members costs O(n + k), not O(n·k).
type memberIndex struct {
	encKeys   map[string]nodeIndex
	sigKeys   map[string]leafIndex
	inUse     map[CredentialType]int // members using each credential type
	supported map[CredentialType]int // members supporting each credential type
	members   int
}

// memberIndex indexes the nodes of t. It fails when two nodes share an
// encryption key or two leaves a signature key.
func (t *ratchetTree) memberIndex() (*memberIndex, error) {
	m := &memberIndex{
		// Sized up front: growing them was half the cost of the index,
		// which every received commit builds (docs/BENCHMARKS.md).
		encKeys:   make(map[string]nodeIndex, len(t.nodes)),
		sigKeys:   make(map[string]leafIndex, t.numLeaves()),
		inUse:     make(map[CredentialType]int),
		supported: make(map[CredentialType]int),
	}
	for x, n := range t.nodes {
		if n.blank() {
			continue
		}
		key := string(n.encryptionKey())
		if _, dup := m.encKeys[key]; dup {
			return nil, errorf("encryption key of node %d is not unique", x)
		}
		m.encKeys[key] = nodeIndex(x)
		if n.leaf != nil {
			i := nodeIndex(x).leaf()
			if _, dup := m.sigKeys[string(n.leaf.SignatureKey)]; dup {
				return nil, errorf("signature key of leaf %d is not unique", i)
			}
			m.count(n.leaf, 1)
			m.sigKeys[string(n.leaf.SignatureKey)] = i
		}
	}
	return m, nil
}

// count adds (delta 1) or removes (delta -1) a member's credential type
// and supported credential types.
func (m *memberIndex) count(leaf *LeafNode, delta int) {
	m.members += delta
	m.inUse[leaf.Credential.Type] += delta
	seen := make([]CredentialType, 0, len(leaf.Capabilities.Credentials))
	for _, c := range leaf.Capabilities.Credentials {
		if !slices.Contains(seen, c) {
			seen = append(seen, c)
			m.supported[c] += delta
		}
	}
}

// check verifies that leaf may sit at leaf index i in place of old (nil
// for a new member): its encryption key appears in no node (old's
// included, §7.3 and §12.4.2), its signature key in no leaf but i, every
// other member supports its credential type, and it supports every
// credential type the other members use.
func (m *memberIndex) check(i leafIndex, leaf, old *LeafNode) error {
	if _, dup := m.encKeys[string(leaf.EncryptionKey)]; dup {
		return errorf("encryption key of leaf %d is already in the tree", i)
	}
	if j, dup := m.sigKeys[string(leaf.SignatureKey)]; dup && j != i {
		return errorf("signature key of leaf %d is already used by leaf %d", i, j)
	}
	members, supporting := m.members, m.supported[leaf.Credential.Type]
	if old != nil {
		members--
		if old.Capabilities.supportsCredential(leaf.Credential.Type) {
			supporting--
		}
	}
	if supporting != members {
		return errorf("credential type of leaf %d is not supported by all members", i)
	}
	for t, n := range m.inUse {
		if old != nil && old.Credential.Type == t {
			n--
		}
		if n > 0 && !leaf.Capabilities.supportsCredential(t) {
			return errorf("leaf %d does not support credential type %d in use", i, t)
		}
	}
	return nil
}

// set records that leaf i now holds leaf instead of old (either may be nil
// for an addition or a removal). The caller checks leaf first.
func (m *memberIndex) set(i leafIndex, old, leaf *LeafNode) {
	if old != nil {
		m.count(old, -1)
		delete(m.encKeys, string(old.EncryptionKey))
		delete(m.sigKeys, string(old.SignatureKey))
	}
	if leaf != nil {
		m.count(leaf, 1)
		m.encKeys[string(leaf.EncryptionKey)] = i.node()
		m.sigKeys[string(leaf.SignatureKey)] = i
	}
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
	m, err := t.memberIndex()
	if err != nil {
		return err
	}
	for i := range leafIndex(t.numLeaves()) {
		leaf := t.leaf(i)
		if leaf == nil {
			continue
		}
		if err := validateLeafNode(t.suite, gc, leaf, i, 0); err != nil {
			return err
		}
		if m.supported[leaf.Credential.Type] != m.members {
			return errorf("credential type of leaf %d is not supported by all members", i)
		}
	}
	return nil
}

// verifyUnmergedLeaves checks the unmerged_leaves of every parent node
// (§7.1, §12.4.3.1).
func (t *ratchetTree) verifyUnmergedLeaves() error {
	for x, n := range t.nodes {
		if n.parent != nil && !isStrictlyIncreasing(n.parent.UnmergedLeaves) {
			return errorf("unmerged leaves of node %d are not sorted", x)
		}
	}
	for x, n := range t.nodes {
		if n.parent == nil {
			continue
		}
		p := nodeIndex(x)
		first, last := subtreeLeafRange(p)
		for _, l := range n.parent.UnmergedLeaves {
			if l < first || l > last || t.leaf(l) == nil {
				return errorf("unmerged leaf %d of node %d is blank or not below it", l, p)
			}
			for y := l.node().parent(); y != p; y = y.parent() {
				if q := t.nodes[y].parent; q != nil {
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
