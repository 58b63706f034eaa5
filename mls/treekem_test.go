package mls

import (
	"bytes"
	"errors"
	"slices"
	"strconv"
	"testing"
)

type treeKEMVector struct {
	CipherSuite             uint16   `json:"cipher_suite"`
	GroupID                 hexBytes `json:"group_id"`
	Epoch                   uint64   `json:"epoch"`
	ConfirmedTranscriptHash hexBytes `json:"confirmed_transcript_hash"`
	RatchetTree             hexBytes `json:"ratchet_tree"`
	LeavesPrivate           []struct {
		Index          uint32   `json:"index"`
		EncryptionPriv hexBytes `json:"encryption_priv"`
		SignaturePriv  hexBytes `json:"signature_priv"`
		PathSecrets    []struct {
			Node       uint32   `json:"node"`
			PathSecret hexBytes `json:"path_secret"`
		} `json:"path_secrets"`
	} `json:"leaves_private"`
	UpdatePaths []struct {
		Sender        uint32     `json:"sender"`
		UpdatePath    hexBytes   `json:"update_path"`
		PathSecrets   []hexBytes `json:"path_secrets"`
		CommitSecret  hexBytes   `json:"commit_secret"`
		TreeHashAfter hexBytes   `json:"tree_hash_after"`
	} `json:"update_paths"`
}

// TestTreeKEMVectors runs every check of treekem.json: the private states
// are consistent with the tree; each update path is parent-hash valid,
// merges to tree_hash_after, and decrypts at every other member to the
// given path secret and commit secret; and a new update path generated
// from each sender is processed by every other member to the same commit
// secret.
func TestTreeKEMVectors(t *testing.T) {
	var vs []treeKEMVector
	loadVectors(t, "treekem.json", &vs)
	tally := newTally(t, "treekem")
	for _, v := range vs {
		t.Run("", func(t *testing.T) {
			defer tally.record(t)
			s := suiteOrSkip(t, v.CipherSuite)
			tree, err := decodeRatchetTree(s, v.RatchetTree)
			if err != nil {
				t.Fatal(err)
			}
			privs := make(map[leafIndex]*treePrivate)
			sigKeys := make(map[leafIndex]*SignatureKey)
			for _, lp := range v.LeavesPrivate {
				i := leafIndex(lp.Index)
				priv, err := newTreePrivate(tree, i, lp.EncryptionPriv)
				if err != nil {
					t.Fatalf("leaf %d: %v", i, err)
				}
				for _, ps := range lp.PathSecrets {
					if err := priv.setNodeSecret(tree, nodeIndex(ps.Node), ps.PathSecret); err != nil {
						t.Fatalf("leaf %d: %v", i, err)
					}
				}
				privs[i] = priv
				if sigKeys[i], err = ParseSignatureKey(s.id, lp.SignaturePriv); err != nil {
					t.Fatal(err)
				}
			}
			context := func(tr *ratchetTree) []byte {
				return mustEncode(vectorGroupContext(s, v.GroupID, v.Epoch, v.ConfirmedTranscriptHash, tr))
			}
			for _, u := range v.UpdatePaths {
				sender := leafIndex(u.Sender)
				var path UpdatePath
				if err := decode(u.UpdatePath, &path, "UpdatePath"); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(mustEncode(&path), u.UpdatePath) {
					t.Error("re-encoded UpdatePath differs")
				}
				merged := tree.clone()
				if err := merged.mergeUpdatePath(sender, &path, v.GroupID); err != nil {
					t.Fatalf("merge path from %d: %v", sender, err)
				}
				if !bytes.Equal(merged.treeHash(), u.TreeHashAfter) {
					t.Errorf("path from %d: tree hash after differs", sender)
				}
				ctx := context(merged)
				for j, priv := range privs {
					if j == sender {
						continue
					}
					next, commitSecret, err := merged.decryptPath(priv, sender, &path, nil, ctx)
					if err != nil {
						t.Fatalf("path from %d at %d: %v", sender, j, err)
					}
					if !bytes.Equal(commitSecret, u.CommitSecret) {
						t.Errorf("path from %d at %d: commit secret differs", sender, j)
					}
					wantPriv, _, err := deriveNodeKeyPair(s, u.PathSecrets[j])
					if err != nil {
						t.Fatal(err)
					}
					lca := commonAncestor(j.node(), sender.node())
					if !bytes.Equal(next.nodes[lca], wantPriv) {
						t.Errorf("path from %d at %d: decrypted path secret differs", sender, j)
					}
				}
				checkFreshPath(t, tree, sender, sigKeys[sender], privs, v.GroupID, context)
			}
			for i := range leafIndex(tree.numLeaves()) {
				if _, ok := privs[i]; tree.leaf(i) != nil && !ok {
					t.Errorf("no private state for member %d", i)
				}
			}
		})
	}
}

