package mls

import (
	"bytes"
	"crypto/rand"
)

// JoinOptions help a new member join.
type JoinOptions struct {
	// RatchetTree is the encoded tree, when the Welcome's GroupInfo does
	// not carry it (§12.4.3.3).
	RatchetTree []byte
	// ResumptionPSK finds a resumption PSK of another group (for joining
	// after a ReInit or a branch).
	ResumptionPSK func(groupID []byte, epoch uint64) ([]byte, bool)
	Config        Config
}

// Join creates the group state of a new member from a Welcome (§12.4.3.1)
// made for one of our KeyPackages.
func Join(w *Welcome, kp *KeyPackagePrivate, o JoinOptions) (*Group, error) {
	s, err := lookupSuite(w.CipherSuite)
	if err != nil {
		return nil, err
	}
	if kp.KeyPackage.CipherSuite != s.id {
		return nil, errorf("Welcome cipher suite does not match the KeyPackage")
	}
	gs, err := decryptGroupSecrets(s, w, kp.KeyPackage, kp.initPriv)
	if err != nil {
		return nil, err
	}
	defer gs.wipe()
	cfg := o.Config.withDefaults()
	lookup := func(id *PreSharedKeyID) ([]byte, bool) {
		switch id.PSKType {
		case PSKExternal:
			if cfg.ExternalPSK != nil {
				return cfg.ExternalPSK(id.PSKID)
			}
		case PSKResumption:
			if o.ResumptionPSK != nil {
				return o.ResumptionPSK(id.PSKGroupID, id.PSKEpoch)
			}
		}
		return nil, false
	}
	for i := range gs.psks {
		if err := gs.psks[i].validate(s); err != nil {
			return nil, err
		}
	}
	psk, err := resolvePSKs(s, gs.psks, lookup)
	if err != nil {
		return nil, err
	}
	ws := welcomeSecret(s, gs.joinerSecret, psk)
	gi, err := decryptGroupInfo(s, ws, w.EncryptedGroupInfo)
	clear(ws)
	if err != nil {
		return nil, err
	}
	gc := &gi.GroupContext
	if gc.Version != MLS10 || gc.CipherSuite != s.id {
		return nil, errorf("GroupInfo version or cipher suite does not match the Welcome")
	}
	tree, err := treeFromGroupInfo(s, gi, o.RatchetTree)
	if err != nil {
		return nil, err
	}
	if err := verifyGroupInfo(s, gi, tree); err != nil {
		return nil, err
	}
	if err := tree.validate(gc); err != nil {
		return nil, err
	}
	self, ok := tree.findLeaf(&kp.KeyPackage.LeafNode)
	if !ok {
		return nil, errorf("our KeyPackage's leaf is not in the tree")
	}
	priv, err := newTreePrivate(tree, self, kp.encryptionPriv)
	if err != nil {
		return nil, err
	}
	if gs.pathSecret != nil {
		if err := priv.setPathSecret(tree, leafIndex(gi.Signer), gs.pathSecret); err != nil {
			priv.wipe()
			return nil, err
		}
	}
	ctxRaw := mustEncode(gc)
	secrets := epochSecretsFromJoiner(s, gs.joinerSecret, psk, ctxRaw)
	if !verifyConfirmationTag(s, secrets.confirmation, gc.ConfirmedTranscriptHash, gi.ConfirmationTag) {
		secrets.wipe()
		priv.wipe()
		return nil, errorf("invalid confirmation tag in GroupInfo")
	}
	g := &Group{
		cfg:             cfg,
		suite:           s,
		ctx:             *gc,
		ctxRaw:          ctxRaw,
		tree:            tree,
		priv:            priv,
		sigKey:          kp.sigKey,
		confirmationTag: gi.ConfirmationTag,
		interim:         interimTranscriptHash(s, gc.ConfirmedTranscriptHash, gi.ConfirmationTag),
		resumption:      make(map[uint64][]byte),
	}
	if err := g.enterEpoch(secrets); err != nil {
		priv.wipe()
		return nil, err
	}
	return g, nil
}

