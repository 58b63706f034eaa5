package sframe

import (
	"bytes"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"testing"
)

// exporterFor stands in for the MLS-Exporter of one epoch: an HKDF over a
// per-epoch secret. It checks the label, context and length RFC 9605 §5.2
// asks for.
func exporterFor(t testing.TB, secret []byte, suite CipherSuite) Exporter {
	return func(label string, context []byte, length int) ([]byte, error) {
		if label != "SFrame 1.0 Base Key" || len(context) != 0 || length != suite.params().nk {
			t.Errorf("MLS-Exporter(%q, %x, %d), want (\"SFrame 1.0 Base Key\", \"\", %d)", label, context, length, suite.params().nk)
		}
		return hkdf.Expand(sha256.New, secret, label+string(context), length)
	}
}

// testGroup models the MLS state the members share: the epoch, the number
// of leaves and the epoch's exporter secret.
type testGroup struct {
	suite  CipherSuite
	epoch  uint64
	size   uint32
	secret []byte
}

func newTestGroup(size uint32) *testGroup {
	g := &testGroup{suite: AES_128_GCM_SHA256_128, epoch: 1, size: size}
	g.rekey(size)
	return g
}

// rekey advances the group to a new epoch with a fresh exporter secret.
func (g *testGroup) rekey(size uint32) {
	g.epoch++
	g.size = size
	g.secret = binary.BigEndian.AppendUint64([]byte("exporter secret of epoch "), g.epoch)
}