// checkFreshPath creates a new update path from sender on a copy of tree
// and checks that every other member merges it to the same tree and
// recovers the same commit secret.
func checkFreshPath(t *testing.T, tree *ratchetTree, sender leafIndex, sigKey *SignatureKey,
	privs map[leafIndex]*treePrivate, groupID []byte, context func(*ratchetTree) []byte) {
	t.Helper()
	created := tree.clone()
	p, err := created.createUpdatePath(sender, tree.leaf(sender), sigKey, groupID)
	if err != nil {
		t.Fatal(err)
	}
	defer p.wipe()
	path, err := p.encrypt(context(created), nil)
	if err != nil {
		t.Fatal(err)
	}
	var wire UpdatePath
	if err := decode(mustEncode(path), &wire, "UpdatePath"); err != nil {
		t.Fatal(err)
	}
	merged := tree.clone()
	if err := merged.mergeUpdatePath(sender, &wire, groupID); err != nil {
		t.Fatalf("merge new path from %d: %v", sender, err)
	}
	if !bytes.Equal(mustEncode(merged), mustEncode(created)) || !bytes.Equal(merged.treeHash(), created.treeHash()) {
		t.Fatalf("new path from %d: merged tree differs from the committer's", sender)
	}
	if err := created.verifyParentHashes(); err != nil {
		t.Errorf("new path from %d: %v", sender, err)
	}
	ctx := context(merged)
	for j, priv := range privs {
		if j == sender {
			continue
		}
		next, commitSecret, err := merged.decryptPath(priv, sender, &wire, nil, ctx)
		if err != nil {
			t.Fatalf("new path from %d at %d: %v", sender, j, err)
		}
		if !bytes.Equal(commitSecret, p.commitSecret) {
			t.Errorf("new path from %d at %d: commit secret differs", sender, j)
		}
		lca := commonAncestor(j.node(), sender.node())
		secret, ok := p.pathSecretFor(j)
		if !ok {
			t.Fatalf("no path secret for %d", j)
		}
		joiner := &treePrivate{self: j, nodes: make(map[nodeIndex][]byte)}
		if err := joiner.setPathSecret(merged, sender, secret); err != nil {
			t.Fatalf("Welcome path secret for %d: %v", j, err)
		}
		if !bytes.Equal(joiner.nodes[lca], next.nodes[lca]) || !bytes.Equal(joiner.nodes[merged.root()], next.nodes[merged.root()]) {
			t.Errorf("Welcome path secret for %d derives other keys", j)
		}
	}
}

// treeKEMGroup is a group built only with this package's tree operations,
// in which every member holds its private view.
type treeKEMGroup struct {
	s       *suite
	tree    *ratchetTree
	privs   map[leafIndex]*treePrivate
	sigKeys map[leafIndex]*SignatureKey
	groupID []byte
}

// newTreeKEMGroup builds a group of n members with every parent node set,
// as after each member at an even leaf has committed once. To keep this
// fast for large groups, the commits are not encrypted: the members take
// their new private keys from the committers directly.
func newTreeKEMGroup(t testing.TB, s *suite, n int) *treeKEMGroup {
	t.Helper()
	g := &treeKEMGroup{
		s: s, groupID: []byte("treekem test group"),
		privs: make(map[leafIndex]*treePrivate), sigKeys: make(map[leafIndex]*SignatureKey),
	}
	leafKeys := make([][]byte, n)
	for i := range leafIndex(n) {
		leaf, encPriv, sk := newTestMember(t, s, int(i))
		leafKeys[i], g.sigKeys[i] = encPriv, sk
		if i == 0 {
			g.tree = newRatchetTree(s, leaf)
		} else {
			g.tree.addLeaf(leaf)
		}
	}
	nodeKeys := make(map[nodeIndex][]byte)
	for i := leafIndex(0); int(i) < n; i += 2 {
		p, err := g.tree.createUpdatePath(i, g.tree.leaf(i), g.sigKeys[i], g.groupID)
		if err != nil {
			t.Fatal(err)
		}
		p.wipe()
		leafKeys[i] = p.priv.leaf
		for _, x := range directPath(i.node(), g.tree.numLeaves()) {
			delete(nodeKeys, x)
		}
		for x, k := range p.priv.nodes {
			nodeKeys[x] = k
		}
	}
	for i := range leafIndex(n) {
		priv, err := newTreePrivate(g.tree, i, leafKeys[i])
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range directPath(i.node(), g.tree.numLeaves()) {
			if k, ok := nodeKeys[x]; ok {
				priv.nodes[x] = bytes.Clone(k)
			}
		}
		g.privs[i] = priv
	}
	return g
}

