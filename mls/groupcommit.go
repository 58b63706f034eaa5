package mls

import (
	"bytes"
	"crypto/rand"
	"slices"

	"golang.org/x/crypto/cryptobyte"
)

// StagedCommit is a commit that has been fully validated but not yet
// applied: [Group.Merge] applies it. Its exported fields say what the
// commit does.
type StagedCommit struct {
	// Committer is the sender of the commit.
	Committer Sender
	// Added lists the leaf indices of new members.
	Added []uint32
	// Updated lists the leaf indices whose Update proposals were applied.
	Updated []uint32
	// Removed lists the members removed, with their former leaves.
	Removed []RemovedMember
	// PSKs lists the pre-shared keys mixed into the key schedule.
	PSKs []PreSharedKeyID
	// SelfRemoved is set when the commit removes us: after Merge the group
	// is inactive.
	SelfRemoved bool
	// ReInit is set when the commit re-initialises the group (§12.1.5).
	ReInit *ReInitProposal
	// Epoch is the epoch the commit starts.
	Epoch uint64

	own     bool // our own commit, from Commit
	raw     []byte
	ctx     GroupContext
	ctxRaw  []byte
	tree    *ratchetTree
	priv    *treePrivate
	secrets *epochSecrets
	interim []byte
	tag     []byte
}

// RemovedMember is a member a commit removed.
type RemovedMember struct {
	Index uint32
	Leaf  LeafNode
}

// wipe erases the secrets of a staged commit that will not be merged.
func (sc *StagedCommit) wipe() {
	if sc.secrets != nil {
		sc.secrets.wipe()
	}
	if sc.priv != nil && !sc.SelfRemoved {
		sc.priv.wipe()
	}
}

// resolvedProposal is a proposal of a commit with its sender.
type resolvedProposal struct {
	proposal *Proposal
	sender   Sender
	byRef    bool
}

// staging is the group state a commit builds, on copies of the tree and
// context so that the live group is untouched until Merge.
type staging struct {
	g            *Group
	committer    Sender
	external     bool
	tree         *ratchetTree
	ctx          GroupContext
	added        []leafIndex
	addedKPs     []*KeyPackage
	updated      []leafIndex
	removed      []RemovedMember
	psks         []PreSharedKeyID
	externalInit *ExternalInitProposal
	reinit       *ReInitProposal
	pathRequired bool
	selfRemoved  bool
}

// resolve turns a commit's proposal list into proposals, looking up
// references in this epoch's cache (§12.4).
func (g *Group) resolve(list []ProposalOrRef, committer Sender) ([]resolvedProposal, error) {
	out := make([]resolvedProposal, 0, len(list))
	for _, p := range list {
		switch p.Type {
		case ProposalOrRefProposal:
			if p.Proposal == nil {
				return nil, errorf("empty proposal in commit")
			}
			out = append(out, resolvedProposal{proposal: p.Proposal, sender: committer})
		case ProposalOrRefReference:
			i := slices.IndexFunc(g.proposals, func(c cachedProposal) bool { return bytes.Equal(c.ref, p.Reference) })
			if i < 0 {
				return nil, errorf("commit refers to an unknown proposal")
			}
			c := g.proposals[i]
			out = append(out, resolvedProposal{proposal: c.proposal, sender: c.sender, byRef: true})
		default:
			return nil, errorf("unknown proposal-or-ref type %d", p.Type)
		}
	}
	return out, nil
}

