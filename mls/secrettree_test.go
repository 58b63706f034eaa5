package mls

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"golang.org/x/crypto/cryptobyte"
)

type secretTreeVector struct {
	CipherSuite uint16 `json:"cipher_suite"`
	SenderData  struct {
		SenderDataSecret hexBytes `json:"sender_data_secret"`
		Ciphertext       hexBytes `json:"ciphertext"`
		Key              hexBytes `json:"key"`
		Nonce            hexBytes `json:"nonce"`
	} `json:"sender_data"`
	EncryptionSecret hexBytes `json:"encryption_secret"`
	Leaves           [][]struct {
		Generation       uint32   `json:"generation"`
		HandshakeKey     hexBytes `json:"handshake_key"`
		HandshakeNonce   hexBytes `json:"handshake_nonce"`
		ApplicationKey   hexBytes `json:"application_key"`
		ApplicationNonce hexBytes `json:"application_nonce"`
	} `json:"leaves"`
}

// expectKey returns a use callback that checks the key and nonce.
func expectKey(wantKey, wantNonce []byte) func(key, nonce []byte) error {
	return func(key, nonce []byte) error {
		if !bytes.Equal(key, wantKey) || !bytes.Equal(nonce, wantNonce) {
			return fmt.Errorf("key/nonce %x/%x, want %x/%x", key, nonce, wantKey, wantNonce)
		}
		return nil
	}
}

func TestSecretTreeVectors(t *testing.T) {
	var vs []secretTreeVector
	loadVectors(t, "secret-tree.json", &vs)
	tally := newTally(t, "secret-tree")
	for _, v := range vs {
		t.Run(fmt.Sprintf("%v/%d", CipherSuite(v.CipherSuite), len(v.Leaves)), func(t *testing.T) {
			defer tally.record(t)
			s := suiteOrSkip(t, v.CipherSuite)
			sd := v.SenderData
			key, nonce := senderDataKeyNonce(s, sd.SenderDataSecret, sd.Ciphertext)
			if !bytes.Equal(key, sd.Key) || !bytes.Equal(nonce, sd.Nonce) {
				t.Errorf("sender data key/nonce = %x/%x, want %x/%x", key, nonce, sd.Key, sd.Nonce)
			}

			// A receiver reaches each listed generation by skipping ahead.
			rx, err := newSecretTree(s, v.EncryptionSecret, uint32(len(v.Leaves)), DefaultRatchetWindow)
			if err != nil {
				t.Fatal(err)
			}
			// A sender steps through every generation in order.
			tx, _ := newSecretTree(s, v.EncryptionSecret, uint32(len(v.Leaves)), DefaultRatchetWindow)
			for i, gens := range v.Leaves {
				leaf := leafIndex(i)
				for _, g := range gens {
					if err := rx.withReceiverKey(leaf, handshakeRatchet, g.Generation, expectKey(g.HandshakeKey, g.HandshakeNonce)); err != nil {
						t.Errorf("leaf %d generation %d handshake: %v", i, g.Generation, err)
					}
					if err := rx.withReceiverKey(leaf, applicationRatchet, g.Generation, expectKey(g.ApplicationKey, g.ApplicationNonce)); err != nil {
						t.Errorf("leaf %d generation %d application: %v", i, g.Generation, err)
					}
					for _, c := range []struct {
						rt         ratchetType
						key, nonce []byte
					}{{handshakeRatchet, g.HandshakeKey, g.HandshakeNonce}, {applicationRatchet, g.ApplicationKey, g.ApplicationNonce}} {
						var gen uint32
						var key, nonce []byte
						for gen < g.Generation || key == nil {
							if gen, key, nonce, err = tx.nextSenderKey(leaf, c.rt); err != nil {
								t.Fatal(err)
							}
						}
						if gen != g.Generation || !bytes.Equal(key, c.key) || !bytes.Equal(nonce, c.nonce) {
							t.Errorf("leaf %d sender generation %d (ratchet %d): %x/%x, want %x/%x", i, gen, c.rt, key, nonce, c.key, c.nonce)
						}
					}
				}
			}
			// Every leaf has been used: no tree secret may remain (§9.2).
			if len(rx.nodes) != 0 || len(tx.nodes) != 0 {
				t.Errorf("%d and %d tree secrets left after every leaf was used", len(rx.nodes), len(tx.nodes))
			}
		})
	}
}

