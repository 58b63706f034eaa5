package mls

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// Commits that break a rule of RFC 9420 §12.2 (proposal list validity),
// §12.1 (single proposals) or §12.4.2 (processing a commit) are built by
// hand, signed with the committer's real keys, and must be rejected
// without changing the receiver.

// signAs signs content as whoever holds key, over groupContext, for a
// PublicMessage, with none of the checks a Group applies to its own
// commits.
func signAs(t *testing.T, key *SignatureKey, groupContext []byte, content *FramedContent) *AuthenticatedContent {
	t.Helper()
	ac, err := signFramedContent(key, WireFormatPublicMessage, content, groupContext)
	if err != nil {
		t.Fatal(err)
	}
	return ac
}

// publicFrame wraps ac as a PublicMessage of g's current epoch, with the
// membership tag when the sender is a member.
func publicFrame(t *testing.T, g *Group, ac *AuthenticatedContent) *MLSMessage {
	t.Helper()
	pm, err := protectPublic(g.suite, ac, g.secrets.membership, g.ctxRaw)
	if err != nil {
		t.Fatal(err)
	}
	return &MLSMessage{WireFormat: WireFormatPublicMessage, PublicMessage: pm}
}

// forgeCommit signs a commit of list and path as the member g, with an
// arbitrary confirmation tag.
func forgeCommit(t *testing.T, g *Group, list []ProposalOrRef, path *UpdatePath) *MLSMessage {
	t.Helper()
	ac := signAs(t, g.sigKey, g.ctxRaw, &FramedContent{
		GroupID:     g.ctx.GroupID,
		Epoch:       g.ctx.Epoch,
		Sender:      MemberSender(g.Index()),
		ContentType: ContentCommit,
		Commit:      &Commit{Proposals: list, Path: path},
	})
	ac.Auth.ConfirmationTag = bytes.Repeat([]byte{0x42}, g.suite.nh())
	return publicFrame(t, g, ac)
}

// withTamperedTag reframes g's commit m with one bit of its confirmation
// tag flipped and a matching membership tag.
func withTamperedTag(t *testing.T, g *Group, m *MLSMessage) *MLSMessage {
	t.Helper()
	ac := roundTrip(t, m).PublicMessage.authenticatedContent()
	ac.Auth.ConfirmationTag[0] ^= 1
	return publicFrame(t, g, ac)
}

func byValue(p *Proposal) ProposalOrRef {
	return ProposalOrRef{Type: ProposalOrRefProposal, Proposal: p}
}

func byRef(ref ProposalRef) ProposalOrRef {
	return ProposalOrRef{Type: ProposalOrRefReference, Reference: ref}
}

func removeOf(i uint32) ProposalOrRef {
	return byValue(&Proposal{Type: ProposalRemove, Remove: &RemoveProposal{Removed: i}})
}

func addOf(kp *KeyPackage) ProposalOrRef {
	return byValue(&Proposal{Type: ProposalAdd, Add: &AddProposal{KeyPackage: *kp}})
}

func pskOf(id PreSharedKeyID) ProposalOrRef {
	return byValue(&Proposal{Type: ProposalPSK, PreSharedKey: &PreSharedKeyProposal{PSK: id}})
}