// treeFromGroupInfo takes the ratchet tree from the GroupInfo's
// ratchet_tree extension or, failing that, from outOfBand.
func treeFromGroupInfo(s *suite, gi *GroupInfo, outOfBand []byte) (*ratchetTree, error) {
	data, ok := gi.Extensions.Find(ExtRatchetTree)
	if !ok {
		data = outOfBand
	}
	if data == nil {
		return nil, errorf("no ratchet tree: neither in the GroupInfo nor given")
	}
	return decodeRatchetTree(s, data)
}

// verifyGroupInfo checks the GroupInfo's signature with its signer's leaf.
func verifyGroupInfo(s *suite, gi *GroupInfo, tree *ratchetTree) error {
	if gi.Signer >= tree.numLeaves() || tree.leaf(leafIndex(gi.Signer)) == nil {
		return errorf("GroupInfo signer is not a member")
	}
	if key := tree.leaf(leafIndex(gi.Signer)).SignatureKey; !gi.verifySignature(s, key) {
		return badSignature(s, key, "GroupInfo (its signer's leaf)")
	}
	if !bytes.Equal(tree.treeHash(), gi.GroupContext.TreeHash) {
		return errorf("ratchet tree does not match the GroupInfo's tree hash")
	}
	return nil
}

// ExternalJoinOptions describe an external commit.
type ExternalJoinOptions struct {
	// RatchetTree when the GroupInfo does not carry it.
	RatchetTree []byte
	// RemoveOld is the leaf of an earlier state of ours to remove
	// (resync), or nil.
	RemoveOld *uint32
	// ExternalPSKs to mix in.
	ExternalPSKs      [][]byte
	AuthenticatedData []byte
	Config            Config
	// LeafExtensions/LeafProposals add to our leaf's capabilities.
	LeafExtensions []ExtensionType
	LeafProposals  []ProposalType
}