// stage validates a proposal list against every rule of §12.2 and applies
// it, in the order of §12.3, to copies of the tree and group context.
//
// joiner is the new leaf of an external commit's path: the only member an
// external commit may remove is an earlier leaf of the same client.
func (g *Group) stage(list []resolvedProposal, committer Sender, joiner *LeafNode) (*staging, error) {
	g.tree.index() // built once, then shared with every staged clone
	st := &staging{
		g:         g,
		committer: committer,
		external:  committer.Type == SenderNewMemberCommit,
		tree:      g.tree.clone(),
		ctx:       g.ctx,
	}
	st.ctx.Extensions = slices.Clone(g.ctx.Extensions)
	if len(list) == 0 {
		st.pathRequired = true
	}
	var (
		gce      *GroupContextExtensionsProposal
		updates  []resolvedProposal
		removes  []resolvedProposal
		adds     []resolvedProposal
		touched  = map[leafIndex]bool{}
		pskSeen  = map[string]bool{}
		nExtInit int
	)
	for _, rp := range list {
		p := rp.proposal
		if err := g.checkSupported(p.Type); err != nil {
			return nil, err
		}
		if st.external && rp.byRef {
			return nil, errorf("an external commit may not include proposals by reference")
		}
		switch p.Type {
		case ProposalAdd:
			if p.Add == nil {
				return nil, errorf("malformed Add proposal")
			}
			adds = append(adds, rp)
		case ProposalUpdate:
			if p.Update == nil {
				return nil, errorf("malformed Update proposal")
			}
			if rp.sender.Type != SenderMember {
				return nil, errorf("Update from a non-member")
			}
			if !rp.byRef || rp.sender == committer {
				return nil, errorf("a commit may not include the committer's own Update")
			}
			l := leafIndex(rp.sender.Index)
			if touched[l] {
				return nil, errorf("several Update or Remove proposals for leaf %d", l)
			}
			touched[l] = true
			updates = append(updates, rp)
			st.pathRequired = true
		case ProposalRemove:
			if p.Remove == nil {
				return nil, errorf("malformed Remove proposal")
			}
			l := leafIndex(p.Remove.Removed)
			if uint32(l) >= g.tree.numLeaves() || g.tree.leaf(l) == nil {
				return nil, errorf("Remove of a blank or unknown leaf %d", l)
			}
			if committer.Type == SenderMember && l == leafIndex(committer.Index) {
				return nil, errorf("a commit may not remove the committer")
			}
			if touched[l] {
				return nil, errorf("several Update or Remove proposals for leaf %d", l)
			}
			touched[l] = true
			removes = append(removes, rp)
			st.pathRequired = true
		case ProposalPSK:
			if p.PreSharedKey == nil {
				return nil, errorf("malformed PreSharedKey proposal")
			}
			id := &p.PreSharedKey.PSK
			if err := id.validate(g.suite); err != nil {
				return nil, err
			}
			if id.PSKType == PSKResumption && id.Usage != ResumptionApplication {
				return nil, errorf("resumption PSK with usage %d in an ordinary commit", id.Usage)
			}
			// §12.2 forbids the same PreSharedKeyID twice, nonce
			// included: one PSK proposed twice with fresh nonces (say, by
			// two members) is valid.
			key := string(mustEncode(id))
			if pskSeen[key] {
				return nil, errorf("the same PreSharedKeyID is proposed twice")
			}
			pskSeen[key] = true
			st.psks = append(st.psks, *id)
		case ProposalReInit:
			if p.ReInit == nil {
				return nil, errorf("malformed ReInit proposal")
			}
			if len(list) != 1 {
				return nil, errorf("a ReInit must be the only proposal of its commit")
			}
			if p.ReInit.Version < g.ctx.Version {
				return nil, errorf("ReInit to an older protocol version")
			}
			st.reinit = p.ReInit
		case ProposalExternalInit:
			if p.ExternalInit == nil {
				return nil, errorf("malformed ExternalInit proposal")
			}
			if !st.external {
				return nil, errorf("ExternalInit in a commit by a member")
			}
			nExtInit++
			st.externalInit = p.ExternalInit
			st.pathRequired = true
		case ProposalGroupContextExtensions:
			if p.GroupContextExtensions == nil {
				return nil, errorf("malformed GroupContextExtensions proposal")
			}
			if gce != nil {
				return nil, errorf("several GroupContextExtensions proposals")
			}
			gce = p.GroupContextExtensions
			st.pathRequired = true
		default:
			return nil, errorf("unsupported proposal type %d", p.Type)
		}
	}
	if st.external {
		if nExtInit != 1 {
			return nil, errorf("an external commit needs exactly one ExternalInit")
		}
		if len(removes) > 1 || len(adds) > 0 || len(updates) > 0 || gce != nil || st.reinit != nil {
			return nil, errorf("an external commit may hold only ExternalInit, one Remove and PSKs")
		}
	}

	// §12.3, step 1: GroupContextExtensions.
	if gce != nil {
		st.ctx.Extensions = slices.Clone(gce.Extensions)
		if err := g.checkExtensionsSupported(st.ctx.Extensions); err != nil {
			return nil, err
		}
	}
	members := st.tree.index() // kept up to date as the tree changes
	// Step 2: Updates.
	for _, rp := range updates {
		l := leafIndex(rp.sender.Index)
		leaf := rp.proposal.Update.LeafNode.clone()
		if err := validateLeafNode(g.suite, &st.ctx, leaf, l, SourceUpdate); err != nil {
			return nil, err
		}
		if err := members.check(l, leaf, st.tree.leaf(l)); err != nil {
			return nil, err
		}
		if err := st.tree.updateLeaf(l, leaf); err != nil {
			return nil, err
		}
		st.updated = append(st.updated, l)
	}
	// Step 3: Removes.
	for _, rp := range removes {
		l := leafIndex(rp.proposal.Remove.Removed)
		old := st.tree.leaf(l)
		if st.external && !sameIdentity(old, joiner) {
			return nil, errorf("an external commit may only remove the joiner's old leaf")
		}
		st.removed = append(st.removed, RemovedMember{Index: uint32(l), Leaf: *old})
		if g.priv != nil && l == g.priv.self {
			st.selfRemoved = true
		}
		if err := st.tree.removeLeaf(l); err != nil {
			return nil, err
		}
	}
	// Step 4: Adds, in order. What each KeyPackage is checked for on its
	// own (§10.1, §7.3: two signatures, its lifetime and keys, its leaf
	// against the new group context) depends on nothing else: those checks
	// run in parallel first. The leaf's signature is verified once, by
	// validateKeyPackage.
	now := g.cfg.Now()
	err := parallel(len(adds), func(k int) error {
		kp := &adds[k].proposal.Add.KeyPackage
		if err := validateKeyPackage(kp, g.suite.id, now, g.cfg.MaxLifetime); err != nil {
			return err
		}
		return checkLeafNode(g.suite, &st.ctx, &kp.LeafNode, 0)
	})
	if err != nil {
		return nil, err
	}
	for _, rp := range adds {
		kp := &rp.proposal.Add.KeyPackage
		leaf := kp.LeafNode.clone()
		if err := members.check(noLeaf, leaf, nil); err != nil {
			return nil, err
		}
		st.added = append(st.added, st.tree.addLeaf(leaf))
		st.addedKPs = append(st.addedKPs, kp)
	}
	// Every member must support the (possibly new) group context.
	if gce != nil {
		for i := leafIndex(0); uint32(i) < st.tree.numLeaves(); i++ {
			if l := st.tree.leaf(i); l != nil {
				if err := checkContextSupport(&st.ctx, l, i); err != nil {
					return nil, err
				}
			}
		}
	}
	return st, nil
}

