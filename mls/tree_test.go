package mls

import (
	"bytes"
	"errors"
	"maps"
	"slices"
	"testing"
)

type treeValidationVector struct {
	CipherSuite uint16     `json:"cipher_suite"`
	Tree        hexBytes   `json:"tree"`
	GroupID     hexBytes   `json:"group_id"`
	Resolutions [][]uint32 `json:"resolutions"`
	TreeHashes  []hexBytes `json:"tree_hashes"`
}

// TestTreeValidationVectors checks, for each tree of tree-validation.json,
// the resolution and tree hash of every node, and that the tree validates
// as on joining (parent hashes, leaf signatures with the group id, and the
// other checks of §12.4.3.1). It also checks that the tree re-encodes to
// the same bytes.
func TestTreeValidationVectors(t *testing.T) {
	var vs []treeValidationVector
	loadVectors(t, "tree-validation.json", &vs)
	tally := newTally(t, "tree-validation")
	for _, v := range vs {
		t.Run("", func(t *testing.T) {
			defer tally.record(t)
			s := suiteOrSkip(t, v.CipherSuite)
			tree, err := decodeRatchetTree(s, v.Tree)
			if err != nil {
				t.Fatal(err)
			}
			if got := mustEncode(tree); !bytes.Equal(got, v.Tree) {
				t.Errorf("re-encoded tree differs")
			}
			if len(v.Resolutions) != tree.width || len(v.TreeHashes) != tree.width {
				t.Fatalf("tree has %d nodes, vector %d resolutions and %d hashes",
					tree.width, len(v.Resolutions), len(v.TreeHashes))
			}
			for x := range nodeIndex(tree.width) {
				var want []nodeIndex
				for _, r := range v.Resolutions[x] {
					want = append(want, nodeIndex(r))
				}
				if got := tree.resolution(x, nil); !slices.Equal(got, want) {
					t.Errorf("resolution(%d) = %v, want %v", x, got, want)
				}
				if got := tree.hashOf(x); !bytes.Equal(got, v.TreeHashes[x]) {
					t.Errorf("tree hash of node %d differs", x)
				}
			}
			if err := tree.validate(vectorGroupContext(s, v.GroupID, 0, nil, tree)); err != nil {
				t.Errorf("validate: %v", err)
			}
		})
	}
}

// vectorGroupContext is the GroupContext the tree vectors imply: empty
// extensions and the tree hash of tree.
func vectorGroupContext(s *suite, groupID []byte, epoch uint64, cth []byte, tree *ratchetTree) *GroupContext {
	return &GroupContext{
		Version: MLS10, CipherSuite: s.id, GroupID: groupID, Epoch: epoch,
		TreeHash: tree.treeHash(), ConfirmedTranscriptHash: cth,
	}
}

// loadValidationTrees returns the decoded trees of tree-validation.json for
// suite 1 with their group ids, for tests that need realistic trees.
func loadValidationTrees(t *testing.T) ([]*ratchetTree, [][]byte) {
	var vs []treeValidationVector
	loadVectors(t, "tree-validation.json", &vs)
	var trees []*ratchetTree
	var ids [][]byte
	for _, v := range vs {
		if v.CipherSuite != 1 {
			continue
		}
		tree, err := decodeRatchetTree(suites[1], v.Tree)
		if err != nil {
			t.Fatal(err)
		}
		trees = append(trees, tree)
		ids = append(ids, v.GroupID)
	}
	return trees, ids
}

