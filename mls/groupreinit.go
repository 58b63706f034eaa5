package mls

import (
	"bytes"
	"crypto/rand"
	"slices"

	"golang.org/x/crypto/cryptobyte"
)

// This file completes what a Group starts: re-initialisation (RFC 9420
// §11.2) and branching (§11.3), which both found a new group bound to the
// old one by a resumption PSK; proposals from clients that are not members
// (§12.1.8: external senders and new members proposing themselves); and
// commits of proposals that CommitOptions cannot describe.

// ResumeOptions describe the first commit of a group founded by ReInit or
// Branch.
type ResumeOptions struct {
	// ForcePath includes an UpdatePath although Adds do not need one.
	ForcePath bool
	// InlineTree puts the ratchet tree in the Welcome's GroupInfo.
	InlineTree bool
	// Config tunes the new group.
	Config Config
}

// ReInit returns the ReInit proposal the group was closed with, or nil
// while the group is live (§12.1.5).
func (g *Group) ReInit() *ReInitProposal { return g.reinit }

// ReInitGroup creates the group that replaces g once a commit with a ReInit
// proposal has been merged (§11.2): it has the ReInit's group id, version,
// cipher suite and extensions, and its first commit adds members (the
// KeyPackages of the other members, in the new cipher suite) and mixes in
// the resumption PSK of g's last epoch with usage reinit. key is our
// signature key in the new cipher suite; our credential is kept. It returns
// the new group, already in epoch 1, and the Welcome for the members.
func (g *Group) ReInitGroup(key *SignatureKey, members []*KeyPackage, o ResumeOptions) (*Group, *MLSMessage, error) {
	r := g.reinit
	if r == nil || g.priv == nil {
		return nil, nil, errorf("the group has not been re-initialised")
	}
	if r.Version != MLS10 || key.CipherSuite() != r.CipherSuite {
		return nil, nil, errorf("the signature key does not fit the ReInit's version and cipher suite")
	}
	cred := g.tree.leaf(g.priv.self).Credential
	co := CreateGroupOptions{GroupID: r.GroupID, Extensions: r.Extensions, Config: o.Config}
	return g.resume(key, cred, co, members, ResumptionReinit, g.ctx.Epoch, o)
}

// Branch creates a new group with id groupID and GroupContext extensions
// exts, in g's cipher suite, whose first commit adds members (fresh
// KeyPackages of members of g) and mixes in the resumption PSK of g's
// current epoch with usage branch (§11.3). g itself is unchanged. It
// returns the new group, already in epoch 1, and the Welcome.
func (g *Group) Branch(groupID []byte, exts Extensions, members []*KeyPackage, o ResumeOptions) (*Group, *MLSMessage, error) {
	if !g.Active() {
		return nil, nil, ErrInactive
	}
	cred := g.tree.leaf(g.priv.self).Credential
	co := CreateGroupOptions{GroupID: groupID, Extensions: exts, Config: o.Config}
	return g.resume(g.sigKey, cred, co, members, ResumptionBranch, g.ctx.Epoch, o)
}

// resume creates a group and makes its first commit: Adds of members and
// the resumption PSK of g's epoch with the given usage.
func (g *Group) resume(key *SignatureKey, cred Credential, co CreateGroupOptions, members []*KeyPackage, usage ResumptionPSKUsage, epoch uint64, o ResumeOptions) (*Group, *MLSMessage, error) {
	psk, ok := g.resumption[epoch]
	if !ok {
		return nil, nil, errorf("no resumption PSK for epoch %d", epoch)
	}
	ng, err := CreateGroup(key, cred, co)
	if err != nil {
		return nil, nil, err
	}
	nonce := make([]byte, ng.suite.nh())
	rand.Read(nonce)
	id := PreSharedKeyID{PSKType: PSKResumption, Usage: usage, PSKGroupID: bytes.Clone(g.ctx.GroupID), PSKEpoch: epoch, PSKNonce: nonce}
	w, err := ng.commitResumption(members, pskInput{ID: id, PSK: psk}, o)
	if err != nil {
		return nil, nil, err
	}
	return ng, w, nil
}