// newTestSecretTree builds a secret tree over a fixed encryption_secret.
func newTestSecretTree(t testing.TB, leaves uint32, w RatchetWindow) *secretTree {
	t.Helper()
	s, _ := lookupSuite(DefaultCipherSuite)
	tree, err := newSecretTree(s, bytes.Repeat([]byte{0x5a}, s.nh()), leaves, w)
	if err != nil {
		t.Fatal(err)
	}
	return tree
}

// testSenderKeys returns the first n application keys and nonces of leaf.
func testSenderKeys(t *testing.T, leaves uint32, leaf leafIndex, n int) (keys, nonces [][]byte) {
	t.Helper()
	tx := newTestSecretTree(t, leaves, DefaultRatchetWindow)
	for i := range n {
		g, k, nc, err := tx.nextSenderKey(leaf, applicationRatchet)
		if err != nil || g != uint32(i) {
			t.Fatalf("sender generation %d: %d, %v", i, g, err)
		}
		keys, nonces = append(keys, k), append(nonces, nc)
	}
	return keys, nonces
}

func TestSecretTreeOutOfOrder(t *testing.T) {
	keys, nonces := testSenderKeys(t, 4, 2, 10)
	rx := newTestSecretTree(t, 4, DefaultRatchetWindow)
	open := func(g uint32) error {
		return rx.withReceiverKey(2, applicationRatchet, g, expectKey(keys[g], nonces[g]))
	}
	for _, g := range []uint32{5, 2, 9, 0, 7, 1, 3, 4, 6, 8} {
		if err := open(g); err != nil {
			t.Fatalf("generation %d: %v", g, err)
		}
	}
	for g := range uint32(10) {
		if err := open(g); !errors.Is(err, ErrReplay) {
			t.Errorf("replay of generation %d: %v, want ErrReplay", g, err)
		}
	}
	r := rx.ratchets[2][applicationRatchet]
	if r.next != 10 || len(r.skipped) != 0 {
		t.Errorf("ratchet at %d with %d retained keys, want 10 and none", r.next, len(r.skipped))
	}
	// The handshake ratchet of the same leaf is independent.
	if err := rx.withReceiverKey(2, handshakeRatchet, 0, func(key, _ []byte) error {
		if bytes.Equal(key, keys[0]) {
			return errors.New("handshake key equals application key")
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
}

func TestSecretTreeUsedKeyIsErased(t *testing.T) {
	keys, nonces := testSenderKeys(t, 2, 1, 3)
	rx := newTestSecretTree(t, 2, DefaultRatchetWindow)
	for _, g := range []uint32{2, 0} { // in order (2) and from the retained keys (0)
		var held [][]byte
		err := rx.withReceiverKey(1, applicationRatchet, g, func(key, nonce []byte) error {
			held = append(held, key, nonce)
			return expectKey(keys[g], nonces[g])(key, nonce)
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range held {
			if !bytes.Equal(b, make([]byte, len(b))) {
				t.Errorf("generation %d: key material not erased after use", g)
			}
		}
		if err := rx.withReceiverKey(1, applicationRatchet, g, expectKey(keys[g], nonces[g])); !errors.Is(err, ErrReplay) {
			t.Errorf("generation %d obtained twice: %v", g, err)
		}
	}
	if err := rx.withReceiverKey(1, applicationRatchet, 1, expectKey(keys[1], nonces[1])); err != nil {
		t.Errorf("retained generation 1: %v", err)
	}
}

func TestSecretTreeFailedUseKeepsState(t *testing.T) {
	keys, nonces := testSenderKeys(t, 2, 0, 6)
	rx := newTestSecretTree(t, 2, DefaultRatchetWindow)
	bad := errors.New("forged")
	fail := func(_, _ []byte) error { return bad }
	if err := rx.withReceiverKey(0, applicationRatchet, 5, fail); !errors.Is(err, bad) {
		t.Fatalf("failing use gave %v", err)
	}
	if r := rx.ratchets[0][applicationRatchet]; r.next != 0 || len(r.skipped) != 0 {
		t.Fatalf("failed message moved the ratchet to %d with %d retained keys", r.next, len(r.skipped))
	}
	if err := rx.withReceiverKey(0, applicationRatchet, 3, expectKey(keys[3], nonces[3])); err != nil {
		t.Fatal(err)
	}
	if err := rx.withReceiverKey(0, applicationRatchet, 1, fail); !errors.Is(err, bad) {
		t.Fatalf("failing use of a retained key gave %v", err)
	}
	for _, g := range []uint32{1, 5, 0, 2, 4} {
		if err := rx.withReceiverKey(0, applicationRatchet, g, expectKey(keys[g], nonces[g])); err != nil {
			t.Errorf("generation %d after failures: %v", g, err)
		}
	}
}

func TestSecretTreeWindow(t *testing.T) {
	w := RatchetWindow{MaxForward: 10, MaxRetained: 4}
	keys, nonces := testSenderKeys(t, 1, 0, 30)
	rx := newTestSecretTree(t, 1, w)
	open := func(g uint32) error {
		return rx.withReceiverKey(0, applicationRatchet, g, expectKey(keys[g], nonces[g]))
	}
	if err := open(11); !errors.Is(err, ErrRatchetWindow) {
		t.Errorf("jump of 11 generations: %v, want ErrRatchetWindow", err)
	}
	if err := open(10); err != nil { // the largest jump allowed
		t.Fatalf("jump of 10 generations: %v", err)
	}
	// next is 11: keys for 7..10 are within MaxRetained, older ones are gone.
	if r := rx.ratchets[0][applicationRatchet]; len(r.skipped) != 3 {
		t.Errorf("%d retained keys, want 3 (generations 7, 8, 9)", len(r.skipped))
	}
	if err := open(6); !errors.Is(err, ErrReplay) {
		t.Errorf("generation older than kept: %v, want ErrReplay", err)
	}
	if err := open(8); err != nil {
		t.Errorf("retained generation: %v", err)
	}
	if err := open(13); err != nil {
		t.Fatal(err)
	}
	// next is 14: generation 9 is 5 behind and evicted, 11 and 12 kept.
	if err := open(9); !errors.Is(err, ErrReplay) {
		t.Errorf("evicted generation: %v, want ErrReplay", err)
	}
	for _, g := range []uint32{12, 11} {
		if err := open(g); err != nil {
			t.Errorf("generation %d: %v", g, err)
		}
	}
	if err := rx.withReceiverKey(0, applicationRatchet, 1<<32-1, expectKey(nil, nil)); err == nil {
		t.Error("generation 2^32-1 accepted")
	}
}

func TestSecretTreeStrictOrder(t *testing.T) {
	keys, nonces := testSenderKeys(t, 1, 0, 3)
	rx := newTestSecretTree(t, 1, RatchetWindow{})
	if err := rx.withReceiverKey(0, applicationRatchet, 1, expectKey(keys[1], nonces[1])); !errors.Is(err, ErrRatchetWindow) {
		t.Errorf("skip with MaxForward 0: %v", err)
	}
	for g := range uint32(3) {
		if err := rx.withReceiverKey(0, applicationRatchet, g, expectKey(keys[g], nonces[g])); err != nil {
			t.Errorf("in-order generation %d: %v", g, err)
		}
	}
}

func TestSecretTreeBadRequests(t *testing.T) {
	tree := newTestSecretTree(t, 8, DefaultRatchetWindow)
	if _, _, _, err := tree.nextSenderKey(8, applicationRatchet); err == nil {
		t.Error("leaf outside the tree accepted")
	}
	if _, _, _, err := tree.nextSenderKey(0, 2); err == nil {
		t.Error("unknown ratchet type accepted")
	}
	if err := tree.withReceiverKey(9, handshakeRatchet, 0, expectKey(nil, nil)); err == nil {
		t.Error("receiving from a leaf outside the tree accepted")
	}
	r, err := tree.ratchet(0, handshakeRatchet)
	if err != nil {
		t.Fatal(err)
	}
	r.next = 1<<32 - 1
	if _, _, _, err := tree.nextSenderKey(0, handshakeRatchet); err == nil {
		t.Error("exhausted ratchet produced a key")
	}
	s := tree.suite
	for _, c := range []struct {
		leaves uint32
		secret []byte
	}{{0, make([]byte, s.nh())}, {maxSecretTreeLeaves + 1, make([]byte, s.nh())}, {4, make([]byte, s.nh()-1)}} {
		if _, err := newSecretTree(s, c.secret, c.leaves, DefaultRatchetWindow); err == nil {
			t.Errorf("tree of %d leaves with a %d-byte secret accepted", c.leaves, len(c.secret))
		}
	}
}

func TestSecretTreeIsLazy(t *testing.T) {
	tree := newTestSecretTree(t, 16384, DefaultRatchetWindow)
	if _, _, _, err := tree.nextSenderKey(9999, applicationRatchet); err != nil {
		t.Fatal(err)
	}
	// One leaf split the 14 nodes of its direct path, keeping the 14
	// siblings on its copath.
	if len(tree.nodes) != 14 || len(tree.ratchets) != 1 {
		t.Errorf("after one leaf: %d tree secrets and %d leaf ratchets, want 14 and 1", len(tree.nodes), len(tree.ratchets))
	}
	for _, x := range copath(leafIndex(9999).node(), 16384) {
		if _, ok := tree.nodes[x]; !ok {
			t.Errorf("copath node %d not kept", x)
		}
	}
}

func TestSecretTreeOddLeafCount(t *testing.T) {
	// A tree of 5 leaves keys its leaves as the 8-leaf tree does, and drops
	// the secrets of subtrees with no leaf.
	odd, full := newTestSecretTree(t, 5, DefaultRatchetWindow), newTestSecretTree(t, 8, DefaultRatchetWindow)
	for l := range leafIndex(5) {
		_, k1, _, err1 := odd.nextSenderKey(l, handshakeRatchet)
		_, k2, _, err2 := full.nextSenderKey(l, handshakeRatchet)
		if err1 != nil || err2 != nil || !bytes.Equal(k1, k2) {
			t.Errorf("leaf %d: %x, %v vs %x, %v", l, k1, err1, k2, err2)
		}
	}
	if len(odd.nodes) != 0 {
		t.Errorf("%d tree secrets left for leaves that do not exist", len(odd.nodes))
	}
}

func TestSecretTreeWipe(t *testing.T) {
	tree := newTestSecretTree(t, 8, DefaultRatchetWindow)
	if err := tree.withReceiverKey(3, applicationRatchet, 5, expectKey(nil, nil)); err == nil {
		t.Fatal("wrong key accepted")
	}
	if err := tree.withReceiverKey(3, applicationRatchet, 5, func(_, _ []byte) error { return nil }); err != nil {
		t.Fatal(err)
	}
	var held [][]byte
	for _, s := range tree.nodes {
		held = append(held, s)
	}
	for _, lr := range tree.ratchets {
		for _, r := range lr {
			held = append(held, r.secret)
			for _, k := range r.skipped {
				held = append(held, k.keyNonce)
			}
		}
	}
	if len(held) < 3+2+5 {
		t.Fatalf("only %d secrets held before wipe", len(held))
	}
	tree.wipe()
	for _, b := range held {
		if !bytes.Equal(b, make([]byte, len(b))) {
			t.Fatal("secret not erased by wipe")
		}
	}
	if len(tree.nodes) != 0 || len(tree.ratchets) != 0 {
		t.Error("wiped tree still holds entries")
	}
}

func TestSenderDataShortCiphertext(t *testing.T) {
	s, _ := lookupSuite(DefaultCipherSuite)
	secret := bytes.Repeat([]byte{1}, s.nh())
	short := []byte{1, 2, 3}
	key, nonce := senderDataKeyNonce(s, secret, short)
	if !bytes.Equal(key, s.expandWithLabel(secret, "key", short, s.nk)) || len(nonce) != s.nn {
		t.Error("short ciphertext not used whole as the sample")
	}
	long := bytes.Repeat([]byte{9}, 3*s.nh())
	k1, n1 := senderDataKeyNonce(s, secret, long)
	k2, n2 := senderDataKeyNonce(s, secret, append(long[:s.nh():s.nh()], 0))
	if !bytes.Equal(k1, k2) || !bytes.Equal(n1, n2) {
		t.Error("bytes after the first KDF.Nh changed the sender data key")
	}
}

func TestApplyReuseGuard(t *testing.T) {
	nonce := []byte{0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80, 0x90, 0xa0, 0xb0, 0xc0}
	orig := bytes.Clone(nonce)
	guard := [4]byte{0xff, 0x0f, 0x01, 0x00}
	got := applyReuseGuard(nil, nonce, guard)
	want := []byte{0xef, 0x2f, 0x31, 0x40, 0x50, 0x60, 0x70, 0x80, 0x90, 0xa0, 0xb0, 0xc0}
	if !bytes.Equal(got, want) || !bytes.Equal(nonce, orig) {
		t.Errorf("applyReuseGuard = %x (nonce now %x), want %x", got, nonce, want)
	}
	var buf [32]byte
	if n := testing.AllocsPerRun(100, func() { applyReuseGuard(buf[:0], nonce, guard) }); n != 0 {
		t.Errorf("applyReuseGuard into a stack buffer allocates %v times", n)
	}
}

func BenchmarkSecretTreeNextSenderKey(b *testing.B) {
	tree := newTestSecretTree(b, 16384, DefaultRatchetWindow)
	b.ReportAllocs()
	for b.Loop() {
		_, key, nonce, err := tree.nextSenderKey(4242, applicationRatchet)
		if err != nil {
			b.Fatal(err)
		}
		clear(key)
		clear(nonce)
	}
}

func BenchmarkSecretTreeReceiverKey(b *testing.B) {
	tree := newTestSecretTree(b, 16384, DefaultRatchetWindow)
	use := func(_, _ []byte) error { return nil }
	b.ReportAllocs()
	g := uint32(0)
	for b.Loop() {
		if err := tree.withReceiverKey(4242, applicationRatchet, g, use); err != nil {
			b.Fatal(err)
		}
		g++
	}
}

// usedSecretTree is a tree in a state with every kind of content: tree secrets
// (nodes 1, 4, 8 and 14), ratchets of receivers with retained keys, and a
// sender's ratchet.
func usedSecretTree(t *testing.T) *secretTree {
	t.Helper()
	tree := newTestSecretTree(t, 8, RatchetWindow{MaxForward: 50, MaxRetained: 20})
	ok := func(_, _ []byte) error { return nil }
	for _, step := range []struct {
		leaf leafIndex
		gen  uint32
	}{{3, 5}, {3, 2}, {5, 30}} {
		if err := tree.withReceiverKey(step.leaf, applicationRatchet, step.gen, ok); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		if _, _, _, err := tree.nextSenderKey(6, handshakeRatchet); err != nil {
			t.Fatal(err)
		}
	}
	return tree
}

func TestSecretTreeMarshalRoundTrip(t *testing.T) {
	orig := usedSecretTree(t)
	enc := mustEncode(orig)
	var back secretTree
	if err := decode(enc, &back, "secret tree"); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(mustEncode(&back), enc) {
		t.Fatal("re-encoding differs")
	}
	if back.window != orig.window || back.leaves != orig.leaves || back.suite != orig.suite {
		t.Fatalf("parameters changed: %+v / %d", back.window, back.leaves)
	}
	// Both trees behave alike from here on.
	var results [2][][]byte
	for i, tree := range []*secretTree{orig, &back} {
		collect := func(key, _ []byte) error { results[i] = append(results[i], bytes.Clone(key)); return nil }
		for _, c := range []struct {
			leaf leafIndex
			gen  uint32
		}{{3, 1}, {5, 15}, {0, 0}, {5, 31}} {
			if err := tree.withReceiverKey(c.leaf, applicationRatchet, c.gen, collect); err != nil {
				t.Fatalf("leaf %d generation %d: %v", c.leaf, c.gen, err)
			}
		}
		for _, c := range []struct {
			leaf leafIndex
			gen  uint32
		}{{3, 2}, {3, 5}, {5, 9}} {
			if err := tree.withReceiverKey(c.leaf, applicationRatchet, c.gen, collect); !errors.Is(err, ErrReplay) {
				t.Errorf("leaf %d generation %d: %v, want ErrReplay", c.leaf, c.gen, err)
			}
		}
		g, key, _, err := tree.nextSenderKey(6, handshakeRatchet)
		if err != nil || g != 2 {
			t.Fatalf("sender generation %d, %v; want 2", g, err)
		}
		results[i] = append(results[i], key)
	}
	if len(results[0]) != 5 {
		t.Fatalf("%d keys from the original tree, want 5", len(results[0]))
	}
	for i := range results[0] {
		if !bytes.Equal(results[0][i], results[1][i]) {
			t.Errorf("key %d: decoded tree gives %x, original %x", i, results[1][i], results[0][i])
		}
	}
	fresh := newTestSecretTree(t, 3, DefaultRatchetWindow)
	if err := decode(mustEncode(fresh), &back, "secret tree"); err != nil || len(back.nodes) != 1 {
		t.Errorf("fresh tree: %v, %d nodes", err, len(back.nodes))
	}
}

func TestSecretTreeUnmarshalStrict(t *testing.T) {
	enc := mustEncode(usedSecretTree(t))
	var tree secretTree
	for i := range len(enc) {
		if err := decode(enc[:i], &tree, "secret tree"); err == nil {
			t.Fatalf("truncation to %d bytes accepted", i)
		}
	}
	if err := decode(append(bytes.Clone(enc), 0), &tree, "secret tree"); err == nil {
		t.Error("trailing byte accepted")
	}
	for name, mutate := range map[string]func(b []byte){
		"version 2":      func(b []byte) { b[0] = 2 },
		"cipher suite 4": func(b []byte) { b[1], b[2] = 0, 4 },
		"zero leaves":    func(b []byte) { copy(b[3:7], []byte{0, 0, 0, 0}) },
		"4 leaves":       func(b []byte) { b[6] = 4 },
		"16 leaves":      func(b []byte) { b[6] = 16 },
		"smaller window": func(b []byte) { b[14] = 10 },
	} {
		b := bytes.Clone(enc)
		mutate(b)
		if err := decode(b, &tree, "secret tree"); err == nil {
			t.Errorf("%s accepted", name)
		}
	}

	for name, corrupt := range map[string]func(tr *secretTree){
		"overlapping node":       func(tr *secretTree) { tr.nodes[root(8)] = make([]byte, tr.suite.nh()) },
		"node over a ratchet":    func(tr *secretTree) { tr.nodes[leafIndex(3).node()] = make([]byte, tr.suite.nh()) },
		"missing node":           func(tr *secretTree) { delete(tr.nodes, 1) },
		"node outside the tree":  func(tr *secretTree) { tr.nodes[31] = make([]byte, tr.suite.nh()) },
		"short tree secret":      func(tr *secretTree) { tr.nodes[1] = make([]byte, 5) },
		"short ratchet secret":   func(tr *secretTree) { tr.ratchets[6][0].secret = make([]byte, 5) },
		"short retained key":     func(tr *secretTree) { tr.ratchets[3][1].skipped[0].keyNonce = []byte{1} },
		"retained key not older": func(tr *secretTree) { tr.ratchets[3][1].skipped[0].generation = 6 },
		"retained keys unsorted": func(tr *secretTree) {
			sk := tr.ratchets[3][1].skipped
			sk[0], sk[1] = sk[1], sk[0]
		},
		"retained key beyond window": func(tr *secretTree) { tr.window.MaxRetained = 3 },
	} {
		tr := usedSecretTree(t)
		corrupt(tr)
		b, err := encode(tr)
		if err != nil {
			t.Fatal(err)
		}
		if err := decode(b, &tree, "secret tree"); err == nil {
			t.Errorf("%s accepted", name)
		}
	}

	// Two leaves kept as leaf secrets, listed in decreasing order.
	s, _ := lookupSuite(DefaultCipherSuite)
	b := cryptobyte.NewBuilder(nil)
	b.AddUint8(secretTreeVersion)
	b.AddUint16(uint16(DefaultCipherSuite))
	b.AddUint32(2)
	b.AddUint32(1)
	b.AddUint32(1)
	addVector(b, func(b *cryptobyte.Builder) {
		for _, x := range []uint32{2, 0} {
			b.AddUint32(x)
			addOpaque(b, make([]byte, s.nh()))
		}
	})
	addVector(b, func(*cryptobyte.Builder) {})
	unsorted := b.BytesOrPanic()
	if err := decode(unsorted, &tree, "secret tree"); err == nil {
		t.Error("nodes in decreasing order accepted")
	}
}