// newTestMember returns a member's leaf node with its HPKE and signature
// private keys.
func newTestMember(t testing.TB, s *suite, i int) (*LeafNode, []byte, *SignatureKey) {
	t.Helper()
	sk, err := GenerateSignatureKey(s.id)
	if err != nil {
		t.Fatal(err)
	}
	encPriv, encPub, err := s.generateKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	leaf := testLeaf(t, s, i)
	leaf.SignatureKey, leaf.EncryptionKey = sk.Public(), encPub
	if err := leaf.sign(s, sk.Bytes(), nil, 0); err != nil {
		t.Fatal(err)
	}
	return leaf, encPriv, sk
}

func (g *treeKEMGroup) context(tr *ratchetTree) []byte {
	return mustEncode(vectorGroupContext(g.s, g.groupID, 1, nil, tr))
}

// commit has member i commit the changes propose makes to the tree, with
// an update path, leaving out the members in added. Every other member
// merges and decrypts the path on its own copy of the tree and must find
// the committer's tree and commit secret. The new members receive their
// path secret as in a Welcome.
func (g *treeKEMGroup) commit(t testing.TB, i leafIndex, added []leafIndex, propose func(*ratchetTree)) {
	t.Helper()
	staged := g.tree.clone()
	propose(staged)
	p, err := staged.createUpdatePath(i, staged.leaf(i), g.sigKeys[i], g.groupID)
	if err != nil {
		t.Fatal(err)
	}
	defer p.wipe()
	ctx := g.context(staged)
	path, err := p.encrypt(ctx, added)
	if err != nil {
		t.Fatal(err)
	}
	next := make(map[leafIndex]*treePrivate)
	for j, priv := range g.privs {
		if j == i || staged.leaf(j) == nil || slices.Contains(added, j) {
			continue
		}
		receiver := g.tree.clone()
		propose(receiver)
		if err := receiver.mergeUpdatePath(i, path, g.groupID); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(receiver.treeHash(), staged.treeHash()) {
			t.Fatalf("member %d merged another tree", j)
		}
		n, commitSecret, err := receiver.decryptPath(priv, i, path, added, g.context(receiver))
		if err != nil {
			t.Fatalf("member %d: %v", j, err)
		}
		if !bytes.Equal(commitSecret, p.commitSecret) {
			t.Fatalf("member %d derived another commit secret", j)
		}
		next[j] = n
	}
	for _, a := range added {
		secret, ok := p.pathSecretFor(a)
		if !ok {
			t.Fatalf("no path secret for new member %d", a)
		}
		if err := g.privs[a].setPathSecret(staged, i, secret); err != nil {
			t.Fatalf("new member %d: %v", a, err)
		}
		next[a] = g.privs[a]
	}
	next[i] = p.priv
	for j, priv := range g.privs {
		if next[j] != priv {
			priv.wipe()
		}
	}
	g.privs, g.tree = next, staged
}