// TestTreeValidationRejects tampers with valid trees and checks that
// validation catches each change.
func TestTreeValidationRejects(t *testing.T) {
	trees, ids := loadValidationTrees(t)
	tree, id := trees[len(trees)-1], ids[len(ids)-1] // unmerged leaves and skipped blanks
	gc := vectorGroupContext(tree.suite, id, 0, nil, tree)
	if err := tree.validate(gc); err != nil {
		t.Fatal(err)
	}
	firstParent := func(tr *ratchetTree, withUnmerged bool) nodeIndex {
		for x := range nodeIndex(tr.width) {
			if n := tr.node(x); n.parent != nil && (!withUnmerged || len(n.parent.UnmergedLeaves) > 0) {
				return x
			}
		}
		t.Fatal("no such parent node")
		return 0
	}
	cases := []struct {
		name   string
		tamper func(tr *ratchetTree)
	}{
		{"parent hash", func(tr *ratchetTree) {
			x := firstParent(tr, false)
			p := *tr.node(x).parent
			p.ParentHash = append(bytes.Clone(p.ParentHash), 0)
			tr.setNode(x, node{parent: &p})
		}},
		{"parent key", func(tr *ratchetTree) {
			x := firstParent(tr, false)
			p := *tr.node(x).parent
			p.EncryptionKey = tr.leaf(0).EncryptionKey
			tr.setNode(x, node{parent: &p})
		}},
		{"unmerged leaf dropped", func(tr *ratchetTree) {
			x := firstParent(tr, true)
			p := *tr.node(x).parent
			p.UnmergedLeaves = p.UnmergedLeaves[1:]
			tr.setNode(x, node{parent: &p})
		}},
		{"unmerged leaves unsorted", func(tr *ratchetTree) {
			x := firstParent(tr, true)
			p := *tr.node(x).parent
			p.UnmergedLeaves = append(slices.Clone(p.UnmergedLeaves), p.UnmergedLeaves[0])
			tr.setNode(x, node{parent: &p})
		}},
		{"leaf signature", func(tr *ratchetTree) {
			l := tr.leaf(0).clone()
			l.Signature[0] ^= 1
			tr.setNode(0, node{leaf: l})
		}},
		{"duplicate signature key", func(tr *ratchetTree) {
			l := tr.leaf(1).clone()
			l.SignatureKey = tr.leaf(0).SignatureKey
			tr.setNode(2, node{leaf: l})
		}},
		{"blank leaf", func(tr *ratchetTree) {
			tr.blankLeaf(1)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tr := tree.clone()
			c.tamper(tr)
			gc := vectorGroupContext(tr.suite, id, 0, nil, tr)
			if err := tr.validate(gc); !errors.Is(err, ErrInvalid) {
				t.Errorf("validate = %v, want an ErrInvalid", err)
			}
		})
	}
	t.Run("tree hash", func(t *testing.T) {
		bad := *gc
		bad.TreeHash = bytes.Clone(gc.TreeHash)
		bad.TreeHash[0] ^= 1
		if err := tree.validate(&bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("validate = %v, want an ErrInvalid", err)
		}
	})
	t.Run("required capability", func(t *testing.T) {
		req := mustEncode(&RequiredCapabilities{Extensions: []ExtensionType{0xff00}})
		bad := *gc
		bad.Extensions = Extensions{{Type: ExtRequiredCapabilities, Data: req}}
		if err := tree.validate(&bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("validate = %v, want an ErrInvalid", err)
		}
	})
}

type treeOperationsVector struct {
	CipherSuite    uint16   `json:"cipher_suite"`
	TreeBefore     hexBytes `json:"tree_before"`
	Proposal       hexBytes `json:"proposal"`
	ProposalSender uint32   `json:"proposal_sender"`
	TreeHashBefore hexBytes `json:"tree_hash_before"`
	TreeAfter      hexBytes `json:"tree_after"`
	TreeHashAfter  hexBytes `json:"tree_hash_after"`
}