func (g *testGroup) member(t testing.TB, leaf uint32) *MLSKeys {
	t.Helper()
	m, err := NewMLSKeys(MLSConfig{Suite: g.suite, LeafIndex: leaf}, g.epoch, g.size, exporterFor(t, g.secret, g.suite))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// advance moves members to the group's current epoch.
func (g *testGroup) advance(t testing.TB, members ...*MLSKeys) {
	t.Helper()
	for _, m := range members {
		if err := m.SetEpoch(g.epoch, g.size, exporterFor(t, g.secret, g.suite)); err != nil {
			t.Fatal(err)
		}
	}
}

func encryptMLS(t testing.TB, m *MLSKeys, pt string) []byte {
	t.Helper()
	frame, err := m.Encrypt(nil, nil, []byte(pt))
	if err != nil {
		t.Fatal(err)
	}
	return frame
}

func decryptMLS(m *MLSKeys, frame []byte) (string, error) {
	pt, err := m.Decrypt(nil, nil, frame)
	return string(pt), err
}

func TestMLSExchange(t *testing.T) {
	g := newTestGroup(3)
	alice, bob, carol := g.member(t, 0), g.member(t, 1), g.member(t, 2)
	for _, from := range []*MLSKeys{alice, bob, carol} {
		frame := encryptMLS(t, from, "hello")
		for _, to := range []*MLSKeys{alice, bob, carol} {
			pt, err := decryptMLS(to, frame)
			switch {
			case to == from && !errors.Is(err, ErrUnknownKey):
				t.Errorf("a member decrypting its own frame: %v, want ErrUnknownKey", err)
			case to != from && (err != nil || pt != "hello"):
				t.Errorf("Decrypt = %q, %v", pt, err)
			}
		}
	}
	frame := encryptMLS(t, alice, "once")
	if _, err := decryptMLS(bob, frame); err != nil {
		t.Fatal(err)
	}
	if _, err := decryptMLS(bob, frame); !errors.Is(err, ErrReplay) {
		t.Fatalf("replayed MLS frame: %v, want ErrReplay", err)
	}
}

// TestMLSKeyIDs checks the KIDs of RFC 9605 Figure 9 (E=4, S=6).
func TestMLSKeyIDs(t *testing.T) {
	for _, tc := range []struct {
		epoch   uint64
		leaf    uint32
		context uint64
		kid     uint64
	}{
		{14, 3, 0, 0x3e}, {14, 7, 0, 0x7e}, {14, 20, 0, 0x14e},
		{15, 3, 0, 0x3f}, {15, 5, 0, 0x5f},
		{16, 2, 2, 0x820}, {16, 2, 3, 0xc20},
		{17, 33, 0, 0x211}, {17, 51, 0, 0x331},
	} {
		cfg := MLSConfig{Suite: AES_128_GCM_SHA256_128, LeafIndex: tc.leaf, ContextID: tc.context, EpochBits: 4}
		m, err := NewMLSKeys(cfg, tc.epoch, 64, exporterFor(t, []byte("s"), cfg.Suite))
		if err != nil {
			t.Fatal(err)
		}
		h, _, _ := ParseHeader(encryptMLS(t, m, "x"))
		if h.KID != tc.kid {
			t.Errorf("epoch %d leaf %d context %d: KID %#x, want %#x", tc.epoch, tc.leaf, tc.context, h.KID, tc.kid)
		}
	}
}

func TestMLSEpochWindow(t *testing.T) {
	g := newTestGroup(2)
	alice, bob := g.member(t, 0), g.member(t, 1)
	first := g.epoch
	old := encryptMLS(t, alice, "sent in the first epoch")
	lastInWindow := encryptMLS(t, alice, "also sent in the first epoch")
	tooOld := encryptMLS(t, alice, "sent in the first epoch too")
	early := encryptMLS(t, alice, "decrypted before the rekey")
	if _, err := decryptMLS(bob, early); err != nil {
		t.Fatal(err)
	}

	// The group grows, so S changes; frames of the old epoch still parse
	// with the old epoch's S.
	g.rekey(5)
	g.advance(t, alice, bob)
	fresh := encryptMLS(t, alice, "sent in the second epoch")
	if h, _, _ := ParseHeader(fresh); h.KID&0xf != g.epoch&0xf {
		t.Fatalf("frame of epoch %d has KID %#x", g.epoch, h.KID)
	}
	for _, frame := range [][]byte{old, fresh} {
		if _, err := decryptMLS(bob, frame); err != nil {
			t.Fatalf("after one rekey: %v", err)
		}
	}
	// The receive key learned in the first epoch is still there.
	late := encryptMLS(t, bob, "bob, second epoch")
	if _, err := decryptMLS(alice, late); err != nil {
		t.Fatal(err)
	}

	// DefaultEpochs is 4: the first epoch stays for three rekeys in all.
	g.rekey(5)
	g.advance(t, alice, bob)
	g.rekey(5)
	g.advance(t, alice, bob)
	if _, err := decryptMLS(bob, lastInWindow); err != nil {
		t.Fatalf("frame three epochs old: %v", err)
	}
	firstEpoch := bob.windows[len(bob.windows)-1]
	if firstEpoch.epoch != first {
		t.Fatalf("oldest epoch held is %d, want %d", firstEpoch.epoch, first)
	}
	learned := firstEpoch.keys[headerOf(t, early).KID]
	g.rekey(5)
	g.advance(t, alice, bob)
	if _, err := decryptMLS(bob, tooOld); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("frame from an epoch older than the window: %v, want ErrUnknownKey", err)
	}
	if bob.Epoch() != first+4 || len(bob.windows) != DefaultEpochs {
		t.Fatalf("bob holds %d epochs up to %d", len(bob.windows), bob.Epoch())
	}
	if !bytes.Equal(firstEpoch.baseKey, make([]byte, len(firstEpoch.baseKey))) || learned.key != nil {
		t.Fatal("the dropped epoch's keys were not erased")
	}
	if err := bob.SetEpoch(g.epoch, g.size, exporterFor(t, g.secret, g.suite)); err == nil {
		t.Fatal("SetEpoch accepted the current epoch again")
	}
}

func headerOf(t *testing.T, frame []byte) Header {
	t.Helper()
	hdr, _, err := ParseHeader(frame)
	if err != nil {
		t.Fatal(err)
	}
	return hdr
}

func TestMLSRemovedMember(t *testing.T) {
	g := newTestGroup(3)
	alice, bob, carol := g.member(t, 0), g.member(t, 1), g.member(t, 2)
	removedSecret := g.secret
	fromCarol := encryptMLS(t, carol, "carol, before removal")

	// Carol is removed: the others move to an epoch whose secret she
	// lacks. Her last frames still decrypt while her epoch is in the window.
	g.rekey(3)
	g.advance(t, alice, bob)
	if _, err := decryptMLS(bob, fromCarol); err != nil {
		t.Fatalf("carol's in-flight frame: %v", err)
	}
	secret := encryptMLS(t, alice, "carol must not read this")
	if _, err := decryptMLS(carol, secret); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("removed member decrypting a new-epoch frame: %v, want ErrUnknownKey", err)
	}
	// Even if she guesses the epoch, her stale secret gives the wrong key,
	// and frames she sends under it fail at the others.
	if err := carol.SetEpoch(g.epoch, g.size, exporterFor(t, removedSecret, g.suite)); err != nil {
		t.Fatal(err)
	}
	if _, err := decryptMLS(carol, secret); !errors.Is(err, ErrAuth) {
		t.Fatalf("removed member with a guessed epoch: %v, want ErrAuth", err)
	}
	if _, err := decryptMLS(bob, encryptMLS(t, carol, "forged")); !errors.Is(err, ErrAuth) {
		t.Fatalf("frame from the removed member in the new epoch: %v, want ErrAuth", err)
	}
	if n := len(bob.windows[0].keys); n != 0 {
		t.Fatalf("bob kept %d keys for KIDs that never authenticated", n)
	}
}

