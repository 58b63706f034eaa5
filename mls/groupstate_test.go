package mls

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
)

// restore saves g and loads it back, checking that the encoding is
// canonical: the restored group saves to the same bytes.
func restore(t testing.TB, g *Group) *Group {
	t.Helper()
	data, err := g.MarshalBinary()
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	r, err := UnmarshalGroup(data, g.cfg)
	if err != nil {
		t.Fatalf("unmarshal: %v", err)
	}
	again, err := r.MarshalBinary()
	if err != nil {
		t.Fatalf("marshal restored: %v", err)
	}
	if !bytes.Equal(again, data) {
		t.Fatal("restored group encodes differently")
	}
	return r
}

// testGroup is a group as seen by each of its members.
type testGroup struct {
	t       testing.TB
	members []*Group
}

// newTestGroup creates a group of n members, all added by the first in
// one commit.
func newTestGroup(t testing.TB, n int) *testGroup {
	t.Helper()
	creator := newTestClient(t, DefaultCipherSuite, "m0")
	g0, err := CreateGroup(creator.key, BasicCredential([]byte("m0")), CreateGroupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tg := &testGroup{t: t, members: []*Group{g0}}
	var kps []*KeyPackagePrivate
	var pubs []*KeyPackage
	for i := 1; i < n; i++ {
		kp := newTestClient(t, DefaultCipherSuite, fmt.Sprintf("m%d", i)).keyPackage(t)
		kps, pubs = append(kps, kp), append(pubs, kp.KeyPackage)
	}
	if n > 1 {
		res := tg.commit(0, CommitOptions{Add: pubs})
		for _, kp := range kps {
			tg.members = append(tg.members, tg.join(res.Welcome, kp))
		}
	}
	tg.agree()
	return tg
}

// join lets the owner of kp join from w, with the tree given out of band.
func (tg *testGroup) join(w *MLSMessage, kp *KeyPackagePrivate) *Group {
	tg.t.Helper()
	g, err := Join(roundTrip(tg.t, w).Welcome, kp, JoinOptions{RatchetTree: tg.members[0].RatchetTree()})
	if err != nil {
		tg.t.Fatalf("join: %v", err)
	}
	return g
}

// commit makes member i commit, merges it and has every other active
// member process it.
func (tg *testGroup) commit(i int, o CommitOptions) *CommitResult {
	tg.t.Helper()
	res, err := tg.members[i].Commit(o)
	if err != nil {
		tg.t.Fatalf("commit: %v", err)
	}
	tg.deliver(i, res.Commit)
	if err := tg.members[i].MergePendingCommit(); err != nil {
		tg.t.Fatalf("merge: %v", err)
	}
	return res
}

// deliver has every active member but the sender process m.
func (tg *testGroup) deliver(from int, m *MLSMessage) {
	tg.t.Helper()
	for j, g := range tg.members {
		if j != from && g.Active() {
			mustProcess(tg.t, g, m)
		}
	}
}

// active returns the members still in the group.
func (tg *testGroup) active() []*Group {
	var out []*Group
	for _, g := range tg.members {
		if g.Active() {
			out = append(out, g)
		}
	}
	return out
}

// agree checks that every active member is in the same epoch.
func (tg *testGroup) agree() {
	tg.t.Helper()
	sameState(tg.t, tg.active()...)
}

// restoreAll replaces every member by its saved and restored state.
func (tg *testGroup) restoreAll() {
	tg.t.Helper()
	for i, g := range tg.members {
		tg.members[i] = restore(tg.t, g)
	}
}

// chat has every active member send a message that all others read.
func (tg *testGroup) chat() {
	tg.t.Helper()
	for i, g := range tg.members {
		if !g.Active() {
			continue
		}
		msg := []byte(fmt.Sprintf("from %d in epoch %d", i, g.Epoch()))
		ct, err := g.Encrypt(msg, nil)
		if err != nil {
			tg.t.Fatal(err)
		}
		for j, h := range tg.members {
			if j == i || !h.Active() {
				continue
			}
			am, ok := mustProcess(tg.t, h, ct).(*ApplicationMessage)
			if !ok || !bytes.Equal(am.Data, msg) {
				tg.t.Fatalf("member %d misread member %d", j, i)
			}
		}
	}
}

func TestGroupStateRoundTripLifecycle(t *testing.T) {
	tg := newTestGroup(t, 1)
	tg.restoreAll() // just created
	tg.chat()

	kps := []*KeyPackagePrivate{
		newTestClient(t, DefaultCipherSuite, "bob").keyPackage(t),
		newTestClient(t, DefaultCipherSuite, "carol").keyPackage(t),
	}
	res := tg.commit(0, CommitOptions{Add: []*KeyPackage{kps[0].KeyPackage, kps[1].KeyPackage}})
	for _, kp := range kps {
		tg.members = append(tg.members, tg.join(res.Welcome, kp))
	}
	tg.restoreAll() // after joins
	tg.agree()
	tg.chat()

	tg.commit(1, CommitOptions{ForcePath: true})
	tg.restoreAll() // after a full-path commit: parent keys in every member
	tg.agree()
	tg.chat()

	// An external joiner's state restores too.
	gi, err := tg.members[2].GroupInfo(true)
	if err != nil {
		t.Fatal(err)
	}
	dave := newTestClient(t, DefaultCipherSuite, "dave")
	gd, commit, err := ExternalJoin(roundTrip(t, gi), dave.key, BasicCredential([]byte("dave")), ExternalJoinOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tg.deliver(-1, commit)
	tg.members = append(tg.members, gd)
	tg.restoreAll()
	tg.agree()
	tg.chat()

	// Removal: the removed member's state still restores, and it can
	// read what was sent in its last epoch but nothing after.
	late, err := tg.members[1].Encrypt([]byte("sent before the removal"), nil)
	if err != nil {
		t.Fatal(err)
	}
	removed := tg.members[2]
	tg.commit(0, CommitOptions{Remove: []uint32{removed.Index()}})
	if removed.Active() {
		t.Fatal("removed member still active")
	}
	tg.restoreAll()
	removed = tg.members[2]
	if removed.Active() || removed.EpochAuthenticator() != nil {
		t.Fatal("restored removed member is active")
	}
	if am, ok := mustProcess(t, removed, late).(*ApplicationMessage); !ok || !bytes.Equal(am.Data, []byte("sent before the removal")) {
		t.Fatal("removed member cannot read a late message of its last epoch")
	}
	after, _ := tg.members[0].Encrypt([]byte("after"), nil)
	if _, err := removed.Process(roundTrip(t, after)); err == nil {
		t.Fatal("removed member read a message of the next epoch")
	}
	tg.agree()
	tg.chat()

	// Resumption PSKs survive and can be used after a restore.
	epoch := tg.members[0].Epoch() - 1
	psk0, ok0 := tg.members[0].ResumptionPSK(epoch)
	psk1, ok1 := tg.members[1].ResumptionPSK(epoch)
	if !ok0 || !ok1 || !bytes.Equal(psk0, psk1) {
		t.Fatal("resumption PSK lost in a restore")
	}
	prop, err := tg.members[1].ProposeResumptionPSK(epoch)
	if err != nil {
		t.Fatal(err)
	}
	tg.deliver(1, prop)
	tg.restoreAll()
	tg.commit(0, CommitOptions{})
	tg.agree()

	// ReInit: the state of a re-initialised group restores as inactive.
	reinit, err := tg.members[0].ProposeReInit([]byte("next"), DefaultCipherSuite, nil)
	if err != nil {
		t.Fatal(err)
	}
	tg.deliver(0, reinit)
	tg.commit(1, CommitOptions{})
	tg.restoreAll()
	for _, g := range tg.members {
		if g.Active() {
			t.Fatal("re-initialised group is active after a restore")
		}
		if _, err := g.Encrypt([]byte("x"), nil); !errors.Is(err, ErrInactive) {
			t.Fatalf("re-initialised group encrypts: %v", err)
		}
	}
}

// TestGroupStateCachedProposals restores members between proposals and
// the commit that applies them by reference, including the proposer of
// an Update, who needs the private key it generated.
func TestGroupStateCachedProposals(t *testing.T) {
	tg := newTestGroup(t, 4)
	up, err := tg.members[1].ProposeUpdate()
	if err != nil {
		t.Fatal(err)
	}
	tg.deliver(1, up)
	rm, err := tg.members[2].ProposeRemove(3)
	if err != nil {
		t.Fatal(err)
	}
	tg.deliver(2, rm)
	add, err := tg.members[3].ProposeAdd(newTestClient(t, DefaultCipherSuite, "erin").keyPackage(t).KeyPackage)
	if err != nil {
		t.Fatal(err)
	}
	tg.deliver(3, add)
	tg.restoreAll()
	for _, g := range tg.members {
		if len(g.proposals) != 3 {
			t.Fatalf("member %d has %d cached proposals after a restore", g.Index(), len(g.proposals))
		}
	}
	if len(tg.members[1].pendingUpdates) != 1 {
		t.Fatal("pending update lost in a restore")
	}
	res := tg.commit(0, CommitOptions{})
	if len(res.Staged.Updated) != 1 || len(res.Staged.Removed) != 1 || len(res.Staged.Added) != 1 {
		t.Fatalf("commit did not apply the restored proposals: %+v", res.Staged)
	}
	tg.restoreAll()
	tg.agree()
	tg.chat()
}

// TestGroupStatePendingCommit saves a member between sending a commit and
// its confirmation: the restored member can merge it, recognise it when
// the delivery service echoes it, or discard it.
func TestGroupStatePendingCommit(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts func(t testing.TB) CommitOptions
	}{
		{"path", func(testing.TB) CommitOptions { return CommitOptions{ForcePath: true} }},
		{"add without path", func(t testing.TB) CommitOptions {
			return CommitOptions{Add: []*KeyPackage{newTestClient(t, DefaultCipherSuite, "x").keyPackage(t).KeyPackage}}
		}},
	} {
		t.Run(tc.name+"/merge", func(t *testing.T) {
			tg := newTestGroup(t, 3)
			res, err := tg.members[0].Commit(tc.opts(t))
			if err != nil {
				t.Fatal(err)
			}
			tg.members[0] = restore(t, tg.members[0])
			if !tg.members[0].HasPendingCommit() {
				t.Fatal("pending commit lost")
			}
			tg.deliver(0, res.Commit)
			if err := tg.members[0].MergePendingCommit(); err != nil {
				t.Fatal(err)
			}
			tg.agree()
			tg.chat()
			tg.commit(2, CommitOptions{ForcePath: true})
			tg.agree()
			tg.chat()
		})
		t.Run(tc.name+"/echo", func(t *testing.T) {
			tg := newTestGroup(t, 3)
			res, err := tg.members[0].Commit(tc.opts(t))
			if err != nil {
				t.Fatal(err)
			}
			tg.members[0] = restore(t, tg.members[0])
			tg.deliver(0, res.Commit)
			ev := mustProcess(t, tg.members[0], res.Commit) // merges the echo
			if sc, ok := ev.(*StagedCommit); !ok || tg.members[0].HasPendingCommit() || len(sc.Added) != len(res.Staged.Added) {
				t.Fatal("echo of the restored pending commit not recognised")
			}
			tg.agree()
			tg.chat()
		})
		t.Run(tc.name+"/discard", func(t *testing.T) {
			tg := newTestGroup(t, 3)
			for _, restored := range []bool{false, true} {
				if _, err := tg.members[0].Commit(tc.opts(t)); err != nil {
					t.Fatal(err)
				}
				if restored {
					tg.members[0] = restore(t, tg.members[0])
				}
				tg.members[0].DiscardPendingCommit()
				tg.members[0] = restore(t, tg.members[0])
			}
			// Another member's commit wins; its path must reach the
			// member whose commit was discarded.
			tg.commit(1, CommitOptions{ForcePath: true})
			tg.agree()
			tg.chat()
		})
	}
}

// TestGroupStateReplayAndSkippedKeys checks that the secret tree's state
// survives: keys of skipped messages stay usable, and keys already used
// stay gone.
func TestGroupStateReplayAndSkippedKeys(t *testing.T) {
	tg := newTestGroup(t, 2)
	var msgs []*MLSMessage
	for i := range 4 {
		m, err := tg.members[0].Encrypt([]byte{byte(i)}, nil)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, m)
	}
	bob := tg.members[1]
	mustProcess(t, bob, msgs[3]) // skips 0, 1 and 2
	mustProcess(t, bob, msgs[1])
	bob = restore(t, bob)
	for _, i := range []int{3, 1} {
		if _, err := bob.Process(roundTrip(t, msgs[i])); !errors.Is(err, ErrReplay) {
			t.Fatalf("message %d decrypted again after a restore: %v", i, err)
		}
	}
	for _, i := range []int{2, 0} {
		am, ok := mustProcess(t, bob, msgs[i]).(*ApplicationMessage)
		if !ok || !bytes.Equal(am.Data, []byte{byte(i)}) {
			t.Fatalf("skipped message %d lost in a restore", i)
		}
	}

	// A message of the previous epoch, read before a restore, stays read;
	// one not yet read can still be.
	read, _ := tg.members[0].Encrypt([]byte("read"), nil)
	unread, _ := tg.members[0].Encrypt([]byte("unread"), nil)
	mustProcess(t, bob, read)
	tg.members[1] = bob
	tg.commit(1, CommitOptions{ForcePath: true})
	bob = restore(t, tg.members[1])
	if _, err := bob.Process(roundTrip(t, read)); !errors.Is(err, ErrReplay) {
		t.Fatalf("past-epoch message decrypted again after a restore: %v", err)
	}
	if am, ok := mustProcess(t, bob, unread).(*ApplicationMessage); !ok || am.Epoch != bob.Epoch()-1 {
		t.Fatal("past-epoch message lost in a restore")
	}
}