// TestTreeKEMGroup drives a group through commits with update paths mixed
// with adds, an update and removes, checking at each step that all
// members agree on the tree and the commit secret, that the tree
// validates, and that every private state matches the tree and persists.
func TestTreeKEMGroup(t *testing.T) {
	s := suites[2]
	g := newTreeKEMGroup(t, s, 11)
	assertGroupValid(t, g)
	g.commit(t, 5, nil, func(*ratchetTree) {})
	assertGroupValid(t, g)

	// Two members added: left out of the encryptions, they get the path
	// secret of their lowest common ancestor with the committer.
	added := []leafIndex{11, 12} // the leftmost blank leaves
	var joiners []*LeafNode
	for _, a := range added {
		leaf, encPriv, sk := newTestMember(t, s, int(a))
		joiners = append(joiners, leaf)
		g.privs[a] = &treePrivate{self: a, leaf: encPriv, nodes: make(map[nodeIndex][]byte)}
		g.sigKeys[a] = sk
	}
	g.commit(t, 3, added, func(tr *ratchetTree) {
		for k, leaf := range joiners {
			if got := tr.addLeaf(leaf); got != added[k] {
				t.Fatalf("added at %d, want %d", got, added[k])
			}
		}
	})
	assertGroupValid(t, g)

	// A partial commit adds a member without a path: it sits unmerged.
	leaf, encPriv, sk := newTestMember(t, s, 200)
	g.tree = g.tree.clone()
	unmerged := g.tree.addLeaf(leaf)
	g.sigKeys[unmerged] = sk
	var err error
	if g.privs[unmerged], err = newTreePrivate(g.tree, unmerged, encPriv); err != nil {
		t.Fatal(err)
	}
	if len(g.tree.parentNode(g.tree.root()).UnmergedLeaves) != 1 {
		t.Fatal("the new member is not unmerged at the root")
	}
	assertGroupValid(t, g)

	// An update and two removes, committed by another member. The updated
	// member takes its new leaf key before processing the commit.
	newLeaf, newKey, _ := newTestMember(t, s, 4)
	newLeaf.SignatureKey = g.tree.leaf(4).SignatureKey
	if err := newLeaf.sign(s, g.sigKeys[4].Bytes(), nil, 0); err != nil {
		t.Fatal(err)
	}
	g.privs[4].leaf = newKey
	g.commit(t, 1, nil, func(tr *ratchetTree) {
		for _, step := range []error{tr.updateLeaf(4, newLeaf), tr.removeLeaf(9), tr.removeLeaf(added[1])} {
			if step != nil {
				t.Fatal(step)
			}
		}
	})
	assertGroupValid(t, g)
	g.commit(t, unmerged, nil, func(*ratchetTree) {})
	assertGroupValid(t, g)
}

// TestUpdatePathToNewMembersOnly covers a copath subtree that holds only
// members added by the commit: its node stays on the filtered direct path
// but gets no ciphertext, and the new member learns its secret from the
// Welcome path secret alone.
func TestUpdatePathToNewMembersOnly(t *testing.T) {
	s := suites[3]
	g := newTreeKEMGroup(t, s, 8)
	leaf, encPriv, sk := newTestMember(t, s, 8)
	g.privs[8] = &treePrivate{self: 8, leaf: encPriv, nodes: make(map[nodeIndex][]byte)}
	g.sigKeys[8] = sk
	var path *UpdatePath
	staged := g.tree.clone()
	staged.addLeaf(leaf)
	p, err := staged.createUpdatePath(0, staged.leaf(0), g.sigKeys[0], g.groupID)
	if err != nil {
		t.Fatal(err)
	}
	defer p.wipe()
	if path, err = p.encrypt(g.context(staged), []leafIndex{8}); err != nil {
		t.Fatal(err)
	}
	top := path.Nodes[len(path.Nodes)-1]
	if len(path.Nodes) != 4 || len(top.EncryptedPathSecret) != 0 {
		t.Fatalf("path has %d nodes, the root %d ciphertexts; want 4 and 0", len(path.Nodes), len(top.EncryptedPathSecret))
	}
	g.commit(t, 0, []leafIndex{8}, func(tr *ratchetTree) { tr.addLeaf(leaf) })
	assertGroupValid(t, g)
	if g.privs[8].nodes[g.tree.root()] == nil {
		t.Error("the new member did not learn the root key")
	}
}

// assertGroupValid checks that the group's tree validates and that every
// member's private state matches it and survives persistence.
func assertGroupValid(t *testing.T, g *treeKEMGroup) {
	t.Helper()
	gc := vectorGroupContext(g.s, g.groupID, 1, nil, g.tree)
	if err := g.tree.validate(gc); err != nil {
		t.Fatal(err)
	}
	for i, priv := range g.privs {
		if g.tree.leaf(i) == nil {
			t.Errorf("private state for blank leaf %d", i)
			continue
		}
		var restored treePrivate
		if err := decode(mustEncode(priv), &restored, "treePrivate"); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(mustEncode(&restored), mustEncode(priv)) {
			t.Error("private state does not round-trip")
		}
		if _, err := newTreePrivate(g.tree, i, priv.leaf); err != nil {
			t.Error(err)
		}
		for x, k := range priv.nodes {
			pub, err := g.s.hpkePublicFromPrivate(k)
			if err != nil || !bytes.Equal(pub, g.tree.node(x).encryptionKey()) {
				t.Errorf("member %d holds a stale key for node %d", i, x)
			}
		}
		for _, x := range directPath(i.node(), g.tree.numLeaves()) {
			p := g.tree.parentNode(x)
			if p != nil && !slices.Contains(p.UnmergedLeaves, i) && priv.nodes[x] == nil {
				t.Errorf("member %d lacks the key of node %d", i, x)
			}
		}
	}
}

