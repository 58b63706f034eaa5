package mls

import (
	"bytes"
	"testing"
)

// resumeTestGroup returns alice's group, which the other clients have
// joined, and their groups.
func resumeTestGroup(t *testing.T, cs CipherSuite, others ...*testClient) (*Group, []*Group) {
	t.Helper()
	alice := newTestClient(t, cs, "alice")
	ga, err := CreateGroup(alice.key, BasicCredential([]byte("alice")), CreateGroupOptions{GroupID: []byte("old")})
	if err != nil {
		t.Fatal(err)
	}
	kps := make([]*KeyPackagePrivate, len(others))
	var add []*KeyPackage
	for i, c := range others {
		kps[i] = c.keyPackage(t)
		add = append(add, kps[i].KeyPackage)
	}
	res, err := ga.Commit(CommitOptions{Add: add, InlineTree: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := ga.MergePendingCommit(); err != nil {
		t.Fatal(err)
	}
	gs := make([]*Group, len(others))
	for i := range others {
		if gs[i], err = Join(roundTrip(t, res.Welcome).Welcome, kps[i], JoinOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	return ga, gs
}

// resumeTestCommit has g commit what it has cached and the others apply it.
func resumeTestCommit(t *testing.T, g *Group, others ...*Group) *CommitResult {
	t.Helper()
	res, err := g.Commit(CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.MergePendingCommit(); err != nil {
		t.Fatal(err)
	}
	for _, o := range others {
		mustProcess(t, o, res.Commit)
	}
	return res
}

func TestReInitChangesSuite(t *testing.T) {
	bob := newTestClient(t, X25519_AES128GCM_SHA256_Ed25519, "bob")
	ga, gs := resumeTestGroup(t, X25519_AES128GCM_SHA256_Ed25519, bob)
	gb := gs[0]
	if _, _, err := ga.ReInitGroup(ga.sigKey, nil, ResumeOptions{}); err == nil {
		t.Fatal("a live group was re-initialised")
	}
	exts := Extensions{{Type: ExtRequiredCapabilities, Data: []byte{0, 0, 0}}}
	p, err := ga.ProposeReInit([]byte("new"), P256_AES128GCM_SHA256_P256, exts)
	if err != nil {
		t.Fatal(err)
	}
	mustProcess(t, gb, p)
	res := resumeTestCommit(t, ga, gb)
	if res.Staged.ReInit == nil || ga.ReInit() == nil || gb.ReInit() == nil || ga.Active() {
		t.Fatal("the ReInit did not close the group")
	}

	keyA, keyB := newTestClient(t, P256_AES128GCM_SHA256_P256, "alice").key, newTestClient(t, P256_AES128GCM_SHA256_P256, "bob").key
	if _, _, err := ga.ReInitGroup(ga.sigKey, nil, ResumeOptions{}); err == nil {
		t.Fatal("re-initialised with a key of the old cipher suite")
	}
	kpB, err := NewKeyPackage(keyB, KeyPackageOptions{Credential: BasicCredential([]byte("bob"))})
	if err != nil {
		t.Fatal(err)
	}
	na, w, err := ga.ReInitGroup(keyA, []*KeyPackage{kpB.KeyPackage}, ResumeOptions{ForcePath: true})
	if err != nil {
		t.Fatal(err)
	}
	w = roundTrip(t, w)
	if _, err := gb.JoinBranch(w.Welcome, kpB, JoinOptions{}); err == nil {
		t.Fatal("a reinit Welcome was accepted as a branch")
	}
	nb, err := gb.JoinReInit(w.Welcome, kpB, JoinOptions{RatchetTree: na.RatchetTree()})
	if err != nil {
		t.Fatal(err)
	}
	sameState(t, na, nb)
	if nb.Epoch() != 1 || nb.CipherSuite() != P256_AES128GCM_SHA256_P256 || !bytes.Equal(nb.GroupID(), []byte("new")) {
		t.Fatalf("new group: epoch %d, suite %v, id %q", nb.Epoch(), nb.CipherSuite(), nb.GroupID())
	}
	mustProcess(t, na, resumeTestCommit(t, nb).Commit) // the new group works
}

func TestBranch(t *testing.T) {
	cs := X25519_AES128GCM_SHA256_Ed25519
	bob, carol, dave := newTestClient(t, cs, "bob"), newTestClient(t, cs, "carol"), newTestClient(t, cs, "dave")
	ga, gs := resumeTestGroup(t, cs, bob, carol)
	gb, gc := gs[0], gs[1]
	kpB, kpC, kpD := bob.keyPackage(t), carol.keyPackage(t), dave.keyPackage(t)

	na, w, err := ga.Branch([]byte("branch"), nil, []*KeyPackage{kpB.KeyPackage}, ResumeOptions{InlineTree: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := gb.JoinReInit(w.Welcome, kpB, JoinOptions{}); err == nil {
		t.Fatal("a branch Welcome was accepted as a reinit")
	}
	nb, err := gb.JoinBranch(roundTrip(t, w).Welcome, kpB, JoinOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sameState(t, na, nb)
	sameState(t, ga, gb, gc) // the old group goes on

	// A branch with a stranger in it is refused by the members.
	_, w, err = ga.Branch([]byte("branch2"), nil, []*KeyPackage{kpC.KeyPackage, kpD.KeyPackage}, ResumeOptions{InlineTree: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := gc.JoinBranch(w.Welcome, kpC, JoinOptions{}); err == nil {
		t.Fatal("joined a branch with a non-member in it")
	}
}

func TestExternalSenders(t *testing.T) {
	cs := X25519_AES128GCM_SHA256_Ed25519
	bob, carol, dave := newTestClient(t, cs, "bob"), newTestClient(t, cs, "carol"), newTestClient(t, cs, "dave")
	ga, gs := resumeTestGroup(t, cs, bob)
	gb := gs[0]
	ds := newTestClient(t, cs, "ds")
	es := ExternalSender{SignatureKey: ds.key.Public(), Credential: BasicCredential([]byte("ds"))}
	data, err := es.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := UnmarshalExternalSender(append(data, 0)); err == nil {
		t.Fatal("trailing byte accepted")
	}
	back, err := UnmarshalExternalSender(data)
	if err != nil || !bytes.Equal(back.SignatureKey, es.SignatureKey) {
		t.Fatalf("round trip: %v", err)
	}
	exts, err := WithExternalSender(ga.Extensions(), *back)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := WithExternalSender(exts, es); err == nil {
		t.Fatal("the same external sender was listed twice")
	}
	p, err := ga.ProposeGroupContextExtensions(exts)
	if err != nil {
		t.Fatal(err)
	}
	mustProcess(t, gb, p)
	resumeTestCommit(t, ga, gb)

	gi, err := ga.GroupInfo(false)
	if err != nil {
		t.Fatal(err)
	}
	pg, err := OpenGroupInfo(roundTrip(t, gi), ga.RatchetTree())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenGroupInfo(gi, nil); err == nil {
		t.Fatal("opened a GroupInfo without its tree")
	}
	if len(pg.Members()) != 2 || !bytes.Equal(pg.GroupID(), ga.GroupID()) {
		t.Fatalf("members %v", pg.Members())
	}
	kpC := carol.keyPackage(t)
	add := &Proposal{Type: ProposalAdd, Add: &AddProposal{KeyPackage: *kpC.KeyPackage}}
	if _, err := pg.ExternalProposal(dave.key, add); err == nil {
		t.Fatal("an unlisted key signed an external proposal")
	}
	upd := &Proposal{Type: ProposalUpdate, Update: &UpdateProposal{}}
	if _, err := pg.ExternalProposal(ds.key, upd); err == nil {
		t.Fatal("an external sender proposed an Update")
	}
	m, err := pg.ExternalProposal(ds.key, add)
	if err != nil {
		t.Fatal(err)
	}
	mustProcess(t, ga, m)
	mustProcess(t, gb, m)
	res := resumeTestCommit(t, ga, gb)
	gc, err := Join(roundTrip(t, res.Welcome).Welcome, kpC, JoinOptions{RatchetTree: ga.RatchetTree()})
	if err != nil {
		t.Fatal(err)
	}
	sameState(t, ga, gb, gc)

	// Dave proposes himself from the GroupInfo alone.
	gi, err = ga.GroupInfo(true)
	if err != nil {
		t.Fatal(err)
	}
	if pg, err = OpenGroupInfo(gi, nil); err != nil {
		t.Fatal(err)
	}
	kpD := dave.keyPackage(t)
	m, err = pg.NewMemberProposal(kpD)
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range []*Group{ga, gb, gc} {
		mustProcess(t, g, m)
	}
	res = resumeTestCommit(t, ga, gb, gc)
	gd, err := Join(roundTrip(t, res.Welcome).Welcome, kpD, JoinOptions{RatchetTree: ga.RatchetTree()})
	if err != nil {
		t.Fatal(err)
	}
	sameState(t, ga, gb, gc, gd)
}

func TestCommitInline(t *testing.T) {
	cs := X25519_AES128GCM_SHA256_Ed25519
	bob := newTestClient(t, cs, "bob")
	ga, gs := resumeTestGroup(t, cs, bob)
	gb := gs[0]
	if _, err := ga.CommitInline(CommitOptions{Remove: []uint32{1}}); err == nil {
		t.Fatal("CommitInline took proposals from its options")
	}
	psk, err := ResumptionPSKProposal(cs, ga.GroupID(), ga.Epoch())
	if err != nil {
		t.Fatal(err)
	}
	res, err := ga.CommitInline(CommitOptions{ForcePath: true}, psk)
	if err != nil {
		t.Fatal(err)
	}
	if err := ga.MergePendingCommit(); err != nil {
		t.Fatal(err)
	}
	sc, ok := mustProcess(t, gb, res.Commit).(*StagedCommit)
	if !ok || len(sc.PSKs) != 1 || sc.PSKs[0].PSKType != PSKResumption {
		t.Fatalf("staged %#v", sc)
	}
	sameState(t, ga, gb)
	if _, err := ExternalPSKProposal(CipherSuite(4), []byte("id")); err == nil {
		t.Fatal("a PSK proposal for an unsupported suite")
	}
}