func sameIdentity(a *LeafNode, b *LeafNode) bool {
	if a == nil || b == nil {
		return false
	}
	return bytes.Equal(mustEncode(&a.Credential), mustEncode(&b.Credential))
}

// checkSupported requires every member to support proposal type t (§12.2).
func (g *Group) checkSupported(t ProposalType) error {
	if t.isDefault() {
		return nil
	}
	for i := leafIndex(0); uint32(i) < g.tree.numLeaves(); i++ {
		if l := g.tree.leaf(i); l != nil && !l.Capabilities.supportsProposal(t) {
			return errorf("proposal type %d is not supported by leaf %d", t, i)
		}
	}
	return nil
}

func (g *Group) checkExtensionsSupported(exts Extensions) error {
	if data, ok := exts.Find(ExtRequiredCapabilities); ok {
		var req RequiredCapabilities
		if err := decode(data, &req, "required_capabilities"); err != nil {
			return err
		}
	}
	if data, ok := exts.Find(ExtExternalSenders); ok {
		var es externalSenders
		if err := decode(data, &es, "external_senders"); err != nil {
			return err
		}
	}
	return nil
}

// checkContextSupport checks that leaf i supports the group context's
// extensions and required capabilities (§11.1, §12.1.7).
func checkContextSupport(gc *GroupContext, l *LeafNode, i leafIndex) error {
	for _, e := range gc.Extensions {
		if !l.Capabilities.supportsExtension(e.Type) {
			return errorf("leaf %d does not support extension 0x%04x", i, uint16(e.Type))
		}
	}
	if data, ok := gc.Extensions.Find(ExtRequiredCapabilities); ok {
		var req RequiredCapabilities
		if err := decode(data, &req, "required_capabilities"); err != nil {
			return err
		}
		if !req.satisfiedBy(&l.Capabilities) {
			return errorf("leaf %d lacks a required capability", i)
		}
	}
	return nil
}

// pskSecret looks up the PSKs of a commit and computes psk_secret (§8.4).
func (g *Group) pskSecret(ids []PreSharedKeyID) ([]byte, error) {
	return resolvePSKs(g.suite, ids, g.lookupPSK)
}

// lookupPSK finds the value of a PSK: an external one through the
// configured store, a resumption one among this group's past epochs.
func (g *Group) lookupPSK(id *PreSharedKeyID) ([]byte, bool) {
	switch id.PSKType {
	case PSKExternal:
		if g.cfg.ExternalPSK != nil {
			return g.cfg.ExternalPSK(id.PSKID)
		}
	case PSKResumption:
		if bytes.Equal(id.PSKGroupID, g.ctx.GroupID) {
			p, ok := g.resumption[id.PSKEpoch]
			return p, ok
		}
	}
	return nil, false
}

// resolvePSKs computes psk_secret for ids, failing if any is unknown.
func resolvePSKs(s *suite, ids []PreSharedKeyID, lookup func(*PreSharedKeyID) ([]byte, bool)) ([]byte, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	in := make([]pskInput, len(ids))
	for i := range ids {
		psk, ok := lookup(&ids[i])
		if !ok {
			return nil, errorf("unknown pre-shared key")
		}
		in[i] = pskInput{ID: ids[i], PSK: psk}
	}
	return pskSecret(s, in)
}

