package mls

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

// testClient is one device in a test: its signature key and identity.
type testClient struct {
	name string
	key  *SignatureKey
}

func newTestClient(t testing.TB, cs CipherSuite, name string) *testClient {
	t.Helper()
	k, err := GenerateSignatureKey(cs)
	if err != nil {
		t.Fatal(err)
	}
	return &testClient{name: name, key: k}
}

func (c *testClient) keyPackage(t testing.TB) *KeyPackagePrivate {
	t.Helper()
	kp, err := NewKeyPackage(c.key, KeyPackageOptions{Credential: BasicCredential([]byte(c.name))})
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

// roundTrip encodes and decodes a message, as the network would.
func roundTrip(t testing.TB, m *MLSMessage) *MLSMessage {
	t.Helper()
	data, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	out, err := UnmarshalMLSMessage(data)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func mustProcess(t testing.TB, g *Group, m *MLSMessage) Event {
	t.Helper()
	ev, err := g.Process(roundTrip(t, m))
	if err != nil {
		t.Fatalf("process: %v", err)
	}
	if sc, ok := ev.(*StagedCommit); ok {
		if err := g.Merge(sc); err != nil {
			t.Fatalf("merge: %v", err)
		}
	}
	return ev
}

// sameState checks that every group agrees on the epoch authenticator.
func sameState(t testing.TB, gs ...*Group) {
	t.Helper()
	for _, g := range gs[1:] {
		if g.Epoch() != gs[0].Epoch() || !bytes.Equal(g.EpochAuthenticator(), gs[0].EpochAuthenticator()) {
			t.Fatalf("groups disagree: epoch %d vs %d", g.Epoch(), gs[0].Epoch())
		}
	}
}

func TestGroupLifecycle(t *testing.T) {
	for cs := range suites {
		t.Run(cs.String(), func(t *testing.T) {
			alice, bob, carol := newTestClient(t, cs, "alice"), newTestClient(t, cs, "bob"), newTestClient(t, cs, "carol")
			ga, err := CreateGroup(alice.key, BasicCredential([]byte("alice")), CreateGroupOptions{})
			if err != nil {
				t.Fatal(err)
			}
			kpb, kpc := bob.keyPackage(t), carol.keyPackage(t)
			res, err := ga.Commit(CommitOptions{Add: []*KeyPackage{kpb.KeyPackage, kpc.KeyPackage}})
			if err != nil {
				t.Fatal(err)
			}
			if err := ga.MergePendingCommit(); err != nil {
				t.Fatal(err)
			}
			w := roundTrip(t, res.Welcome)
			gb, err := Join(w.Welcome, kpb, JoinOptions{RatchetTree: ga.RatchetTree()})
			if err != nil {
				t.Fatalf("bob joins: %v", err)
			}
			gc, err := Join(w.Welcome, kpc, JoinOptions{RatchetTree: ga.RatchetTree()})
			if err != nil {
				t.Fatalf("carol joins: %v", err)
			}
			sameState(t, ga, gb, gc)

			// Application messages in every direction.
			for i, from := range []*Group{ga, gb, gc} {
				msg := []byte(fmt.Sprintf("hello from %d", i))
				ct, err := from.Encrypt(msg, nil)
				if err != nil {
					t.Fatal(err)
				}
				for _, to := range []*Group{ga, gb, gc} {
					if to == from {
						continue
					}
					ev := mustProcess(t, to, ct)
					am, ok := ev.(*ApplicationMessage)
					if !ok || !bytes.Equal(am.Data, msg) || am.Sender != from.Index() {
						t.Fatalf("got %#v", ev)
					}
				}
			}

			// bob updates by proposal, carol commits it.
			up, err := gb.ProposeUpdate()
			if err != nil {
				t.Fatal(err)
			}
			mustProcess(t, ga, up)
			mustProcess(t, gc, up)
			cres, err := gc.Commit(CommitOptions{})
			if err != nil {
				t.Fatal(err)
			}
			mustProcess(t, ga, cres.Commit)
			mustProcess(t, gb, cres.Commit)
			if err := gc.MergePendingCommit(); err != nil {
				t.Fatal(err)
			}
			sameState(t, ga, gb, gc)

			// alice removes carol; carol's saved state cannot read what follows.
			rres, err := ga.Commit(CommitOptions{Remove: []uint32{gc.Index()}})
			if err != nil {
				t.Fatal(err)
			}
			ga.MergePendingCommit()
			mustProcess(t, gb, rres.Commit)
			ev := mustProcess(t, gc, rres.Commit)
			if !ev.(*StagedCommit).SelfRemoved || gc.Active() {
				t.Fatal("carol does not know she was removed")
			}
			sameState(t, ga, gb)
			secret, _ := ga.Encrypt([]byte("after carol"), nil)
			if _, err := gc.Process(roundTrip(t, secret)); err == nil {
				t.Fatal("removed member decrypted a message of the next epoch")
			}
			mustProcess(t, gb, secret)

			// A new device joins by external commit.
			dave := newTestClient(t, cs, "dave")
			gi, err := ga.GroupInfo(true)
			if err != nil {
				t.Fatal(err)
			}
			gd, commit, err := ExternalJoin(roundTrip(t, gi), dave.key, BasicCredential([]byte("dave")), ExternalJoinOptions{})
			if err != nil {
				t.Fatalf("external join: %v", err)
			}
			mustProcess(t, ga, commit)
			mustProcess(t, gb, commit)
			sameState(t, ga, gb, gd)
			ct, _ := gd.Encrypt([]byte("dave here"), nil)
			mustProcess(t, ga, ct)

			// Exporter agreement (used for call keys).
			ea, _ := ga.Export("SFrame 1.0 Base Key", nil, 16)
			ed, _ := gd.Export("SFrame 1.0 Base Key", nil, 16)
			if !bytes.Equal(ea, ed) {
				t.Fatal("exporter differs")
			}
		})
	}
}

func TestGroupRejects(t *testing.T) {
	cs := DefaultCipherSuite
	alice, bob := newTestClient(t, cs, "alice"), newTestClient(t, cs, "bob")
	ga, _ := CreateGroup(alice.key, BasicCredential([]byte("alice")), CreateGroupOptions{})
	kpb := bob.keyPackage(t)
	res, err := ga.Commit(CommitOptions{Add: []*KeyPackage{kpb.KeyPackage}, InlineTree: true})
	if err != nil {
		t.Fatal(err)
	}
	ga.MergePendingCommit()
	gb, err := Join(res.Welcome.Welcome, kpb, JoinOptions{})
	if err != nil {
		t.Fatal(err)
	}
	epoch := gb.Epoch()
	auth := gb.EpochAuthenticator()
	unchanged := func(t *testing.T) {
		t.Helper()
		if gb.Epoch() != epoch || !bytes.Equal(gb.EpochAuthenticator(), auth) {
			t.Fatal("group changed after a rejected message")
		}
	}

	t.Run("replay", func(t *testing.T) {
		ct, _ := ga.Encrypt([]byte("once"), nil)
		mustProcess(t, gb, ct)
		if _, err := gb.Process(roundTrip(t, ct)); !errors.Is(err, ErrReplay) {
			t.Fatalf("replay: %v", err)
		}
		unchanged(t)
	})
	t.Run("tampered", func(t *testing.T) {
		ct, _ := ga.Encrypt([]byte("x"), nil)
		data, _ := ct.Marshal()
		data[len(data)-3] ^= 1
		m, err := UnmarshalMLSMessage(data)
		if err == nil {
			if _, err = gb.Process(m); err == nil {
				t.Fatal("tampered message accepted")
			}
		}
		unchanged(t)
	})
	t.Run("wrong epoch", func(t *testing.T) {
		other, _ := CreateGroup(alice.key, BasicCredential([]byte("alice")), CreateGroupOptions{GroupID: ga.GroupID()})
		ct, _ := other.Encrypt([]byte("x"), nil)
		if _, err := gb.Process(roundTrip(t, ct)); err == nil {
			t.Fatal("message of another epoch accepted")
		}
		unchanged(t)
	})
	t.Run("commit from non-member", func(t *testing.T) {
		mallory := newTestClient(t, cs, "mallory")
		gm, _ := CreateGroup(mallory.key, BasicCredential([]byte("mallory")), CreateGroupOptions{GroupID: ga.GroupID()})
		// Advance mallory's fake group to the same epoch number.
		for gm.Epoch() < gb.Epoch() {
			gm.Commit(CommitOptions{ForcePath: true})
			gm.MergePendingCommit()
		}
		c, err := gm.Commit(CommitOptions{ForcePath: true})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := gb.Process(roundTrip(t, c.Commit)); err == nil {
			t.Fatal("commit from a non-member accepted")
		}
		unchanged(t)
	})
	t.Run("expired key package", func(t *testing.T) {
		carol := newTestClient(t, cs, "carol")
		kp := carol.keyPackage(t)
		kp.KeyPackage.LeafNode.Lifetime.NotAfter = 1
		if _, err := ga.Commit(CommitOptions{Add: []*KeyPackage{kp.KeyPackage}}); err == nil {
			t.Fatal("expired KeyPackage accepted")
		}
	})
	t.Run("truncated welcome", func(t *testing.T) {
		data, _ := res.Welcome.Marshal()
		for _, n := range []int{0, 1, 10, len(data) / 2, len(data) - 1} {
			if m, err := UnmarshalMLSMessage(data[:n]); err == nil {
				t.Fatalf("truncated Welcome (%d bytes) parsed: %v", n, m.WireFormat)
			}
		}
	})
}

// TestCommitGroupInfo checks CommitOptions.GroupInfo: no GroupInfo by
// default, and otherwise one for the new epoch, with the ratchet tree or
// without it, from which a new device joins by external commit.
func TestCommitGroupInfo(t *testing.T) {
	v := newValidationGroup(t, DefaultCipherSuite)
	ga, gb := v.groups[0], v.groups[1]
	res, err := ga.Commit(CommitOptions{ForcePath: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.GroupInfo != nil {
		t.Error("a GroupInfo nobody asked for")
	}
	ga.DiscardPendingCommit()
	for _, opt := range []GroupInfoOption{GroupInfoExternalTree, GroupInfoInlineTree} {
		res, err := ga.Commit(CommitOptions{ForcePath: true, GroupInfo: opt})
		if err != nil {
			t.Fatal(err)
		}
		if err := ga.MergePendingCommit(); err != nil {
			t.Fatal(err)
		}
		mustProcess(t, gb, res.Commit)
		gi := roundTrip(t, res.GroupInfo)
		if gi.GroupInfo.GroupContext.Epoch != ga.Epoch() {
			t.Fatalf("option %d: GroupInfo of epoch %d, group is at %d", opt, gi.GroupInfo.GroupContext.Epoch, ga.Epoch())
		}
		_, inline := gi.GroupInfo.Extensions.Find(ExtRatchetTree)
		if inline != (opt == GroupInfoInlineTree) {
			t.Fatalf("option %d: ratchet tree inline: %v", opt, inline)
		}
		var o ExternalJoinOptions
		if !inline {
			o.RatchetTree = ga.RatchetTree()
		}
		name := fmt.Sprint("device ", opt)
		gd, commit, err := ExternalJoin(gi, newTestClient(t, DefaultCipherSuite, name).key, BasicCredential([]byte(name)), o)
		if err != nil {
			t.Fatalf("option %d: external join: %v", opt, err)
		}
		mustProcess(t, ga, commit)
		mustProcess(t, gb, commit)
		sameState(t, ga, gb, gd)
	}
}