// TestTreeOperationsVectors applies each Add, Update or Remove proposal of
// tree-operations.json to tree_before and compares the resulting tree and
// the tree hashes before and after.
func TestTreeOperationsVectors(t *testing.T) {
	var vs []treeOperationsVector
	loadVectors(t, "tree-operations.json", &vs)
	tally := newTally(t, "tree-operations")
	for _, v := range vs {
		t.Run("", func(t *testing.T) {
			defer tally.record(t)
			s := suiteOrSkip(t, v.CipherSuite)
			tree, err := decodeRatchetTree(s, v.TreeBefore)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(tree.treeHash(), v.TreeHashBefore) {
				t.Error("tree hash before differs")
			}
			var p Proposal
			if err := decode(v.Proposal, &p, "Proposal"); err != nil {
				t.Fatal(err)
			}
			switch p.Type {
			case ProposalAdd:
				tree.addLeaf(&p.Add.KeyPackage.LeafNode)
			case ProposalUpdate:
				err = tree.updateLeaf(leafIndex(v.ProposalSender), &p.Update.LeafNode)
			case ProposalRemove:
				err = tree.removeLeaf(leafIndex(p.Remove.Removed))
			default:
				t.Fatalf("unexpected proposal type %d", p.Type)
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(mustEncode(tree), v.TreeAfter) {
				t.Error("tree after differs")
			}
			if !bytes.Equal(tree.treeHash(), v.TreeHashAfter) {
				t.Error("tree hash after differs")
			}
			assertFreshHash(t, tree)
		})
	}
}

// TestRatchetTreeDecodeStrict checks the ratchet_tree decoding rules of
// §12.4.3.3.
func TestRatchetTreeDecodeStrict(t *testing.T) {
	trees, _ := loadValidationTrees(t)
	good := mustEncode(trees[0])
	s := suites[1]
	if _, err := decodeRatchetTree(s, good); err != nil {
		t.Fatal(err)
	}
	withBody := func(body []byte) []byte {
		var b []byte
		b = append(b, byte(len(body)>>8)|0x40, byte(len(body)))
		return append(b, body...)
	}
	body := good[2:] // trees[0] is larger than 63 bytes: 2-byte length
	cases := map[string][]byte{
		"empty":          {0x00},
		"trailing blank": withBody(append(bytes.Clone(body), 0x00)),
		"trailing bytes": append(bytes.Clone(good), 0x00),
		"truncated":      good[:len(good)-1],
		"bad presence":   withBody(append([]byte{0x02}, body[1:]...)),
		"parent at leaf": withBody(append([]byte{0x01, nodeTypeParent}, body[2:]...)),
		"bad node type":  withBody(append([]byte{0x01, 0x03}, body[2:]...)),
		"blank only":     {0x01, 0x00},
	}
	for name, data := range cases {
		if _, err := decodeRatchetTree(s, data); !errors.Is(err, ErrDecode) {
			t.Errorf("%s: decode = %v, want ErrDecode", name, err)
		}
	}
}

// TestTreeOperations exercises adding, updating and removing leaves on
// their own: placement, unmerged leaves, truncation, tree hash caching and
// clone independence.
func TestTreeOperations(t *testing.T) {
	s := suites[1]
	tree := newRatchetTree(s, testLeaf(t, s, 0))
	for i := 1; i < 5; i++ {
		if got := tree.addLeaf(testLeaf(t, s, i)); got != leafIndex(i) {
			t.Fatalf("member %d added at leaf %d", i, got)
		}
	}
	if n := tree.numLeaves(); n != 8 {
		t.Fatalf("numLeaves = %d, want 8", n)
	}
	// A parent node on leaf 5's path collects it as unmerged.
	tree.setNode(11, node{parent: &ParentNode{EncryptionKey: []byte("k11"), UnmergedLeaves: []leafIndex{4}}})
	tree.setNode(7, node{parent: &ParentNode{EncryptionKey: []byte("k7")}})
	if got := tree.addLeaf(testLeaf(t, s, 5)); got != 5 {
		t.Fatalf("added at %d, want 5", got)
	}
	if got := tree.parentNode(11).UnmergedLeaves; !slices.Equal(got, []leafIndex{4, 5}) {
		t.Errorf("unmerged at 11 = %v", got)
	}
	if got := tree.parentNode(7).UnmergedLeaves; !slices.Equal(got, []leafIndex{5}) {
		t.Errorf("unmerged at 7 = %v", got)
	}

	staged := tree.clone()
	before := tree.treeHash()
	if err := staged.removeLeaf(2); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(tree.treeHash(), before) || tree.leaf(2) == nil || tree.parentNode(7) == nil {
		t.Fatal("changing a clone changed the original")
	}
	if staged.parentNode(7) != nil || staged.leaf(2) != nil {
		t.Error("remove did not blank the leaf and its direct path")
	}
	if got := staged.addLeaf(testLeaf(t, s, 6)); got != 2 {
		t.Errorf("re-added at %d, want the freed leaf 2", got)
	}
	assertFreshHash(t, staged)

	if err := staged.removeLeaf(5); err != nil {
		t.Fatal(err)
	}
	if err := staged.removeLeaf(4); err != nil {
		t.Fatal(err)
	}
	if n := staged.numLeaves(); n != 4 {
		t.Errorf("after removing leaves 4 and 5, numLeaves = %d, want 4", n)
	}
	assertFreshHash(t, staged)
	if err := staged.removeLeaf(4); err == nil {
		t.Error("removing a leaf outside the tree succeeded")
	}
	if err := staged.updateLeaf(1, testLeaf(t, s, 7)); err != nil {
		t.Fatal(err)
	}
	if staged.parentNode(1) != nil || staged.parentNode(3) != nil {
		t.Error("update did not blank the direct path")
	}
	assertFreshHash(t, staged)
	for _, i := range []leafIndex{0, 1, 2} {
		if err := staged.removeLeaf(i); err != nil {
			t.Fatal(err)
		}
	}
	if n := staged.numLeaves(); n != 4 || staged.leaf(3) == nil {
		t.Errorf("numLeaves = %d, want 4 with leaf 3 kept", n)
	}
	if err := staged.removeLeaf(3); err != nil {
		t.Fatal(err)
	}
	if n := staged.numLeaves(); n != 1 {
		t.Errorf("numLeaves of an empty tree = %d, want 1", n)
	}
}

// assertFreshHash checks the cached tree hash against one computed from
// scratch after a round trip through the encoding.
func assertFreshHash(t *testing.T, tree *ratchetTree) {
	t.Helper()
	fresh, err := decodeRatchetTree(tree.suite, mustEncode(tree))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(tree.treeHash(), fresh.treeHash()) {
		t.Error("cached tree hash differs from a fresh computation")
	}
}

// testLeaf returns a signed key_package LeafNode for test member i.
func testLeaf(t testing.TB, s *suite, i int) *LeafNode {
	t.Helper()
	_, encPub, err := s.generateKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	sigPriv, sigPub, err := s.sig.generate()
	if err != nil {
		t.Fatal(err)
	}
	l := &LeafNode{
		EncryptionKey: encPub,
		SignatureKey:  sigPub,
		Credential:    BasicCredential([]byte{byte(i >> 8), byte(i)}),
		Capabilities: Capabilities{
			Versions: []ProtocolVersion{MLS10}, CipherSuites: []CipherSuite{s.id},
			Credentials: []CredentialType{CredentialBasic},
		},
		Source:   SourceKeyPackage,
		Lifetime: Lifetime{NotBefore: 0, NotAfter: 1 << 62},
	}
	if err := l.sign(s, sigPriv, nil, 0); err != nil {
		t.Fatal(err)
	}
	return l
}

// FuzzRatchetTree decodes arbitrary ratchet_tree data: decoding must never
// panic, and whatever decodes must re-encode to the same bytes and survive
// hashing, resolution and validation without panicking.
func FuzzRatchetTree(f *testing.F) {
	s := suites[1]
	f.Fuzz(func(t *testing.T, data []byte) {
		tree, err := decodeRatchetTree(s, data)
		if err != nil {
			return
		}
		if got := mustEncode(tree); !bytes.Equal(got, data) {
			t.Fatalf("re-encoding differs")
		}
		tree.resolution(tree.root(), nil)
		tree.filteredDirectPath(0)
		_ = tree.validate(&GroupContext{Version: MLS10, CipherSuite: s.id, TreeHash: tree.treeHash()})
	})
}

// checkIndex compares the key index t maintains with one built afresh.
func checkIndex(t *testing.T, name string, tr *ratchetTree) {
	t.Helper()
	fresh := *tr
	fresh.indexed = false
	want, got := fresh.index(), tr.index()
	creds := func(k *treeKeys) map[CredentialType]credCount {
		m := map[CredentialType]credCount{}
		for _, c := range k.creds {
			if c.inUse != 0 || c.supporting != 0 {
				m[c.typ] = c
			}
		}
		return m
	}
	if !maps.Equal(keySetCounts(got.encKeys), keySetCounts(want.encKeys)) ||
		!maps.Equal(keySetCounts(got.sigKeys), keySetCounts(want.sigKeys)) ||
		got.members != want.members || !maps.Equal(creds(got), creds(want)) {
		t.Errorf("%s: maintained key index differs from a fresh one", name)
	}
}

// TestTreeCopyOnWrite changes clones of a tree — adds, removes that
// truncate it, update paths, clones of clones — and checks that the
// original never changes, and that each tree's cached hashes and key index
// match those of a tree decoded from its encoding.
func TestTreeCopyOnWrite(t *testing.T) {
	s := suites[1]
	g := newTreeKEMGroup(t, s, 70) // 128 leaves, several chunks
	orig := g.tree
	orig.index()
	encoded, hash := mustEncode(orig), bytes.Clone(orig.treeHash())
	check := func(name string, tr *ratchetTree) {
		t.Helper()
		decoded, err := decodeRatchetTree(s, mustEncode(tr))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(decoded.treeHash(), tr.treeHash()) {
			t.Errorf("%s: cached tree hash is stale", name)
		}
		checkIndex(t, name, tr)
		if !bytes.Equal(mustEncode(orig), encoded) || !bytes.Equal(orig.treeHash(), hash) {
			t.Fatalf("%s: the original tree changed", name)
		}
		checkIndex(t, name+", original", orig)
	}

	a := orig.clone()
	for i := 70; i < 80; i++ {
		leaf, _, _ := newTestMember(t, s, i)
		a.addLeaf(leaf)
	}
	if _, err := a.createUpdatePath(5, a.leaf(5), g.sigKeys[5], g.groupID); err != nil {
		t.Fatal(err)
	}
	check("adds and a path", a)

	// A tree that changes after being cloned, in chunks it had copied
	// before, leaves the clone alone.
	snapshot := a.clone()
	before := mustEncode(snapshot)
	if _, err := a.createUpdatePath(5, a.leaf(5), g.sigKeys[5], g.groupID); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(mustEncode(snapshot), before) {
		t.Error("changing a tree changed its clone")
	}
	check("snapshot", snapshot)

	b := a.clone()
	for i := 79; i >= 60; i-- {
		if err := b.removeLeaf(leafIndex(i)); err != nil {
			t.Fatal(err)
		}
	}
	if b.numLeaves() != 64 {
		t.Fatalf("%d leaves after truncation, want 64", b.numLeaves())
	}
	check("removes", b)
	check("adds and a path, after a clone changed", a)

	// Growing again after a truncation reuses the tail of the last chunk.
	for i := 80; i < 90; i++ {
		leaf, _, _ := newTestMember(t, s, i)
		b.addLeaf(leaf)
	}
	if _, err := b.createUpdatePath(62, b.leaf(62), g.sigKeys[62], g.groupID); err != nil {
		t.Fatal(err)
	}
	check("regrown", b)

	small := newRatchetTree(s, orig.leaf(0))
	small.index()
	c := small.clone()
	leaf, _, _ := newTestMember(t, s, 100)
	c.addLeaf(leaf)
	if small.numLeaves() != 1 || small.index().members != 1 || c.index().members != 2 {
		t.Error("extending a clone changed a one-leaf tree")
	}
	checkIndex(t, "one leaf extended", c)
}