// commitResumption makes the first commit of a group founded by ReInit or
// Branch and enters the epoch it starts. Nobody but the new members learns
// of this epoch, and they do so from the Welcome; the PSK, which belongs
// to another group, is mixed in directly rather than looked up (§8.4),
// since ordinary commits may not carry resumption PSKs of these usages.
func (g *Group) commitResumption(members []*KeyPackage, psk pskInput, o ResumeOptions) (*MLSMessage, error) {
	s := g.suite
	self := MemberSender(uint32(g.priv.self))
	list := make([]ProposalOrRef, 0, len(members)+1)
	for _, kp := range members {
		list = append(list, inlineProposal(&Proposal{Type: ProposalAdd, Add: &AddProposal{KeyPackage: *kp}}))
	}
	resolved, err := g.resolve(list, self)
	if err != nil {
		return nil, err
	}
	st, err := g.stage(resolved, self, nil)
	if err != nil {
		return nil, err
	}
	list = append(list, inlineProposal(&Proposal{Type: ProposalPSK, PreSharedKey: &PreSharedKeyProposal{PSK: psk.ID}}))
	st.ctx.Epoch = g.ctx.Epoch + 1
	commit := &Commit{Proposals: list}
	priv, commitSecret := g.priv, []byte(nil)
	var path *pendingPath
	if o.ForcePath {
		path, err = st.tree.createUpdatePath(g.priv.self, st.tree.leaf(g.priv.self), g.sigKey, g.ctx.GroupID)
		if err != nil {
			return nil, err
		}
		defer path.wipe()
	}
	st.ctx.TreeHash = st.tree.treeHash()
	if path != nil {
		if commit.Path, err = path.encrypt(mustEncode(&st.ctx), st.added); err != nil {
			return nil, err
		}
		priv, commitSecret = path.priv, path.commitSecret
	}
	ac, err := g.sign(&FramedContent{GroupID: g.ctx.GroupID, Epoch: g.ctx.Epoch, Sender: self, ContentType: ContentCommit, Commit: commit})
	if err != nil {
		return nil, err
	}
	if st.ctx.ConfirmedTranscriptHash, err = confirmedTranscriptHash(s, g.interim, ac); err != nil {
		return nil, err
	}
	ctxRaw := mustEncode(&st.ctx)
	pskSecret, err := pskSecret(s, []pskInput{psk})
	if err != nil {
		return nil, err
	}
	secrets := newEpochSecrets(s, g.secrets.init, commitSecret, pskSecret, ctxRaw)
	clear(pskSecret)
	tag := confirmationTag(s, secrets.confirmation, st.ctx.ConfirmedTranscriptHash)
	gi, err := buildGroupInfo(g.sigKey, &st.ctx, st.tree, tag, secrets, g.priv.self, o.InlineTree)
	if err != nil {
		secrets.wipe()
		return nil, err
	}
	recipients := make([]welcomeRecipient, len(st.added))
	for i, l := range st.added {
		recipients[i].keyPackage = st.addedKPs[i]
		if path != nil {
			recipients[i].pathSecret, _ = path.pathSecretFor(l)
		}
	}
	w, err := newWelcome(s, gi, secrets.welcome, secrets.joiner, []PreSharedKeyID{psk.ID}, recipients)
	for _, r := range recipients {
		clear(r.pathSecret)
	}
	if err != nil {
		secrets.wipe()
		return nil, err
	}
	if priv != g.priv {
		g.priv.wipe()
	}
	g.secrets.wipe()
	g.keys.wipe()
	g.ctx, g.ctxRaw, g.tree, g.priv = st.ctx, ctxRaw, st.tree, priv
	g.confirmationTag, g.interim = tag, interimTranscriptHash(s, st.ctx.ConfirmedTranscriptHash, tag)
	if err := g.enterEpoch(secrets); err != nil {
		return nil, err
	}
	return &MLSMessage{WireFormat: WireFormatWelcome, Welcome: w}, nil
}

func inlineProposal(p *Proposal) ProposalOrRef {
	return ProposalOrRef{Type: ProposalOrRefProposal, Proposal: p}
}

// JoinReInit joins, from a Welcome, the group that replaces g after its
// ReInit (§11.2). Beyond [Join]'s checks it verifies, as §12.4.3.1
// requires, that the Welcome's only resumption PSK is g's last epoch's
// with usage reinit, that the new group is in epoch 1 with the ReInit's
// parameters, and that every member of g is a member of it.
// o.ResumptionPSK is ignored.
func (g *Group) JoinReInit(w *Welcome, kp *KeyPackagePrivate, o JoinOptions) (*Group, error) {
	r := g.reinit
	if r == nil {
		return nil, errorf("the group has not been re-initialised")
	}
	ng, err := g.joinResumed(w, kp, o, ResumptionReinit)
	if err != nil {
		return nil, err
	}
	c := &ng.ctx
	if !bytes.Equal(c.GroupID, r.GroupID) || c.Version != r.Version || c.CipherSuite != r.CipherSuite ||
		!bytes.Equal(mustEncode(c.Extensions), mustEncode(r.Extensions)) {
		return nil, errorf("the new group does not have the ReInit's parameters")
	}
	if !credentialsWithin(g.tree, ng.tree) {
		return nil, errorf("a member of the old group is missing from the new one")
	}
	return ng, nil
}