// TestMergeUpdatePathRejects checks that a receiver refuses tampered
// update paths and leaves its tree untouched.
func TestMergeUpdatePathRejects(t *testing.T) {
	s := suites[1]
	g := newTreeKEMGroup(t, s, 6)
	sender := leafIndex(2)
	staged := g.tree.clone()
	p, err := staged.createUpdatePath(sender, staged.leaf(sender), g.sigKeys[sender], g.groupID)
	if err != nil {
		t.Fatal(err)
	}
	defer p.wipe()
	ctx := g.context(staged)
	good, err := p.encrypt(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	copyPath := func() *UpdatePath {
		var c UpdatePath
		if err := decode(mustEncode(good), &c, "UpdatePath"); err != nil {
			t.Fatal(err)
		}
		return &c
	}
	cases := map[string]func(u *UpdatePath){
		"node dropped":     func(u *UpdatePath) { u.Nodes = u.Nodes[1:] },
		"leaf signature":   func(u *UpdatePath) { u.LeafNode.Signature[0] ^= 1 },
		"node key swapped": func(u *UpdatePath) { u.Nodes[0].EncryptionKey = g.tree.leaf(0).EncryptionKey },
		"repeated key":     func(u *UpdatePath) { u.Nodes[0].EncryptionKey = u.Nodes[1].EncryptionKey },
		"invalid key":      func(u *UpdatePath) { u.Nodes[1].EncryptionKey = []byte{1, 2, 3} },
	}
	for name, tamper := range cases {
		u := copyPath()
		tamper(u)
		tr := g.tree.clone()
		before := mustEncode(tr)
		if err := tr.mergeUpdatePath(sender, u, g.groupID); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: merge = %v, want ErrInvalid", name, err)
		}
		if !bytes.Equal(mustEncode(tr), before) {
			t.Errorf("%s: failed merge changed the tree", name)
		}
	}
	// A new, validly signed leaf with a parent hash for another path.
	u := copyPath()
	u.LeafNode.ParentHash = bytes.Clone(u.LeafNode.ParentHash)
	u.LeafNode.ParentHash[0] ^= 1
	if err := u.LeafNode.sign(s, g.sigKeys[sender].Bytes(), g.groupID, sender); err != nil {
		t.Fatal(err)
	}
	if err := g.tree.clone().mergeUpdatePath(sender, u, g.groupID); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad parent hash: merge = %v, want ErrInvalid", err)
	}
	// Decryption fails with a wrong context or a dropped ciphertext.
	if _, _, err := staged.decryptPath(g.privs[0], sender, good, nil, append(bytes.Clone(ctx), 0)); err == nil {
		t.Error("decryption with the wrong group context succeeded")
	}
	u = copyPath()
	u.Nodes[len(u.Nodes)-1].EncryptedPathSecret = u.Nodes[len(u.Nodes)-1].EncryptedPathSecret[1:]
	if _, _, err := staged.decryptPath(g.privs[0], sender, u, nil, ctx); !errors.Is(err, ErrInvalid) {
		t.Errorf("missing ciphertext: decrypt = %v, want ErrInvalid", err)
	}
}

// BenchmarkTreeHashAfterLeafChange measures recomputing the tree hash after
// one leaf changes, in full trees of 1,000 and 10,000 members.
func BenchmarkTreeHashAfterLeafChange(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			s := suites[1]
			tree := newRatchetTree(s, testLeaf(b, s, 0))
			leaves := make([]*LeafNode, 16)
			for i := range leaves {
				leaves[i] = testLeaf(b, s, i)
			}
			for i := 1; i < n; i++ {
				l := *leaves[i%len(leaves)]
				tree.addLeaf(&l)
			}
			tree.treeHash()
			b.ResetTimer()
			for k := 0; b.Loop(); k++ {
				tree.setNode(leafIndex(k%n).node(), node{leaf: leaves[k%len(leaves)]})
				tree.treeHash()
			}
		})
	}
}