// ExternalJoin joins a group from its GroupInfo by an external commit
// (§12.4.3.2). It returns our new group state, already in the new epoch,
// and the commit to send to the group.
func ExternalJoin(gim *MLSMessage, key *SignatureKey, cred Credential, o ExternalJoinOptions) (*Group, *MLSMessage, error) {
	if gim.WireFormat != WireFormatGroupInfo || gim.GroupInfo == nil {
		return nil, nil, errorf("not a GroupInfo")
	}
	gi := gim.GroupInfo
	s := key.suite
	if gi.GroupContext.CipherSuite != s.id || gi.GroupContext.Version != MLS10 {
		return nil, nil, errorf("GroupInfo cipher suite does not match our key")
	}
	tree, err := treeFromGroupInfo(s, gi, o.RatchetTree)
	if err != nil {
		return nil, nil, err
	}
	if err := verifyGroupInfo(s, gi, tree); err != nil {
		return nil, nil, err
	}
	if err := tree.validate(&gi.GroupContext); err != nil {
		return nil, nil, err
	}
	pubData, ok := gi.Extensions.Find(ExtExternalPub)
	if !ok {
		return nil, nil, errorf("GroupInfo has no external_pub extension")
	}
	var pub opaqueValue
	if err := decode(pubData, &pub, "external_pub"); err != nil {
		return nil, nil, err
	}
	kemOutput, initSecret, err := s.exportExternal(pub)
	if err != nil {
		return nil, nil, err
	}
	defer clear(initSecret)

	// A joiner's view of the old epoch: enough to stage the commit.
	g := &Group{
		cfg:        o.Config.withDefaults(),
		suite:      s,
		ctx:        gi.GroupContext,
		ctxRaw:     mustEncode(&gi.GroupContext),
		tree:       tree,
		sigKey:     key,
		resumption: make(map[uint64][]byte),
		secrets:    &epochSecrets{suite: s, init: initSecret},
	}
	g.interim = interimTranscriptHash(s, g.ctx.ConfirmedTranscriptHash, gi.ConfirmationTag)

	list := []ProposalOrRef{{Type: ProposalOrRefProposal, Proposal: &Proposal{Type: ProposalExternalInit, ExternalInit: &ExternalInitProposal{KEMOutput: kemOutput}}}}
	if o.RemoveOld != nil {
		list = append(list, ProposalOrRef{Type: ProposalOrRefProposal, Proposal: &Proposal{Type: ProposalRemove, Remove: &RemoveProposal{Removed: *o.RemoveOld}}})
	}
	for _, id := range o.ExternalPSKs {
		nonce := make([]byte, s.nh())
		rand.Read(nonce)
		list = append(list, ProposalOrRef{Type: ProposalOrRefProposal, Proposal: &Proposal{Type: ProposalPSK, PreSharedKey: &PreSharedKeyProposal{PSK: PreSharedKeyID{PSKType: PSKExternal, PSKID: id, PSKNonce: nonce}}}})
	}
	sender := Sender{Type: SenderNewMemberCommit}
	resolved, err := g.resolve(list, sender)
	if err != nil {
		return nil, nil, err
	}
	leaf := &LeafNode{
		Source:       SourceCommit,
		SignatureKey: key.Public(),
		Credential:   cred,
		Capabilities: defaultCapabilities(s.id, &KeyPackageOptions{Extensions: o.LeafExtensions, Proposals: o.LeafProposals}),
	}
	leaf.Capabilities.addContextExtensions(g.ctx.Extensions)
	st, err := g.stage(resolved, sender, leaf)
	if err != nil {
		return nil, nil, err
	}
	self := st.tree.freeLeaf()
	// The members will check our new leaf as §12.4.2 says, against the
	// tree before the path; a leaf they would reject (say, for a required
	// capability we lack) fails here.
	members := *st.tree.index()
	path, err := st.tree.createUpdatePath(self, leaf, key, g.ctx.GroupID)
	if err != nil {
		return nil, nil, err
	}
	defer path.wipe()
	if err := checkPathLeaf(s, &st.ctx, &members, self, path.leaf, nil); err != nil {
		path.priv.wipe()
		return nil, nil, err
	}
	st.ctx.Epoch = g.ctx.Epoch + 1
	st.ctx.TreeHash = st.tree.treeHash()
	up, err := path.encrypt(mustEncode(&st.ctx), nil)
	if err != nil {
		return nil, nil, err
	}
	content := FramedContent{
		GroupID:           g.ctx.GroupID,
		Epoch:             g.ctx.Epoch,
		Sender:            sender,
		AuthenticatedData: o.AuthenticatedData,
		ContentType:       ContentCommit,
		Commit:            &Commit{Proposals: list, Path: up},
	}
	ac, err := signFramedContent(key, WireFormatPublicMessage, &content, g.ctxRaw)
	if err != nil {
		return nil, nil, err
	}
	sc, err := g.finishStagingExternal(st, ac, path.commitSecret, path.priv, initSecret)
	if err != nil {
		return nil, nil, err
	}
	ac.Auth.ConfirmationTag = sc.tag
	pm, err := protectPublic(s, ac, nil, g.ctxRaw)
	if err != nil {
		sc.wipe()
		return nil, nil, err
	}
	// Enter the new epoch directly: an external joiner has no old epoch.
	g.ctx, g.ctxRaw, g.tree, g.priv = sc.ctx, sc.ctxRaw, sc.tree, sc.priv
	g.interim, g.confirmationTag = sc.interim, sc.tag
	if err := g.enterEpoch(sc.secrets); err != nil {
		return nil, nil, err
	}
	return g, &MLSMessage{WireFormat: WireFormatPublicMessage, PublicMessage: pm}, nil
}

// finishStagingExternal is finishStaging for the joiner of an external
// commit, whose init secret comes from its own HPKE export.
func (g *Group) finishStagingExternal(st *staging, ac *AuthenticatedContent, commitSecret []byte, priv *treePrivate, initSecret []byte) (*StagedCommit, error) {
	st.externalInit = nil // already resolved into g.secrets.init
	return g.finishStaging(st, ac, commitSecret, priv)
}