// stageReceivedCommit validates a commit from another member (or a new
// member joining by external commit) and computes the next epoch (§12.4.2).
func (g *Group) stageReceivedCommit(ac *AuthenticatedContent) (*StagedCommit, error) {
	c := ac.Content.Commit
	if c == nil {
		return nil, errorf("commit message without a commit")
	}
	sender := ac.Content.Sender
	switch sender.Type {
	case SenderMember:
		if leafIndex(sender.Index) == g.priv.self {
			if raw, err := ac.encodedContent(); err == nil && g.pending != nil && bytes.Equal(g.pending.raw, raw) {
				return g.pending, nil
			}
			return nil, errorf("a commit from our own leaf that we did not send")
		}
	case SenderNewMemberCommit:
	default:
		return nil, errorf("commit from sender type %d", sender.Type)
	}
	if ac.Auth.ConfirmationTag == nil {
		return nil, errorf("commit without a confirmation tag")
	}
	list, err := g.resolve(c.Proposals, sender)
	if err != nil {
		return nil, err
	}
	var joiner *LeafNode
	if sender.Type == SenderNewMemberCommit && c.Path != nil {
		joiner = &c.Path.LeafNode
	}
	st, err := g.stage(list, sender, joiner)
	if err != nil {
		return nil, err
	}
	if st.pathRequired && c.Path == nil {
		return nil, errorf("commit lacks a required path")
	}
	committer := leafIndex(sender.Index)
	if st.external {
		// The joiner takes the leftmost free leaf (§12.4.3.2).
		committer = st.tree.freeLeaf()
		sender.Index = uint32(committer)
	}
	if c.Path != nil {
		if err := checkPathLeaf(g.suite, &st.ctx, st.tree.index(), committer, &c.Path.LeafNode, st.tree.leaf(committer)); err != nil {
			return nil, err
		}
		if err := st.tree.mergeUpdatePath(committer, c.Path, g.ctx.GroupID); err != nil {
			return nil, err
		}
	}
	st.ctx.Epoch = g.ctx.Epoch + 1
	st.ctx.TreeHash = st.tree.treeHash()
	if st.selfRemoved {
		// We cannot follow the group into an epoch we are not in, nor
		// check its confirmation tag: the commit only tells us we left.
		return &StagedCommit{Committer: ac.Content.Sender, Removed: st.removed, SelfRemoved: true,
			Epoch: st.ctx.Epoch, ctx: st.ctx, tree: st.tree}, nil
	}
	priv, err := g.privAfterUpdates(st)
	if err != nil {
		return nil, err
	}
	sc, err := g.decryptAndFinish(st, ac, committer, priv)
	if priv != g.priv && (err != nil || priv != sc.priv) {
		priv.wipe() // our Update's keys, copied into sc or no longer needed
	}
	if err != nil {
		return nil, err
	}
	if !verifyConfirmationTag(g.suite, sc.secrets.confirmation, sc.ctx.ConfirmedTranscriptHash, ac.Auth.ConfirmationTag) {
		sc.wipe()
		return nil, errorf("invalid confirmation tag")
	}
	sc.Committer = ac.Content.Sender
	return sc, nil
}

// decryptAndFinish decrypts the commit's UpdatePath, if any, already
// merged into st.tree, with priv (our private view after the commit's
// proposals) and computes the new epoch (§12.4.2). priv is not modified.
func (g *Group) decryptAndFinish(st *staging, ac *AuthenticatedContent, committer leafIndex, priv *treePrivate) (*StagedCommit, error) {
	var commitSecret []byte
	if path := ac.Content.Commit.Path; path != nil {
		next, secret, err := st.tree.decryptPath(priv, committer, path, st.added, mustEncode(&st.ctx))
		if err != nil {
			return nil, err
		}
		defer clear(secret)
		priv, commitSecret = next, secret
	}
	sc, err := g.finishStaging(st, ac, commitSecret, priv)
	if err != nil && commitSecret != nil {
		priv.wipe() // the view decryptPath made
	}
	return sc, err
}

// noLeaf stands for "no leaf index yet" when checking a new member's keys.
const noLeaf = ^leafIndex(0)

// privAfterUpdates returns our private tree view for a commit: if the
// commit applies an Update we proposed, our leaf key becomes the one we
// generated for it.
func (g *Group) privAfterUpdates(st *staging) (*treePrivate, error) {
	if !slices.Contains(st.updated, g.priv.self) {
		return g.priv, nil
	}
	leaf := st.tree.leaf(g.priv.self)
	for _, u := range g.pendingUpdates {
		if bytes.Equal(u.pub, leaf.EncryptionKey) {
			priv := g.priv.clone()
			priv.leaf = bytes.Clone(u.priv)
			clear(priv.nodes) // an update blanks our direct path
			return priv, nil
		}
	}
	return nil, errorf("commit applies an Update of ours that we did not make")
}