// TestGroupStateConfig restores a group under a different Config, which
// is not part of the saved state.
func TestGroupStateConfig(t *testing.T) {
	tg := newTestGroup(t, 2)
	data, err := tg.members[0].MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	g, err := UnmarshalGroup(data, Config{EncryptHandshake: true})
	if err != nil {
		t.Fatal(err)
	}
	tg.members[0] = g
	res := tg.commit(0, CommitOptions{ForcePath: true})
	if res.Commit.WireFormat != WireFormatPrivateMessage {
		t.Fatal("restored group ignores its new Config")
	}
	tg.agree()
}

// richState returns the encoding of a member's state with every optional
// part present: cached proposals, a pending update, a pending commit, past
// epochs with skipped keys, resumption PSKs.
func richState(t testing.TB) ([]byte, *Group) {
	tg := newTestGroup(t, 3)
	tg.commit(1, CommitOptions{ForcePath: true})
	m1, _ := tg.members[1].Encrypt([]byte("1"), nil)
	m2, _ := tg.members[1].Encrypt([]byte("2"), nil)
	mustProcess(t, tg.members[0], m2)
	tg.commit(2, CommitOptions{ForcePath: true})
	_ = m1 // left unread: its key stays in the past epoch
	up, _ := tg.members[0].ProposeUpdate()
	tg.deliver(0, up)
	rm, _ := tg.members[2].ProposeRemove(1)
	tg.deliver(2, rm)
	if _, err := tg.members[0].Commit(CommitOptions{SkipCached: true, ForcePath: true}); err != nil {
		t.Fatal(err)
	}
	g := tg.members[0]
	if len(g.past) == 0 || len(g.proposals) != 2 || len(g.pendingUpdates) != 1 || g.pending == nil {
		t.Fatal("rich state lacks a part")
	}
	data, err := g.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return data, g
}