// BenchmarkUpdatePath measures creating an update path in a full group of
// 1,000 members, and processing it at one member.
func BenchmarkUpdatePath(b *testing.B) {
	s := suites[1]
	g := newTreeKEMGroup(b, s, 1000)
	sender := leafIndex(517)
	b.Run("create", func(b *testing.B) {
		for b.Loop() {
			staged := g.tree.clone()
			p, err := staged.createUpdatePath(sender, g.tree.leaf(sender), g.sigKeys[sender], g.groupID)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := p.encrypt(g.context(staged), nil); err != nil {
				b.Fatal(err)
			}
			p.wipe()
		}
	})
	staged := g.tree.clone()
	p, err := staged.createUpdatePath(sender, g.tree.leaf(sender), g.sigKeys[sender], g.groupID)
	if err != nil {
		b.Fatal(err)
	}
	path, err := p.encrypt(g.context(staged), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("process", func(b *testing.B) {
		for b.Loop() {
			tr := g.tree.clone()
			if err := tr.mergeUpdatePath(sender, path, g.groupID); err != nil {
				b.Fatal(err)
			}
			if _, _, err := tr.decryptPath(g.privs[3], sender, path, nil, g.context(tr)); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkProcessAddCommit measures the tree work of processing a commit
// that adds 1,000 members to a group of 1,000 with an update path: the
// adds with their key checks, merging the path, the tree hash and the
// decryption. Signature checks of the new leaves are not included.
func BenchmarkProcessAddCommit(b *testing.B) {
	s := suites[1]
	g := newTreeKEMGroup(b, s, 1000)
	joiners := make([]*LeafNode, 1000)
	for k := range joiners {
		joiners[k], _, _ = newTestMember(b, s, 1000+k)
	}
	committer := leafIndex(517)
	staged := g.tree.clone()
	var added []leafIndex
	for _, leaf := range joiners {
		added = append(added, staged.addLeaf(leaf))
	}
	p, err := staged.createUpdatePath(committer, staged.leaf(committer), g.sigKeys[committer], g.groupID)
	if err != nil {
		b.Fatal(err)
	}
	path, err := p.encrypt(g.context(staged), added)
	if err != nil {
		b.Fatal(err)
	}
	g.tree.index()
	for b.Loop() {
		tr := g.tree.clone()
		members := tr.index()
		for _, leaf := range joiners {
			if err := members.check(noLeaf, leaf, nil); err != nil {
				b.Fatal(err)
			}
			tr.addLeaf(leaf)
		}
		if err := tr.mergeUpdatePath(committer, path, g.groupID); err != nil {
			b.Fatal(err)
		}
		if _, _, err := tr.decryptPath(g.privs[3], committer, path, added, g.context(tr)); err != nil {
			b.Fatal(err)
		}
	}
}

// TestTreePrivateDecodeStrict checks that persisted private state decodes
// only with its parent nodes in order and above its own leaf.
func TestTreePrivateDecodeStrict(t *testing.T) {
	key := []byte{1, 2, 3}
	cases := map[string]*treePrivate{
		"leaf node":     {self: 2, leaf: key, nodes: map[nodeIndex][]byte{4: key}},
		"not above":     {self: 2, leaf: key, nodes: map[nodeIndex][]byte{1: key}},
		"other subtree": {self: 2, leaf: key, nodes: map[nodeIndex][]byte{11: key}},
	}
	for name, p := range cases {
		var out treePrivate
		if err := decode(mustEncode(p), &out, "treePrivate"); !errors.Is(err, ErrDecode) {
			t.Errorf("%s: decode = %v, want ErrDecode", name, err)
		}
	}
	good := &treePrivate{self: 2, leaf: key, nodes: map[nodeIndex][]byte{3: key, 5: key, 7: key}}
	data := mustEncode(good)
	var out treePrivate
	if err := decode(data, &out, "treePrivate"); err != nil || !bytes.Equal(mustEncode(&out), data) {
		t.Fatalf("round trip: %v", err)
	}
	// Swap the entries for nodes 3 and 5 (each 5 bytes: index and key).
	body := len(data) - 15
	swapped := slices.Concat(data[:body], data[body+5:body+10], data[body:body+5], data[body+10:])
	if err := decode(swapped, &out, "treePrivate"); !errors.Is(err, ErrDecode) {
		t.Errorf("unordered nodes: decode = %v, want ErrDecode", err)
	}
}