// checkPathLeaf validates the new leaf of an UpdatePath (§12.4.2) at
// index at, replacing old (nil for an external committer): a valid
// commit-source leaf whose keys are fresh among members, the group's
// leaves before the path. Its signature is mergeUpdatePath's to verify,
// which always follows.
func checkPathLeaf(s *suite, gc *GroupContext, members *treeKeys, at leafIndex, leaf, old *LeafNode) error {
	if leaf.Source != SourceCommit {
		return errorf("update path leaf node source is %d", leaf.Source)
	}
	if err := checkLeafNode(s, gc, leaf, at); err != nil {
		return err
	}
	return members.check(at, leaf, old)
}

// finishStaging runs the transcript hash and key schedule of the new epoch.
func (g *Group) finishStaging(st *staging, ac *AuthenticatedContent, commitSecret []byte, priv *treePrivate) (*StagedCommit, error) {
	s := g.suite
	raw, err := ac.encodedContent()
	if err != nil {
		return nil, err
	}
	confirmed, err := confirmedTranscriptHash(s, g.interim, ac)
	if err != nil {
		return nil, err
	}
	st.ctx.ConfirmedTranscriptHash = confirmed
	ctxRaw := mustEncode(&st.ctx)
	psk, err := g.pskSecret(st.psks)
	if err != nil {
		return nil, err
	}
	init := g.secrets.init
	if st.externalInit != nil {
		init, err = g.secrets.externalInitSecret(st.externalInit.KEMOutput)
		if err != nil {
			return nil, errorf("cannot derive the external init secret")
		}
	}
	secrets := newEpochSecrets(s, init, commitSecret, psk, ctxRaw)
	if priv != nil && priv == g.priv {
		// A commit without a path keeps our keys; the staged commit gets
		// its own copy, so that wiping it (rejected, discarded or
		// superseded) never erases the group's.
		priv = priv.clone()
	}
	sc := &StagedCommit{
		Epoch:       st.ctx.Epoch,
		PSKs:        st.psks,
		SelfRemoved: st.selfRemoved,
		ReInit:      st.reinit,
		raw:         raw,
		ctx:         st.ctx,
		ctxRaw:      ctxRaw,
		tree:        st.tree,
		priv:        priv,
		secrets:     secrets,
	}
	for _, l := range st.added {
		sc.Added = append(sc.Added, uint32(l))
	}
	for _, l := range st.updated {
		sc.Updated = append(sc.Updated, uint32(l))
	}
	sc.Removed = st.removed
	tag := ac.Auth.ConfirmationTag
	if tag == nil {
		tag = confirmationTag(s, secrets.confirmation, confirmed)
	}
	sc.tag = tag
	sc.interim = interimTranscriptHash(s, confirmed, tag)
	return sc, nil
}

// Merge applies a staged commit: the group enters the new epoch. For our
// own commit use [Group.MergePendingCommit], which calls this.
func (g *Group) Merge(sc *StagedCommit) error {
	if sc == nil || sc.ctx.Epoch != g.ctx.Epoch+1 || !bytes.Equal(sc.ctx.GroupID, g.ctx.GroupID) {
		return errorf("staged commit does not follow the current epoch")
	}
	// Keep the epoch that ends for late application messages.
	g.past = append([]*pastEpoch{{
		epoch:      g.ctx.Epoch,
		senderData: g.secrets.senderData,
		keys:       g.keys,
		tree:       g.tree,
		ctxRaw:     g.ctxRaw,
	}}, g.past...)
	for len(g.past) > g.cfg.PastEpochs {
		g.past[len(g.past)-1].wipe()
		g.past = g.past[:len(g.past)-1]
	}
	old := g.secrets
	old.senderData = nil // now owned by the past epoch
	old.wipe()
	if sc.SelfRemoved {
		// Removed: keep only the past epochs, for late messages.
		if g.priv != nil {
			g.priv.wipe()
		}
		g.priv, g.secrets, g.keys, g.proposals = nil, nil, nil, nil
		g.ctx, g.tree = sc.ctx, sc.tree
		return nil
	}
	if g.priv != sc.priv && g.priv != nil {
		g.priv.wipe()
	}
	g.proposals = nil // cached proposals end with the epoch
	for _, u := range g.pendingUpdates {
		clear(u.priv)
	}
	g.pendingUpdates = nil
	if g.pending != nil && g.pending != sc {
		g.pending.wipe()
	}
	g.pending = nil
	g.ctx, g.ctxRaw, g.tree = sc.ctx, sc.ctxRaw, sc.tree
	g.interim, g.confirmationTag = sc.interim, sc.tag
	if sc.SelfRemoved {
		g.priv = nil
	} else {
		g.priv = sc.priv
	}
	if sc.ReInit != nil {
		g.reinit = sc.ReInit
	}
	return g.enterEpoch(sc.secrets)
}

// MergePendingCommit applies the commit we sent last, once the delivery
// service has confirmed that it won the epoch.
func (g *Group) MergePendingCommit() error {
	if g.pending == nil {
		return errorf("no pending commit")
	}
	return g.Merge(g.pending)
}