func TestGroupStateRejectsTruncation(t *testing.T) {
	data, g := richState(t)
	if _, err := UnmarshalGroup(data, g.cfg); err != nil {
		t.Fatal(err)
	}
	for n := range len(data) {
		if _, err := UnmarshalGroup(data[:n], g.cfg); err == nil {
			t.Fatalf("state truncated to %d of %d bytes accepted", n, len(data))
		} else if !errors.Is(err, ErrState) {
			t.Fatalf("truncation to %d: error %v does not wrap ErrState", n, err)
		}
	}
	if _, err := UnmarshalGroup(append(bytes.Clone(data), 0), g.cfg); err == nil {
		t.Fatal("trailing byte accepted")
	}
}

func TestGroupStateRejectsBadHeader(t *testing.T) {
	data, g := richState(t)
	for i := range len(groupStateMagic) + 3 { // magic, version, suite
		bad := bytes.Clone(data)
		bad[i] ^= 0x40
		if _, err := UnmarshalGroup(bad, g.cfg); err == nil {
			t.Fatalf("state with byte %d of its header changed accepted", i)
		}
	}
}

// TestGroupStateCorruption flips bits all over a saved state: decoding
// must never panic, must reject every change to a part that is checked,
// and what it accepts must encode back to the same bytes.
func TestGroupStateCorruption(t *testing.T) {
	data, g := richState(t)
	rng := rand.New(rand.NewPCG(1, 2))
	accepted := 0
	for i := range len(data) {
		bad := bytes.Clone(data)
		bad[i] ^= byte(1 << rng.IntN(8))
		r, err := UnmarshalGroup(bad, g.cfg)
		if err != nil {
			continue
		}
		accepted++
		again, err := r.MarshalBinary()
		if err != nil || !bytes.Equal(again, bad) {
			t.Fatalf("corrupted state (byte %d) accepted but encodes differently", i)
		}
	}
	// Only bytes of unauthenticated secrets (the exporter secret, say)
	// can change unnoticed; the tree, keys and transcript cannot.
	if accepted > len(data)/2 {
		t.Fatalf("%d of %d single-bit corruptions accepted", accepted, len(data))
	}
	t.Logf("%d of %d single-bit corruptions accepted (secrets without a check)", accepted, len(data))
}