// JoinBranch joins, from a Welcome, a group branched from g (§11.3).
// Beyond [Join]'s checks it verifies, as §12.4.3.1 requires, that the
// Welcome's only resumption PSK is one of g's with usage branch, that the
// new group is in epoch 1 with g's version and cipher suite, and that its
// members are all members of g. o.ResumptionPSK is ignored.
func (g *Group) JoinBranch(w *Welcome, kp *KeyPackagePrivate, o JoinOptions) (*Group, error) {
	ng, err := g.joinResumed(w, kp, o, ResumptionBranch)
	if err != nil {
		return nil, err
	}
	if ng.ctx.Version != g.ctx.Version || ng.ctx.CipherSuite != g.ctx.CipherSuite {
		return nil, errorf("a branch must keep the version and cipher suite")
	}
	if !credentialsWithin(ng.tree, g.tree) {
		return nil, errorf("a member of the branch is not a member of the group")
	}
	return ng, nil
}

// joinResumed checks the resumption PSK of a Welcome against g and usage,
// then joins with g's resumption PSKs available.
func (g *Group) joinResumed(w *Welcome, kp *KeyPackagePrivate, o JoinOptions, usage ResumptionPSKUsage) (*Group, error) {
	s, err := lookupSuite(w.CipherSuite)
	if err != nil {
		return nil, err
	}
	gs, err := decryptGroupSecrets(s, w, kp.KeyPackage, kp.initPriv)
	if err != nil {
		return nil, err
	}
	err = g.checkResumptionPSKs(gs.psks, usage)
	gs.wipe()
	if err != nil {
		return nil, err
	}
	o.ResumptionPSK = func(groupID []byte, epoch uint64) ([]byte, bool) {
		if !bytes.Equal(groupID, g.ctx.GroupID) {
			return nil, false
		}
		return g.ResumptionPSK(epoch)
	}
	ng, err := Join(w, kp, o)
	if err != nil {
		return nil, err
	}
	if ng.ctx.Epoch != 1 {
		return nil, errorf("a re-initialised or branched group must start at epoch 1, not %d", ng.ctx.Epoch)
	}
	return ng, nil
}

// checkResumptionPSKs requires exactly one resumption PSK among ids: one
// of g's with the given usage, of its last epoch for a reinit.
func (g *Group) checkResumptionPSKs(ids []PreSharedKeyID, usage ResumptionPSKUsage) error {
	var found *PreSharedKeyID
	for i := range ids {
		if ids[i].PSKType != PSKResumption {
			continue
		}
		if found != nil {
			return errorf("more than one resumption PSK in a Welcome")
		}
		found = &ids[i]
	}
	switch {
	case found == nil:
		return errorf("the Welcome lacks a resumption PSK")
	case found.Usage != usage:
		return errorf("resumption PSK with usage %d, want %d", found.Usage, usage)
	case !bytes.Equal(found.PSKGroupID, g.ctx.GroupID):
		return errorf("the resumption PSK is of another group")
	case usage == ResumptionReinit && found.PSKEpoch != g.ctx.Epoch:
		return errorf("a reinit PSK must be of the old group's last epoch")
	}
	return nil
}

// credentialsWithin reports whether every member of sub has a credential
// some member of super has.
func credentialsWithin(sub, super *ratchetTree) bool {
	have := map[string]bool{}
	for _, m := range treeMembers(super) {
		have[string(mustEncode(&m.Credential))] = true
	}
	for _, m := range treeMembers(sub) {
		if !have[string(mustEncode(&m.Credential))] {
			return false
		}
	}
	return true
}

func treeMembers(t *ratchetTree) []Member {
	var ms []Member
	for i := leafIndex(0); uint32(i) < t.numLeaves(); i++ {
		if l := t.leaf(i); l != nil {
			ms = append(ms, Member{Index: uint32(i), Credential: l.Credential, SignatureKey: bytes.Clone(l.SignatureKey)})
		}
	}
	return ms
}

// RatchetTree returns the encoded ratchet tree of the epoch the commit
// starts, for members it adds who do not get it in their Welcome.
func (sc *StagedCommit) RatchetTree() []byte { return mustEncode(sc.tree) }