// DiscardPendingCommit forgets the commit we sent last, when another
// commit won the epoch. Proposals we made stay cached.
func (g *Group) DiscardPendingCommit() {
	if g.pending != nil {
		g.pending.wipe()
		g.pending = nil
	}
}

// HasPendingCommit reports whether a commit of ours awaits confirmation.
func (g *Group) HasPendingCommit() bool { return g.pending != nil }

// --- Sending proposals ---

// ProposeAdd sends an Add proposal for kp.
func (g *Group) ProposeAdd(kp *KeyPackage) (*MLSMessage, error) {
	return g.propose(&Proposal{Type: ProposalAdd, Add: &AddProposal{KeyPackage: *kp}})
}

// ProposeRemove sends a Remove proposal for the member at leaf index i.
func (g *Group) ProposeRemove(i uint32) (*MLSMessage, error) {
	if i >= g.tree.numLeaves() || g.tree.leaf(leafIndex(i)) == nil {
		return nil, errorf("no member at leaf %d", i)
	}
	return g.propose(&Proposal{Type: ProposalRemove, Remove: &RemoveProposal{Removed: i}})
}

// ProposePSK sends a PreSharedKey proposal for an external PSK id; the
// nonce is fresh.
func (g *Group) ProposeExternalPSK(id []byte) (*MLSMessage, error) {
	return g.propose(&Proposal{Type: ProposalPSK, PreSharedKey: &PreSharedKeyProposal{PSK: g.newPSKID(PSKExternal, id, 0)}})
}

// ProposeResumptionPSK sends a PreSharedKey proposal for this group's
// resumption PSK of an earlier epoch.
func (g *Group) ProposeResumptionPSK(epoch uint64) (*MLSMessage, error) {
	return g.propose(&Proposal{Type: ProposalPSK, PreSharedKey: &PreSharedKeyProposal{PSK: g.newPSKID(PSKResumption, nil, epoch)}})
}

func (g *Group) newPSKID(t PSKType, id []byte, epoch uint64) PreSharedKeyID {
	nonce := make([]byte, g.suite.nh())
	rand.Read(nonce)
	p := PreSharedKeyID{PSKType: t, PSKNonce: nonce}
	if t == PSKExternal {
		p.PSKID = bytes.Clone(id)
	} else {
		p.Usage, p.PSKGroupID, p.PSKEpoch = ResumptionApplication, bytes.Clone(g.ctx.GroupID), epoch
	}
	return p
}

// ProposeGroupContextExtensions sends a GroupContextExtensions proposal.
func (g *Group) ProposeGroupContextExtensions(exts Extensions) (*MLSMessage, error) {
	return g.propose(&Proposal{Type: ProposalGroupContextExtensions, GroupContextExtensions: &GroupContextExtensionsProposal{Extensions: exts}})
}

// ProposeReInit sends a ReInit proposal (§12.1.5).
func (g *Group) ProposeReInit(groupID []byte, cs CipherSuite, exts Extensions) (*MLSMessage, error) {
	return g.propose(&Proposal{Type: ProposalReInit, ReInit: &ReInitProposal{GroupID: groupID, Version: MLS10, CipherSuite: cs, Extensions: exts}})
}

// ProposeUpdate sends an Update proposal with a fresh leaf encryption key
// (§12.1.2). The new private key is kept until the epoch ends.
func (g *Group) ProposeUpdate() (*MLSMessage, error) {
	leaf := g.tree.leaf(g.priv.self).clone()
	priv, pub, err := g.suite.generateKeyPair()
	if err != nil {
		return nil, err
	}
	leaf.EncryptionKey, leaf.Source = pub, SourceUpdate
	leaf.ParentHash, leaf.Lifetime = nil, Lifetime{}
	tbs := leaf.tbs(g.ctx.GroupID, g.priv.self)
	if leaf.Signature, err = g.sigKey.signWithLabel("LeafNodeTBS", tbs); err != nil {
		return nil, err
	}
	m, err := g.propose(&Proposal{Type: ProposalUpdate, Update: &UpdateProposal{LeafNode: *leaf}})
	if err != nil {
		clear(priv)
		return nil, err
	}
	g.pendingUpdates = append(g.pendingUpdates, pendingUpdate{pub: pub, priv: priv})
	return m, nil
}

// propose signs and frames a proposal and caches it for our next commit.
func (g *Group) propose(p *Proposal) (*MLSMessage, error) {
	if !g.Active() {
		return nil, ErrInactive
	}
	if err := g.checkStandaloneProposal(p, MemberSender(uint32(g.priv.self))); err != nil {
		return nil, err
	}
	content := FramedContent{
		GroupID:     g.ctx.GroupID,
		Epoch:       g.ctx.Epoch,
		Sender:      MemberSender(uint32(g.priv.self)),
		ContentType: ContentProposal,
		Proposal:    p,
	}
	ac, err := g.sign(&content)
	if err != nil {
		return nil, err
	}
	ref, err := makeProposalRef(g.suite, ac)
	if err != nil {
		return nil, err
	}
	m, err := g.frame(ac)
	if err != nil {
		return nil, err
	}
	g.proposals = append(g.proposals, cachedProposal{ref: ref, proposal: p, sender: content.Sender})
	return m, nil
}