func TestGroupWipe(t *testing.T) {
	_, g := richState(t)
	var secrets [][]byte
	secrets = append(secrets, g.priv.leaf, g.secrets.init, g.secrets.exporter, g.pendingUpdates[0].priv,
		g.pending.secrets.init, g.pending.priv.leaf, g.past[0].senderData)
	for _, k := range g.priv.nodes {
		secrets = append(secrets, k)
	}
	for _, psk := range g.resumption {
		secrets = append(secrets, psk)
	}
	for _, k := range g.past[0].keys.nodes {
		secrets = append(secrets, k)
	}
	g.Wipe()
	for i, s := range secrets {
		if !bytes.Equal(s, make([]byte, len(s))) {
			t.Fatalf("secret %d survived Wipe", i)
		}
	}
	if g.Active() || g.EpochAuthenticator() != nil {
		t.Fatal("wiped group is active")
	}
	if _, err := g.Encrypt([]byte("x"), nil); !errors.Is(err, ErrInactive) {
		t.Fatalf("wiped group encrypts: %v", err)
	}
	if _, err := g.MarshalBinary(); err != nil {
		t.Fatal(err)
	}
}

func TestKeyPackagePrivateRoundTrip(t *testing.T) {
	tg := newTestGroup(t, 2)
	kp := newTestClient(t, DefaultCipherSuite, "erin").keyPackage(t)
	data, err := kp.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	restored, err := UnmarshalKeyPackagePrivate(data)
	if err != nil {
		t.Fatal(err)
	}
	if s := fmt.Sprint(restored); s != "mls.KeyPackagePrivate(redacted)" {
		t.Fatalf("KeyPackagePrivate prints %q", s)
	}
	res := tg.commit(0, CommitOptions{Add: []*KeyPackage{kp.KeyPackage}})
	tg.members = append(tg.members, tg.join(res.Welcome, restored))
	tg.agree()
	tg.chat()

	for n := range len(data) {
		if _, err := UnmarshalKeyPackagePrivate(data[:n]); err == nil {
			t.Fatalf("KeyPackage state truncated to %d bytes accepted", n)
		}
	}
	// Keys that do not belong to the KeyPackage are refused.
	other := newTestClient(t, DefaultCipherSuite, "erin").keyPackage(t)
	for _, swap := range []func(p *KeyPackagePrivate){
		func(p *KeyPackagePrivate) { p.initPriv = other.initPriv },
		func(p *KeyPackagePrivate) { p.encryptionPriv = other.encryptionPriv },
		func(p *KeyPackagePrivate) { p.sigKey = other.sigKey },
		func(p *KeyPackagePrivate) { p.KeyPackage = other.KeyPackage },
	} {
		p, _ := UnmarshalKeyPackagePrivate(data)
		swap(p)
		bad, err := p.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := UnmarshalKeyPackagePrivate(bad); !errors.Is(err, ErrState) {
			t.Fatalf("mismatched KeyPackage state: %v", err)
		}
	}
}