// --- Proposals by value ---

// CommitInline is [Group.Commit] with proposals sent by value (§12.4),
// in the order given, after the cached ones: for what CommitOptions has
// no field for, such as a resumption PSK. o's own proposal fields (Add,
// Remove, ExternalPSKs, Extensions) must be empty; pass those as
// proposals too.
func (g *Group) CommitInline(o CommitOptions, proposals ...*Proposal) (*CommitResult, error) {
	if o.Add != nil || o.Remove != nil || o.ExternalPSKs != nil || o.Extensions != nil {
		return nil, errorf("CommitInline takes its proposals as arguments only")
	}
	if !g.Active() {
		return nil, ErrInactive
	}
	if g.pending != nil {
		return nil, errorf("a commit is already pending")
	}
	self := MemberSender(uint32(g.priv.self))
	var list []ProposalOrRef
	if !o.SkipCached {
		for _, c := range g.proposals {
			if c.proposal.Type == ProposalUpdate && c.sender == self {
				continue // superseded by the path
			}
			list = append(list, ProposalOrRef{Type: ProposalOrRefReference, Reference: c.ref})
		}
	}
	for _, p := range proposals {
		if p == nil || p.body() == nil {
			return nil, errorf("malformed proposal")
		}
		list = append(list, inlineProposal(p))
	}
	return g.commit(list, o)
}

// ExternalPSKProposal returns a PreSharedKey proposal for the external PSK
// id with a fresh nonce for cipher suite cs (§8.4).
func ExternalPSKProposal(cs CipherSuite, id []byte) (*Proposal, error) {
	return pskProposal(cs, PreSharedKeyID{PSKType: PSKExternal, PSKID: bytes.Clone(id)})
}

// ResumptionPSKProposal returns a PreSharedKey proposal for the resumption
// PSK of epoch of the group groupID, with usage application and a fresh
// nonce for cipher suite cs (§8.4, §8.6).
func ResumptionPSKProposal(cs CipherSuite, groupID []byte, epoch uint64) (*Proposal, error) {
	return pskProposal(cs, PreSharedKeyID{PSKType: PSKResumption, Usage: ResumptionApplication, PSKGroupID: bytes.Clone(groupID), PSKEpoch: epoch})
}

func pskProposal(cs CipherSuite, id PreSharedKeyID) (*Proposal, error) {
	s, err := lookupSuite(cs)
	if err != nil {
		return nil, err
	}
	id.PSKNonce = make([]byte, s.nh())
	rand.Read(id.PSKNonce)
	return &Proposal{Type: ProposalPSK, PreSharedKey: &PreSharedKeyProposal{PSK: id}}, nil
}

// --- Proposals from non-members (§12.1.8) ---

// Marshal returns the encoding of an ExternalSender (§12.1.8.1).
func (e *ExternalSender) Marshal() ([]byte, error) { return encode((*externalSender)(e)) }

// UnmarshalExternalSender decodes one ExternalSender, strictly.
func UnmarshalExternalSender(data []byte) (*ExternalSender, error) {
	var one externalSender
	if err := decode(data, &one, "ExternalSender"); err != nil {
		return nil, err
	}
	e := ExternalSender(one)
	return &e, nil
}

// externalSender encodes a single entry of external_senders.
type externalSender ExternalSender

func (e *externalSender) marshal(b *cryptobyte.Builder) {
	addOpaque(b, e.SignatureKey)
	e.Credential.marshal(b)
}

func (e *externalSender) unmarshal(s *cryptobyte.String) bool {
	return readOpaque(s, &e.SignatureKey) && e.Credential.unmarshal(s)
}

// WithExternalSender returns a copy of exts whose external_senders
// extension lists e after the senders already there; propose it with
// [Group.ProposeGroupContextExtensions] to let e send proposals.
func WithExternalSender(exts Extensions, e ExternalSender) (Extensions, error) {
	var senders externalSenders
	if data, ok := exts.Find(ExtExternalSenders); ok {
		if err := decode(data, &senders, "external_senders"); err != nil {
			return nil, err
		}
	}
	if slices.ContainsFunc(senders, func(s ExternalSender) bool { return bytes.Equal(s.SignatureKey, e.SignatureKey) }) {
		return nil, errorf("the external sender is already listed")
	}
	data, err := encode(append(senders, e))
	if err != nil {
		return nil, err
	}
	out := exts.clone()
	if i := slices.IndexFunc(out, func(x Extension) bool { return x.Type == ExtExternalSenders }); i >= 0 {
		out[i].Data = data
	} else {
		out = append(out, Extension{Type: ExtExternalSenders, Data: data})
	}
	return out, nil
}