// --- Committing ---

// CommitOptions say what a commit does beyond committing every proposal
// cached in this epoch (by reference).
type CommitOptions struct {
	Add    []*KeyPackage
	Remove []uint32
	// ExternalPSKs are external PSK ids to mix in (their values come from
	// Config.ExternalPSK).
	ExternalPSKs [][]byte
	// Extensions, when non-nil, replace the GroupContext extensions.
	Extensions Extensions
	// ForcePath includes an UpdatePath even when no proposal needs one.
	ForcePath bool
	// InlineTree puts the ratchet tree in the Welcome's GroupInfo, so that
	// new members need not fetch it (§12.4.3.3).
	InlineTree bool
	// GroupInfo asks for CommitResult.GroupInfo (by default there is none).
	GroupInfo GroupInfoOption
	// AuthenticatedData travels in the clear, authenticated.
	AuthenticatedData []byte
	// SkipCached leaves the proposals cached this epoch out of the commit.
	SkipCached bool
}

// GroupInfoOption says whether a commit also returns the signed GroupInfo
// of the epoch it starts, with the external_pub extension, which clients
// need to join by external commit (§12.4.3.2).
type GroupInfoOption uint8

const (
	// NoGroupInfo returns none: the commit costs O(log n) in a full tree.
	// [Group.GroupInfo] builds one once the commit is merged.
	NoGroupInfo GroupInfoOption = iota
	// GroupInfoExternalTree returns one without the ratchet tree, which
	// joiners then get out of band: one more signature.
	GroupInfoExternalTree
	// GroupInfoInlineTree returns one with the ratchet_tree extension
	// (§12.4.3.3): the whole tree is encoded and signed, O(n) in the size
	// of the group.
	GroupInfoInlineTree
)

// CommitResult is what a commit produces: the commit to send to the group,
// the Welcome for new members (nil when there are none) and, when
// CommitOptions.GroupInfo asks for it, the GroupInfo of the new epoch.
type CommitResult struct {
	Commit    *MLSMessage
	Welcome   *MLSMessage
	GroupInfo *MLSMessage
	// Staged describes the commit; it is merged by MergePendingCommit.
	Staged *StagedCommit
}

// Commit creates a commit of the cached proposals and those in o, and
// keeps it pending until [Group.MergePendingCommit] or
// [Group.DiscardPendingCommit] (§12.4.1).
func (g *Group) Commit(o CommitOptions) (*CommitResult, error) {
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
				continue // our own updates are superseded by the path
			}
			list = append(list, ProposalOrRef{Type: ProposalOrRefReference, Reference: c.ref})
		}
	}
	byValue := func(p *Proposal) { list = append(list, ProposalOrRef{Type: ProposalOrRefProposal, Proposal: p}) }
	if o.Extensions != nil {
		byValue(&Proposal{Type: ProposalGroupContextExtensions, GroupContextExtensions: &GroupContextExtensionsProposal{Extensions: o.Extensions}})
	}
	for _, i := range o.Remove {
		byValue(&Proposal{Type: ProposalRemove, Remove: &RemoveProposal{Removed: i}})
	}
	for _, kp := range o.Add {
		byValue(&Proposal{Type: ProposalAdd, Add: &AddProposal{KeyPackage: *kp}})
	}
	for _, id := range o.ExternalPSKs {
		p := g.newPSKID(PSKExternal, id, 0)
		byValue(&Proposal{Type: ProposalPSK, PreSharedKey: &PreSharedKeyProposal{PSK: p}})
	}
	return g.commit(list, o)
}