func TestMLSClose(t *testing.T) {
	g := newTestGroup(2)
	alice, bob := g.member(t, 0), g.member(t, 1)
	frame := encryptMLS(t, alice, "x")
	if _, err := decryptMLS(bob, frame); err != nil {
		t.Fatal(err)
	}
	baseKey := bob.windows[0].baseKey
	bob.Close()
	if !bytes.Equal(baseKey, make([]byte, len(baseKey))) {
		t.Fatal("Close did not erase the base key")
	}
	if _, err := bob.Encrypt(nil, nil, []byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Encrypt after Close: %v", err)
	}
	if _, err := decryptMLS(bob, frame); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("Decrypt after Close: %v", err)
	}
	g.rekey(2)
	if err := bob.SetEpoch(g.epoch, g.size, exporterFor(t, g.secret, g.suite)); !errors.Is(err, ErrClosed) {
		t.Fatalf("SetEpoch after Close: %v", err)
	}
	bob.Close()
}

func TestMLSBadConfig(t *testing.T) {
	good := MLSConfig{Suite: AES_128_GCM_SHA256_128, LeafIndex: 1}
	with := func(f func(*MLSConfig)) MLSConfig {
		c := good
		f(&c)
		return c
	}
	export := exporterFor(t, []byte("s"), good.Suite)
	for name, tc := range map[string]struct {
		cfg    MLSConfig
		size   uint32
		export Exporter
	}{
		"suite":           {with(func(c *MLSConfig) { c.Suite = 9 }), 4, export},
		"epoch bits":      {with(func(c *MLSConfig) { c.EpochBits = 33 }), 4, export},
		"window over 2^E": {with(func(c *MLSConfig) { c.EpochBits, c.Epochs = 2, 5 }), 4, export},
		"negative epochs": {with(func(c *MLSConfig) { c.Epochs = -1 }), 4, export},
		"replay window":   {with(func(c *MLSConfig) { c.ReplayWindow = MaxReplayWindow + 1 }), 4, export},
		"context ID":      {with(func(c *MLSConfig) { c.EpochBits, c.ContextID = 32, 1<<31 }), 4, export},
		"leaf outside":    {good, 1, export},
		"empty group":     {good, 0, export},
		"exporter error":  {good, 4, func(string, []byte, int) ([]byte, error) { return nil, errors.New("no") }},
		"short export":    {good, 4, func(string, []byte, int) ([]byte, error) { return []byte{1}, nil }},
	} {
		if _, err := NewMLSKeys(tc.cfg, 1, tc.size, tc.export); err == nil {
			t.Errorf("%s: NewMLSKeys succeeded", name)
		}
	}
	if _, err := NewMLSKeys(good, 1, 4, export); err != nil {
		t.Fatalf("valid config: %v", err)
	}
}

// TestMLSConcurrentRekey decrypts while the epoch moves on; run it with -race.
func TestMLSConcurrentRekey(t *testing.T) {
	g := newTestGroup(2)
	alice, bob := g.member(t, 0), g.member(t, 1)
	frames := make([][]byte, 300)
	for i := range frames {
		frames[i] = encryptMLS(t, alice, "frame")
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, f := range frames {
			// Frames may meet a dropped epoch; that must be a clean error.
			if _, err := decryptMLS(bob, f); err != nil && !errors.Is(err, ErrUnknownKey) {
				t.Error(err)
			}
		}
	}()
	for range 10 {
		g.rekey(2)
		g.advance(t, alice, bob)
		encryptMLS(t, alice, "new epoch")
	}
	<-done
}