// TestRejectedCommitLeavesStateUnchanged sends a commit without a path
// whose confirmation tag is wrong (with a valid signature and membership
// tag, as a member could): the receiver must reject it and keep its state,
// private keys included, byte for byte.
func TestRejectedCommitLeavesStateUnchanged(t *testing.T) {
	tg := newTestGroup(t, 3)
	res, err := tg.members[1].Commit(CommitOptions{Add: []*KeyPackage{newTestClient(t, DefaultCipherSuite, "x").keyPackage(t).KeyPackage}})
	if err != nil {
		t.Fatal(err)
	}
	tg.members[1].DiscardPendingCommit()
	g := tg.members[0]
	ac := res.Commit.PublicMessage.authenticatedContent()
	ac.Auth.ConfirmationTag = bytes.Clone(ac.Auth.ConfirmationTag)
	ac.Auth.ConfirmationTag[0] ^= 1
	pm, err := protectPublic(g.suite, ac, g.secrets.membership, g.ctxRaw)
	if err != nil {
		t.Fatal(err)
	}
	before, _ := g.MarshalBinary()
	if _, err := g.Process(&MLSMessage{WireFormat: WireFormatPublicMessage, PublicMessage: pm}); err == nil {
		t.Fatal("commit with a wrong confirmation tag accepted")
	}
	if after, _ := g.MarshalBinary(); !bytes.Equal(before, after) {
		t.Fatal("rejected commit changed the group's state")
	}
	tg.commit(2, CommitOptions{ForcePath: true})
	tg.agree()
	tg.chat()
}