func gceOf(exts Extensions) ProposalOrRef {
	return byValue(&Proposal{Type: ProposalGroupContextExtensions, GroupContextExtensions: &GroupContextExtensionsProposal{Extensions: exts}})
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// validationGroup is a group of alice (0), bob (1), carol (2) and dave (3),
// each with a state, created by alice.
type validationGroup struct {
	clients []*testClient
	groups  []*Group
}

func newValidationGroup(t *testing.T, cs CipherSuite) *validationGroup {
	t.Helper()
	v := &validationGroup{}
	for _, name := range []string{"alice", "bob", "carol", "dave"} {
		v.clients = append(v.clients, newTestClient(t, cs, name))
	}
	ga, err := CreateGroup(v.clients[0].key, BasicCredential([]byte("alice")), CreateGroupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var kps []*KeyPackagePrivate
	var pubs []*KeyPackage
	for _, c := range v.clients[1:] {
		kp := c.keyPackage(t)
		kps, pubs = append(kps, kp), append(pubs, kp.KeyPackage)
	}
	res, err := ga.Commit(CommitOptions{Add: pubs, InlineTree: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := ga.MergePendingCommit(); err != nil {
		t.Fatal(err)
	}
	v.groups = append(v.groups, ga)
	for _, kp := range kps {
		g, err := Join(roundTrip(t, res.Welcome).Welcome, kp, JoinOptions{})
		if err != nil {
			t.Fatal(err)
		}
		v.groups = append(v.groups, g)
	}
	sameState(t, v.groups...)
	return v
}

func TestCommitValidation(t *testing.T) {
	for cs := range suites {
		t.Run(cs.String(), func(t *testing.T) {
			t.Parallel()
			testCommitValidation(t, cs)
		})
	}
}

func testCommitValidation(t *testing.T, cs CipherSuite) {
	v := newValidationGroup(t, cs)
	ga, gb, gc := v.groups[0], v.groups[1], v.groups[2]
	carol := v.clients[2]
	nh := ga.suite.nh()

	// Proposals the commits below refer to, received by bob.
	cacheAt := func(g *Group, m *MLSMessage) ProposalRef {
		t.Helper()
		ev, err := g.Process(roundTrip(t, m))
		if err != nil {
			t.Fatal(err)
		}
		return ev.(*ProposalEvent).Ref
	}
	carolUpdate, err := gc.ProposeUpdate()
	if err != nil {
		t.Fatal(err)
	}
	carolUpdateRef := cacheAt(gb, carolUpdate)
	aliceUpdate, err := ga.ProposeUpdate()
	if err != nil {
		t.Fatal(err)
	}
	aliceUpdateRef := cacheAt(gb, aliceUpdate)
	aliceUpdateValue := aliceUpdate.PublicMessage.Content.Proposal

	erin := newTestClient(t, cs, "erin")
	erinKP1, erinKP2 := erin.keyPackage(t).KeyPackage, erin.keyPackage(t).KeyPackage
	carolAgain := carol.keyPackage(t).KeyPackage // carol's signature key, already in the group
	other := CipherSuite(1)
	if cs == other {
		other = 3
	}
	otherSuite := newTestClient(t, other, "frank").keyPackage(t).KeyPackage

	externalPSK := func(id string) PreSharedKeyID {
		return PreSharedKeyID{PSKType: PSKExternal, PSKID: []byte(id), PSKNonce: randomBytes(nh)}
	}
	resumption := PreSharedKeyID{PSKType: PSKResumption, Usage: ResumptionReinit, PSKGroupID: gb.GroupID(), PSKEpoch: gb.Epoch(), PSKNonce: randomBytes(nh)}
	shortNonce := externalPSK("psk")
	shortNonce.PSKNonce = shortNonce.PSKNonce[1:]
	dupPSK := externalPSK("psk")

	// A genuine commit with a path, and one without, for the tag tests.
	withPath, err := ga.Commit(CommitOptions{ForcePath: true, SkipCached: true})
	if err != nil {
		t.Fatal(err)
	}
	ga.DiscardPendingCommit()
	withoutPath, err := ga.Commit(CommitOptions{Add: []*KeyPackage{erinKP1}, SkipCached: true})
	if err != nil {
		t.Fatal(err)
	}
	if withoutPath.Commit.PublicMessage.Content.Commit.Path != nil {
		t.Fatal("an Add-only commit carries a path")
	}
	ga.DiscardPendingCommit()

	reinit := byValue(&Proposal{Type: ProposalReInit, ReInit: &ReInitProposal{GroupID: randomBytes(16), Version: MLS10, CipherSuite: cs}})
	cases := []struct {
		name string
		msg  *MLSMessage
		want string // in the error, so that the right rule rejected it
	}{
		{"duplicate Remove of one leaf", forgeCommit(t, ga, []ProposalOrRef{removeOf(2), removeOf(2)}, nil), "several Update or Remove"},
		{"Update and Remove of one leaf", forgeCommit(t, ga, []ProposalOrRef{byRef(carolUpdateRef), removeOf(2)}, nil), "several Update or Remove"},
		{"one Update referenced twice", forgeCommit(t, ga, []ProposalOrRef{byRef(carolUpdateRef), byRef(carolUpdateRef)}, nil), "several Update or Remove"},
		{"committer's Update by value", forgeCommit(t, ga, []ProposalOrRef{byValue(aliceUpdateValue)}, nil), "committer's own Update"},
		{"committer's Update by reference", forgeCommit(t, ga, []ProposalOrRef{byRef(aliceUpdateRef)}, nil), "committer's own Update"},
		{"Remove of the committer", forgeCommit(t, ga, []ProposalOrRef{removeOf(0)}, nil), "remove the committer"},
		{"Remove of a leaf outside the tree", forgeCommit(t, ga, []ProposalOrRef{removeOf(9)}, nil), "blank or unknown leaf"},
		{"two GroupContextExtensions", forgeCommit(t, ga, []ProposalOrRef{gceOf(nil), gceOf(nil)}, nil), "several GroupContextExtensions"},
		{"GroupContextExtensions unsupported by members", forgeCommit(t, ga, []ProposalOrRef{gceOf(Extensions{{Type: 0xff00}})}, nil), "does not support"},
		{"ReInit with another proposal", forgeCommit(t, ga, []ProposalOrRef{reinit, removeOf(2)}, nil), "only proposal"},
		{"ReInit to an older version", forgeCommit(t, ga, []ProposalOrRef{byValue(&Proposal{Type: ProposalReInit, ReInit: &ReInitProposal{Version: 0, CipherSuite: cs}})}, nil), "older protocol version"},
		{"ExternalInit in a member commit", forgeCommit(t, ga, []ProposalOrRef{byValue(&Proposal{Type: ProposalExternalInit, ExternalInit: &ExternalInitProposal{KEMOutput: randomBytes(32)}})}, nil), "ExternalInit in a commit by a member"},
		{"unknown proposal reference", forgeCommit(t, ga, []ProposalOrRef{byRef(randomBytes(nh))}, nil), "unknown proposal"},
		{"Add of a client already in the group", forgeCommit(t, ga, []ProposalOrRef{addOf(carolAgain)}, nil), "signature key"},
		{"two Adds of one client", forgeCommit(t, ga, []ProposalOrRef{addOf(erinKP1), addOf(erinKP2)}, nil), "signature key"},
		{"Add of a KeyPackage of another suite", forgeCommit(t, ga, []ProposalOrRef{addOf(otherSuite)}, nil), "cipher suite"},
		{"missing required path", forgeCommit(t, ga, []ProposalOrRef{removeOf(3)}, nil), "required path"},
		{"empty commit without a path", forgeCommit(t, ga, nil, nil), "required path"},
		{"Update without a path", forgeCommit(t, ga, []ProposalOrRef{byRef(carolUpdateRef)}, nil), "required path"},
		{"GroupContextExtensions without a path", forgeCommit(t, ga, []ProposalOrRef{gceOf(nil)}, nil), "required path"},
		{"PSK unknown to the receiver", forgeCommit(t, ga, []ProposalOrRef{pskOf(externalPSK("nobody knows"))}, nil), "unknown pre-shared key"},
		{"one PreSharedKeyID twice", forgeCommit(t, ga, []ProposalOrRef{pskOf(dupPSK), pskOf(dupPSK)}, nil), "same PreSharedKeyID"},
		{"PSK nonce of the wrong length", forgeCommit(t, ga, []ProposalOrRef{pskOf(shortNonce)}, nil), "nonce"},
		{"resumption PSK for a reinit outside one", forgeCommit(t, ga, []ProposalOrRef{pskOf(resumption)}, nil), "resumption PSK with usage"},
		{"wrong confirmation tag, with path", withTamperedTag(t, ga, withPath.Commit), "confirmation tag"},
		{"wrong confirmation tag, without path", withTamperedTag(t, ga, withoutPath.Commit), "confirmation tag"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rejected(t, gb, tc.msg, tc.want)
		})
	}

	t.Run("external commits", func(t *testing.T) {
		testExternalCommitValidation(t, v, carolUpdateRef)
	})

	// The genuine commits pass, and after all the rejections (and alice's
	// discarded commits) every member still follows the group.
	t.Run("genuine commits still work", func(t *testing.T) {
		for _, m := range []*MLSMessage{withPath.Commit, withoutPath.Commit} {
			ev, err := gb.Process(roundTrip(t, m))
			if err != nil {
				t.Fatalf("genuine commit rejected: %v", err)
			}
			if _, ok := ev.(*StagedCommit); !ok {
				t.Fatalf("got %T", ev)
			}
		}
		res, err := gc.Commit(CommitOptions{ForcePath: true})
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range []*Group{ga, gb, v.groups[3]} {
			mustProcess(t, g, res.Commit)
		}
		if err := gc.MergePendingCommit(); err != nil {
			t.Fatal(err)
		}
		sameState(t, v.groups...)
		ct, err := ga.Encrypt([]byte("still here"), nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range v.groups[1:] {
			mustProcess(t, g, ct)
		}
	})
}

// rejected checks that g refuses m with an error mentioning want, and
// that g's epoch, epoch authenticator and group context are unchanged.
func rejected(t *testing.T, g *Group, m *MLSMessage, want string) {
	t.Helper()
	epoch, auth, ctx := g.Epoch(), g.EpochAuthenticator(), bytes.Clone(g.ctxRaw)
	ev, err := g.Process(roundTrip(t, m))
	if err == nil {
		t.Fatalf("accepted, yielding %T", ev)
	}
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), want) {
		t.Fatalf("rejected for another reason: %v (want %q)", err, want)
	}
	if g.Epoch() != epoch || !bytes.Equal(g.EpochAuthenticator(), auth) || !bytes.Equal(g.ctxRaw, ctx) {
		t.Fatal("group changed after a rejected commit")
	}
}

// testExternalCommitValidation checks the rules for external commits
// (§12.2, §12.4.3.2) at bob: a genuine external commit by erin is
// re-signed with other proposal lists.
func testExternalCommitValidation(t *testing.T, v *validationGroup, cachedRef ProposalRef) {
	ga, gb := v.groups[0], v.groups[1]
	cs := ga.CipherSuite()
	erin := newTestClient(t, cs, "erin")
	gi, err := ga.GroupInfo(true)
	if err != nil {
		t.Fatal(err)
	}
	_, commit, err := ExternalJoin(roundTrip(t, gi), erin.key, BasicCredential([]byte("erin")), ExternalJoinOptions{})
	if err != nil {
		t.Fatal(err)
	}
	orig := commit.PublicMessage.Content
	extInit := orig.Commit.Proposals[0]
	if extInit.Proposal == nil || extInit.Proposal.Type != ProposalExternalInit {
		t.Fatal("external commit does not start with its ExternalInit")
	}
	reframe := func(list []ProposalOrRef) *MLSMessage {
		c := orig
		c.Commit = &Commit{Proposals: list, Path: orig.Commit.Path}
		ac := signAs(t, erin.key, gb.ctxRaw, &c)
		ac.Auth.ConfirmationTag = commit.PublicMessage.Auth.ConfirmationTag
		return publicFrame(t, gb, ac)
	}

	// The genuine one is accepted (staged, not merged).
	ev, err := gb.Process(roundTrip(t, commit))
	if err != nil {
		t.Fatalf("genuine external commit rejected: %v", err)
	}
	if sc, ok := ev.(*StagedCommit); !ok || sc.Committer.Type != SenderNewMemberCommit {
		t.Fatalf("got %#v", ev)
	}

	kp := newTestClient(t, cs, "gina").keyPackage(t).KeyPackage
	cases := []struct {
		name string
		list []ProposalOrRef
		want string
	}{
		{"no ExternalInit", nil, "exactly one ExternalInit"},
		{"two ExternalInits", []ProposalOrRef{extInit, extInit}, "exactly one ExternalInit"},
		{"an Add", []ProposalOrRef{extInit, addOf(kp)}, "only ExternalInit"},
		{"a GroupContextExtensions", []ProposalOrRef{extInit, gceOf(nil)}, "only ExternalInit"},
		{"two Removes", []ProposalOrRef{extInit, removeOf(2), removeOf(3)}, "only ExternalInit"},
		{"Remove of another member", []ProposalOrRef{extInit, removeOf(2)}, "joiner's old leaf"},
		{"a proposal by reference", []ProposalOrRef{extInit, byRef(cachedRef)}, "by reference"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rejected(t, gb, reframe(tc.list), tc.want)
		})
	}
}

// TestExternalJoinContextExtensions: a joiner by external commit supports
// the group's own GroupContext extensions, as every member must (§13.4),
// and refuses to send a leaf the members would reject.
func TestExternalJoinContextExtensions(t *testing.T) {
	cs := DefaultCipherSuite
	alice, erin := newTestClient(t, cs, "alice"), newTestClient(t, cs, "erin")
	const appExt ExtensionType = 0xff00
	ga, err := CreateGroup(alice.key, BasicCredential([]byte("alice")), CreateGroupOptions{
		Extensions: Extensions{{Type: appExt, Data: []byte("app")}},
	})
	if err != nil {
		t.Fatal(err)
	}
	gi, err := ga.GroupInfo(true)
	if err != nil {
		t.Fatal(err)
	}
	ge, commit, err := ExternalJoin(roundTrip(t, gi), erin.key, BasicCredential([]byte("erin")), ExternalJoinOptions{})
	if err != nil {
		t.Fatal(err)
	}
	mustProcess(t, ga, commit)
	sameState(t, ga, ge)

	// A required capability the joiner lacks: it fails before sending.
	req := mustEncode(&RequiredCapabilities{Proposals: []ProposalType{0xff01}})
	res, err := ga.Commit(CommitOptions{Extensions: Extensions{{Type: appExt}, {Type: ExtRequiredCapabilities, Data: req}}})
	if err == nil {
		t.Fatalf("a required proposal type nobody supports was accepted: %v", res)
	}
	g2, err := CreateGroup(alice.key, BasicCredential([]byte("alice")), CreateGroupOptions{
		Extensions:    Extensions{{Type: ExtRequiredCapabilities, Data: req}},
		LeafProposals: []ProposalType{0xff01},
	})
	if err != nil {
		t.Fatal(err)
	}
	gi2, err := g2.GroupInfo(true)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := ExternalJoin(roundTrip(t, gi2), erin.key, BasicCredential([]byte("erin")), ExternalJoinOptions{}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("external join without a required capability: %v", err)
	}
	if _, c, err := ExternalJoin(roundTrip(t, gi2), erin.key, BasicCredential([]byte("erin")), ExternalJoinOptions{LeafProposals: []ProposalType{0xff01}}); err != nil {
		t.Fatal(err)
	} else {
		mustProcess(t, g2, c)
	}
}

// TestCommitSamePSKTwice: one external PSK proposed twice, with distinct
// nonces, is a valid commit (§12.2 forbids only a repeated
// PreSharedKeyID), and both instances enter the key schedule.
func TestCommitSamePSKTwice(t *testing.T) {
	cs := DefaultCipherSuite
	psk := map[string][]byte{"shared": bytes.Repeat([]byte{7}, 32)}
	cfg := Config{ExternalPSK: func(id []byte) ([]byte, bool) { p, ok := psk[string(id)]; return p, ok }}
	alice, bob := newTestClient(t, cs, "alice"), newTestClient(t, cs, "bob")
	ga, err := CreateGroup(alice.key, BasicCredential([]byte("alice")), CreateGroupOptions{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	kp := bob.keyPackage(t)
	res, err := ga.Commit(CommitOptions{Add: []*KeyPackage{kp.KeyPackage}, InlineTree: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := ga.MergePendingCommit(); err != nil {
		t.Fatal(err)
	}
	gb, err := Join(roundTrip(t, res.Welcome).Welcome, kp, JoinOptions{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	res, err = ga.Commit(CommitOptions{ExternalPSKs: [][]byte{[]byte("shared"), []byte("shared")}})
	if err != nil {
		t.Fatal(err)
	}
	if err := ga.MergePendingCommit(); err != nil {
		t.Fatal(err)
	}
	sc := mustProcess(t, gb, res.Commit).(*StagedCommit)
	if len(sc.PSKs) != 2 {
		t.Fatalf("%d PSKs staged, want 2", len(sc.PSKs))
	}
	sameState(t, ga, gb)
}

// TestCommitAddsFirstError checks the KeyPackages of a large Add commit,
// which are verified in parallel: with several invalid ones, creating or
// processing the commit fails with the error of the first, every time,
// and leaves the group as it was.
func TestCommitAddsFirstError(t *testing.T) {
	v := newValidationGroup(t, DefaultCipherSuite)
	ga, gb := v.groups[0], v.groups[1]
	var kps []*KeyPackage
	for i := range 24 {
		kp := *newTestClient(t, DefaultCipherSuite, fmt.Sprint("joiner ", i)).keyPackage(t).KeyPackage
		switch i {
		case 7:
			kp.Signature = bytes.Clone(kp.Signature)
			kp.Signature[0] ^= 1
		case 15:
			kp.LeafNode.Signature = bytes.Clone(kp.LeafNode.Signature)
			kp.LeafNode.Signature[0] ^= 1
		}
		kps = append(kps, &kp)
	}
	const want = "KeyPackage signature does not verify" // the 8th's, not the 16th's
	saved := mustSave(t, ga)
	var list []ProposalOrRef
	for _, kp := range kps {
		list = append(list, addOf(kp))
	}
	m := forgeCommit(t, ga, list, nil)
	for range 5 {
		_, err := ga.Commit(CommitOptions{Add: kps})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("commit: err = %v, want %q", err, want)
		}
		if !bytes.Equal(mustSave(t, ga), saved) {
			t.Fatal("a failed commit changed the group")
		}
		rejected(t, gb, m, want)
	}
}