// PublicGroup is what a client outside a group knows of it from its
// GroupInfo and ratchet tree: enough to propose.
type PublicGroup struct {
	info *GroupInfo
	tree *ratchetTree
}

// OpenGroupInfo verifies a GroupInfo message (its signer is a member of
// the ratchet tree, carried inline or given, whose hash it names) and
// returns the group it describes.
func OpenGroupInfo(gim *MLSMessage, ratchetTree []byte) (*PublicGroup, error) {
	if gim == nil || gim.WireFormat != WireFormatGroupInfo || gim.GroupInfo == nil {
		return nil, errorf("not a GroupInfo")
	}
	gi := gim.GroupInfo
	s, err := lookupSuite(gi.GroupContext.CipherSuite)
	if err != nil {
		return nil, err
	}
	tree, err := treeFromGroupInfo(s, gi, ratchetTree)
	if err != nil {
		return nil, err
	}
	if err := verifyGroupInfo(s, gi, tree); err != nil {
		return nil, err
	}
	return &PublicGroup{info: gi, tree: tree}, nil
}

// CipherSuite returns the group's cipher suite.
func (p *PublicGroup) CipherSuite() CipherSuite { return p.info.GroupContext.CipherSuite }

// GroupID returns the group's id.
func (p *PublicGroup) GroupID() []byte { return bytes.Clone(p.info.GroupContext.GroupID) }

// Members lists the group's members in leaf order.
func (p *PublicGroup) Members() []Member { return treeMembers(p.tree) }

// ExternalProposal signs proposal prop as an external sender whose key is
// listed in the group's external_senders extension, and frames it as a
// PublicMessage (§12.1.8.1). External senders may propose Add, Remove,
// PreSharedKey, ReInit and GroupContextExtensions.
func (p *PublicGroup) ExternalProposal(key *SignatureKey, prop *Proposal) (*MLSMessage, error) {
	switch prop.Type {
	case ProposalAdd, ProposalRemove, ProposalPSK, ProposalReInit, ProposalGroupContextExtensions:
	default:
		return nil, errorf("an external sender may not propose type %d", prop.Type)
	}
	var senders externalSenders
	if data, ok := p.info.GroupContext.Extensions.Find(ExtExternalSenders); ok {
		if err := decode(data, &senders, "external_senders"); err != nil {
			return nil, err
		}
	}
	i := slices.IndexFunc(senders, func(s ExternalSender) bool { return bytes.Equal(s.SignatureKey, key.Public()) })
	if i < 0 {
		return nil, errorf("the key is not an external sender of the group")
	}
	return p.proposal(key, Sender{Type: SenderExternal, Index: uint32(i)}, prop)
}

// NewMemberProposal frames a proposal to add ourselves with kp, signed
// with kp's key, as a PublicMessage from a new_member_proposal sender
// (§12.1.8.2).
func (p *PublicGroup) NewMemberProposal(kp *KeyPackagePrivate) (*MLSMessage, error) {
	if kp.KeyPackage.CipherSuite != p.CipherSuite() {
		return nil, errorf("the KeyPackage is for another cipher suite")
	}
	prop := &Proposal{Type: ProposalAdd, Add: &AddProposal{KeyPackage: *kp.KeyPackage}}
	return p.proposal(kp.sigKey, Sender{Type: SenderNewMemberProposal}, prop)
}

func (p *PublicGroup) proposal(key *SignatureKey, sender Sender, prop *Proposal) (*MLSMessage, error) {
	if prop.body() == nil {
		return nil, errorf("malformed proposal")
	}
	if key.CipherSuite() != p.CipherSuite() {
		return nil, errorf("the signature key is for another cipher suite")
	}
	gc := &p.info.GroupContext
	content := FramedContent{GroupID: gc.GroupID, Epoch: gc.Epoch, Sender: sender, ContentType: ContentProposal, Proposal: prop}
	ctxRaw := mustEncode(gc)
	ac, err := signFramedContent(key, WireFormatPublicMessage, &content, ctxRaw)
	if err != nil {
		return nil, err
	}
	pm, err := protectPublic(key.suite, ac, nil, ctxRaw)
	if err != nil {
		return nil, err
	}
	return &MLSMessage{WireFormat: WireFormatPublicMessage, PublicMessage: pm}, nil
}