// commit builds, signs and stages a commit of list.
func (g *Group) commit(list []ProposalOrRef, o CommitOptions) (*CommitResult, error) {
	self := MemberSender(uint32(g.priv.self))
	resolved, err := g.resolve(list, self)
	if err != nil {
		return nil, err
	}
	st, err := g.stage(resolved, self, nil)
	if err != nil {
		return nil, err
	}
	commit := &Commit{Proposals: list}
	priv := g.priv
	var commitSecret []byte
	var path *pendingPath
	st.ctx.Epoch = g.ctx.Epoch + 1
	if st.pathRequired || o.ForcePath {
		template := st.tree.leaf(g.priv.self)
		path, err = st.tree.createUpdatePath(g.priv.self, template, g.sigKey, g.ctx.GroupID)
		if err != nil {
			return nil, err
		}
		defer path.wipe()
		st.ctx.TreeHash = st.tree.treeHash()
		up, err := path.encrypt(mustEncode(&st.ctx), st.added)
		if err != nil {
			return nil, err
		}
		commit.Path = up
		priv, commitSecret = path.priv, path.commitSecret
	} else {
		st.ctx.TreeHash = st.tree.treeHash()
	}
	content := FramedContent{
		GroupID:           g.ctx.GroupID,
		Epoch:             g.ctx.Epoch,
		Sender:            self,
		AuthenticatedData: o.AuthenticatedData,
		ContentType:       ContentCommit,
		Commit:            commit,
	}
	ac, err := g.sign(&content)
	if err != nil {
		return nil, err
	}
	sc, err := g.finishStaging(st, ac, commitSecret, priv)
	if err != nil {
		return nil, err
	}
	sc.own, sc.Committer = true, self
	ac.Auth.ConfirmationTag = sc.tag
	msg, err := g.frame(ac)
	if err != nil {
		sc.wipe()
		return nil, err
	}
	res := &CommitResult{Commit: msg, Staged: sc}
	if len(st.added) > 0 {
		if res.Welcome, err = g.welcome(st, sc, path, o.InlineTree); err != nil {
			sc.wipe()
			return nil, err
		}
	}
	if o.GroupInfo != NoGroupInfo {
		gi, err := g.groupInfoFor(sc, o.GroupInfo == GroupInfoInlineTree)
		if err != nil {
			sc.wipe()
			return nil, err
		}
		res.GroupInfo = &MLSMessage{WireFormat: WireFormatGroupInfo, GroupInfo: gi}
	}
	g.pending = sc
	return res, nil
}

// welcome builds the Welcome of our commit sc for the members st added,
// giving each the path secret it needs when the commit has a path.
func (g *Group) welcome(st *staging, sc *StagedCommit, path *pendingPath, inlineTree bool) (*MLSMessage, error) {
	gi, err := g.groupInfoFor(sc, inlineTree)
	if err != nil {
		return nil, err
	}
	recipients := make([]welcomeRecipient, len(st.added))
	for i, l := range st.added {
		recipients[i].keyPackage = st.addedKPs[i]
		if path != nil {
			recipients[i].pathSecret, _ = path.pathSecretFor(l)
		}
	}
	w, err := newWelcome(g.suite, gi, sc.secrets.welcome, sc.secrets.joiner, st.psks, recipients)
	for _, r := range recipients {
		clear(r.pathSecret)
	}
	if err != nil {
		return nil, err
	}
	return &MLSMessage{WireFormat: WireFormatWelcome, Welcome: w}, nil
}

// groupInfoFor builds and signs the GroupInfo of the epoch sc starts.
func (g *Group) groupInfoFor(sc *StagedCommit, inlineTree bool) (*GroupInfo, error) {
	return buildGroupInfo(g.sigKey, &sc.ctx, sc.tree, sc.tag, sc.secrets, sc.priv.self, inlineTree)
}

// GroupInfo returns a signed GroupInfo of the current epoch with the
// external_pub extension, so that a new device can join by external commit.
func (g *Group) GroupInfo(inlineTree bool) (*MLSMessage, error) {
	if !g.Active() {
		return nil, ErrInactive
	}
	gi, err := buildGroupInfo(g.sigKey, &g.ctx, g.tree, g.confirmationTag, g.secrets, g.priv.self, inlineTree)
	if err != nil {
		return nil, err
	}
	return &MLSMessage{WireFormat: WireFormatGroupInfo, GroupInfo: gi}, nil
}

// RatchetTree returns the encoded ratchet tree, for delivery out of band.
func (g *Group) RatchetTree() []byte { return mustEncode(g.tree) }

func buildGroupInfo(key *SignatureKey, ctx *GroupContext, tree *ratchetTree, tag []byte, secrets *epochSecrets, signer leafIndex, inlineTree bool) (*GroupInfo, error) {
	_, pub, err := secrets.externalKeyPair()
	if err != nil {
		return nil, err
	}
	gi := &GroupInfo{
		GroupContext:    *ctx,
		ConfirmationTag: tag,
		Signer:          uint32(signer),
	}
	gi.Extensions = append(gi.Extensions, Extension{Type: ExtExternalPub, Data: mustEncode(opaqueValue(pub))})
	if inlineTree {
		gi.Extensions = append(gi.Extensions, Extension{Type: ExtRatchetTree, Data: mustEncode(tree)})
	}
	if err := gi.sign(key); err != nil {
		return nil, err
	}
	return gi, nil
}

// opaqueValue encodes as opaque<V>.
type opaqueValue []byte

func (o opaqueValue) marshal(b *cryptobyte.Builder) { addOpaque(b, o) }

func (o *opaqueValue) unmarshal(s *cryptobyte.String) bool {
	var v []byte
	if !readOpaque(s, &v) {
		return false
	}
	*o = v
	return true
}
