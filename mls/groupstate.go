package mls

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"slices"

	"golang.org/x/crypto/cryptobyte"
)

// Persistence of a member's whole group state, so that a client can store
// it between messages and survive a crash. The encoding is this package's
// own (it is not an MLS wire structure), written with the TLS presentation
// helpers of codec.go:
//
//	opaque magic[4] = "MLSG"; uint8 version = 1;
//	uint16 cipher_suite;
//	GroupContext context;                      // §8.1
//	ratchet_tree tree;                         // §12.4.3.3 encoding
//	optional<SignatureKey> signature_key;      // opaque key<V> (SignatureKey.Bytes)
//	optional<MemberState> member;              // absent once we were removed
//	opaque interim_transcript_hash<V>;
//	opaque confirmation_tag<V>;
//	struct { opaque ref<V>; Proposal proposal; Sender sender; } proposals<V>;
//	struct { opaque pub<V>; opaque priv<V>; } pending_updates<V>;
//	optional<PendingCommit> pending_commit;
//	struct { uint64 epoch; opaque sender_data<V>; SecretTree keys;
//	         ratchet_tree tree; opaque group_context<V>; } past_epochs<V>;  // newest first
//	struct { uint64 epoch; opaque psk<V>; } resumption_psks<V>;            // ascending epoch
//	optional<ReInitProposal> reinit;
//
//	MemberState: TreePrivate private; EpochSecrets secrets; SecretTree keys;
//	EpochSecrets: opaque init, sender_data, exporter, external, confirm,
//	    membership, resumption, authentication (each <V>, KDF.Nh bytes);
//	PendingCommit: Sender committer; uint32 added<V>; uint32 updated<V>;
//	    struct { uint32 index; LeafNode leaf; } removed<V>;
//	    PreSharedKeyID psks<V>; optional<ReInitProposal> reinit;
//	    opaque framed_content<V>; GroupContext context; ratchet_tree tree;
//	    TreePrivate private;
//	    EpochSecrets secrets; opaque encryption_secret<V>;
//	    opaque interim_transcript_hash<V>; opaque confirmation_tag<V>;
//
// TreePrivate and SecretTree are the encodings of treekem.go and
// secrettree.go. joiner_secret and welcome_secret are not kept: they only
// serve to make a Welcome, which is done by the time a commit is pending.
// Decoding is strict (no trailing or unknown bytes, every length checked)
// and then checks that the parts fit together: tree hashes against their
// GroupContexts, private keys against the tree's public keys, the
// confirmation tag against the confirmation key, secret trees against
// their trees. The encoding holds every secret of the group, including
// the signature private key: store it as such.
//
// KeyPackagePrivate has its own, smaller encoding:
//
//	opaque magic[4] = "MLSK"; uint8 version = 1;
//	KeyPackage key_package; opaque init_priv<V>; opaque encryption_priv<V>;
//	opaque signature_key<V>;

const (
	groupStateMagic      = "MLSG"
	keyPackageStateMagic = "MLSK"
	// stateVersion is the version of both encodings; a later layout bumps
	// it, and the decoder refuses versions it does not know.
	stateVersion = 1
)

// ErrState is wrapped by the errors of UnmarshalGroup and
// UnmarshalKeyPackagePrivate when the data is not a valid saved state.
var ErrState = errors.New("mls: invalid saved state")

func stateErrorf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrState}, args...)...)
}

// MarshalBinary encodes the whole state of the group, secrets included,
// so that [UnmarshalGroup] can restore it, e.g. after a restart. A commit
// still pending (sent but not yet confirmed) is part of the state: after
// a restore, [Group.MergePendingCommit] or [Group.DiscardPendingCommit]
// finish it as they would have before. The result is secret.
func (g *Group) MarshalBinary() ([]byte, error) {
	b := cryptobyte.NewBuilder(nil)
	b.AddBytes([]byte(groupStateMagic))
	b.AddUint8(stateVersion)
	b.AddUint16(uint16(g.suite.id))
	g.ctx.marshal(b)
	g.tree.marshal(b)
	addOptional(b, g.sigKey != nil, func(b *cryptobyte.Builder) { addOpaque(b, g.sigKey.priv) })
	// A removed member keeps only what late messages need; whatever else
	// Merge left behind (proposals, a pending commit) can never be used.
	member := g.priv != nil && g.secrets != nil && g.keys != nil
	addOptional(b, member, func(b *cryptobyte.Builder) {
		g.priv.marshal(b)
		marshalEpochSecrets(b, g.secrets)
		g.keys.marshal(b)
	})
	addOpaque(b, g.interim)
	addOpaque(b, g.confirmationTag)
	addVector(b, func(b *cryptobyte.Builder) {
		if !member {
			return
		}
		for _, c := range g.proposals {
			addOpaque(b, c.ref)
			c.proposal.marshal(b)
			c.sender.marshal(b)
		}
	})
	addVector(b, func(b *cryptobyte.Builder) {
		if !member {
			return
		}
		for _, u := range g.pendingUpdates {
			addOpaque(b, u.pub)
			addOpaque(b, u.priv)
		}
	})
	addOptional(b, member && g.pending != nil, func(b *cryptobyte.Builder) { g.marshalPending(b) })
	addVector(b, func(b *cryptobyte.Builder) {
		for _, p := range g.past {
			b.AddUint64(p.epoch)
			addOpaque(b, p.senderData)
			p.keys.marshal(b)
			p.tree.marshal(b)
			addOpaque(b, p.ctxRaw)
		}
	})
	addVector(b, func(b *cryptobyte.Builder) {
		for _, e := range slices.Sorted(maps.Keys(g.resumption)) {
			b.AddUint64(e)
			addOpaque(b, g.resumption[e])
		}
	})
	addOptional(b, g.reinit != nil, func(b *cryptobyte.Builder) { g.reinit.marshal(b) })
	return b.Bytes()
}

// marshalEpochSecrets writes the secrets an epoch keeps once it has begun.
func marshalEpochSecrets(b *cryptobyte.Builder, e *epochSecrets) {
	for _, s := range e.kept() {
		addOpaque(b, *s)
	}
}

// kept lists the epoch secrets a group keeps for the whole epoch, in the
// order of the saved state.
func (e *epochSecrets) kept() []*[]byte {
	return []*[]byte{&e.init, &e.senderData, &e.exporter, &e.external,
		&e.confirmation, &e.membership, &e.resumption, &e.epochAuthenticator}
}

func (g *Group) marshalPending(b *cryptobyte.Builder) {
	sc := g.pending
	sc.Committer.marshal(b)
	addVector(b, func(b *cryptobyte.Builder) {
		for _, l := range sc.Added {
			b.AddUint32(l)
		}
	})
	addVector(b, func(b *cryptobyte.Builder) {
		for _, l := range sc.Updated {
			b.AddUint32(l)
		}
	})
	addVector(b, func(b *cryptobyte.Builder) {
		for i := range sc.Removed {
			b.AddUint32(sc.Removed[i].Index)
			sc.Removed[i].Leaf.marshal(b)
		}
	})
	addVector(b, func(b *cryptobyte.Builder) {
		for i := range sc.PSKs {
			sc.PSKs[i].marshal(b)
		}
	})
	addOptional(b, sc.ReInit != nil, func(b *cryptobyte.Builder) { sc.ReInit.marshal(b) })
	addOpaque(b, sc.raw)
	sc.ctx.marshal(b)
	sc.tree.marshal(b)
	sc.priv.marshal(b)
	marshalEpochSecrets(b, sc.secrets)
	addOpaque(b, sc.secrets.encryption)
	addOpaque(b, sc.interim)
	addOpaque(b, sc.tag)
}

// UnmarshalGroup restores a group saved with [Group.MarshalBinary]. cfg
// plays the role of the Config the group was created with; it is not
// part of the saved state (it holds functions). The secret trees already
// made keep the RatchetWindow they were saved with; later epochs use
// cfg's. Any malformed or inconsistent input is an error wrapping
// [ErrState].
func UnmarshalGroup(data []byte, cfg Config) (*Group, error) {
	s := cryptobyte.String(data)
	var magic []byte
	var version uint8
	if !s.ReadBytes(&magic, len(groupStateMagic)) || string(magic) != groupStateMagic {
		return nil, stateErrorf("not a saved group")
	}
	if !s.ReadUint8(&version) || version != stateVersion {
		return nil, stateErrorf("unknown version")
	}
	g := &Group{cfg: cfg.withDefaults(), resumption: make(map[uint64][]byte)}
	err := g.readState(&s)
	if err == nil && !s.Empty() {
		err = stateErrorf("%d trailing bytes", len(s))
	}
	if err == nil {
		err = g.checkState()
	}
	if err != nil {
		g.Wipe()
		return nil, err
	}
	// Index the keys of the trees commits will be staged on now, in O(n)
	// like the rest of loading, rather than in the first commit.
	g.tree.index()
	if g.pending != nil {
		g.pending.tree.index()
	}
	return g, nil
}

// readState parses the saved parts into g, checking only their syntax and
// sizes; checkState then checks that they fit together. Each part is
// stored in g as soon as it is read, so that Wipe reaches the secrets of
// a state that fails halfway.
func (g *Group) readState(s *cryptobyte.String) error {
	for _, part := range []struct {
		name string
		read func(*cryptobyte.String) bool
	}{
		{"header", g.readHeader},
		{"signature key", g.readSignatureKey},
		{"member state", g.readMember},
		{"transcript", g.readTranscript},
		{"cached proposals", g.readProposals},
		{"pending updates", g.readPendingUpdates},
		{"pending commit", g.readPendingCommit},
		{"past epochs", g.readPastEpochs},
		{"resumption PSKs", g.readResumption},
		{"reinit", func(s *cryptobyte.String) bool { return readReInit(s, &g.reinit) }},
	} {
		if !part.read(s) {
			return stateErrorf("%s", part.name)
		}
	}
	return nil
}

// readHeader reads the suite, the GroupContext and the ratchet tree.
func (g *Group) readHeader(s *cryptobyte.String) bool {
	var cs uint16
	if !s.ReadUint16(&cs) {
		return false
	}
	st, err := lookupSuite(CipherSuite(cs))
	if err != nil || !g.ctx.unmarshal(s) || g.ctx.CipherSuite != st.id {
		return false
	}
	g.suite, g.ctxRaw = st, mustEncode(&g.ctx)
	return readTree(s, st, &g.tree)
}

// readTree reads a ratchet tree of suite st.
func readTree(s *cryptobyte.String, st *suite, out **ratchetTree) bool {
	t := &ratchetTree{suite: st}
	if !t.unmarshal(s) {
		return false
	}
	*out = t
	return true
}

func (g *Group) readSignatureKey(s *cryptobyte.String) bool {
	var key []byte
	defer func() { clear(key) }()
	return readOptional(s, new(bool), func(s *cryptobyte.String) bool {
		if !readOpaque(s, &key) {
			return false
		}
		k, err := newSignatureKey(g.suite, key)
		g.sigKey = k
		return err == nil
	})
}

// readMember reads our private tree keys, the epoch secrets and the
// secret tree, which a member has and a removed member no longer has.
func (g *Group) readMember(s *cryptobyte.String) bool {
	return readOptional(s, new(bool), func(s *cryptobyte.String) bool {
		g.priv = new(treePrivate)
		if !g.priv.unmarshal(s) {
			return false
		}
		g.secrets = &epochSecrets{suite: g.suite}
		return readEpochSecrets(s, g.secrets) && readSecretTree(s, g.suite, &g.keys)
	})
}

// readEpochSecrets reads the secrets an epoch keeps, each KDF.Nh bytes.
func readEpochSecrets(s *cryptobyte.String, e *epochSecrets) bool {
	for _, p := range e.kept() {
		if !readSecret(s, e.suite, p) {
			return false
		}
	}
	return true
}

// readSecret reads an opaque secret of KDF.Nh bytes.
func readSecret(s *cryptobyte.String, st *suite, out *[]byte) bool {
	if !readOpaque(s, out) {
		return false
	}
	if len(*out) != st.nh() {
		clear(*out)
		*out = nil
		return false
	}
	return true
}

// readSecretTree reads a secret tree of suite st.
func readSecretTree(s *cryptobyte.String, st *suite, out **secretTree) bool {
	k := new(secretTree)
	if !k.unmarshal(s) {
		return false // unmarshal wiped what it had read
	}
	*out = k
	return k.suite == st
}

func (g *Group) readTranscript(s *cryptobyte.String) bool {
	return readOpaque(s, &g.interim) && readOpaque(s, &g.confirmationTag)
}

func (g *Group) readProposals(s *cryptobyte.String) bool {
	return readList(s, func(s *cryptobyte.String) bool {
		c := cachedProposal{proposal: new(Proposal)}
		if !readOpaque(s, (*[]byte)(&c.ref)) || len(c.ref) != g.suite.nh() ||
			!c.proposal.unmarshal(s) || !c.sender.unmarshal(s) {
			return false
		}
		for _, o := range g.proposals {
			if bytes.Equal(o.ref, c.ref) {
				return false
			}
		}
		g.proposals = append(g.proposals, c)
		return true
	})
}

func (g *Group) readPendingUpdates(s *cryptobyte.String) bool {
	return readList(s, func(s *cryptobyte.String) bool {
		var u pendingUpdate
		ok := readOpaque(s, &u.pub) && readOpaque(s, &u.priv)
		g.pendingUpdates = append(g.pendingUpdates, u)
		return ok
	})
}

// readPendingCommit reads our own commit awaiting confirmation.
func (g *Group) readPendingCommit(s *cryptobyte.String) bool {
	return readOptional(s, new(bool), func(s *cryptobyte.String) bool {
		sc := &StagedCommit{own: true, secrets: &epochSecrets{suite: g.suite}, priv: new(treePrivate)}
		g.pending = sc
		if !sc.Committer.unmarshal(s) || !readUint32s(s, &sc.Added) || !readUint32s(s, &sc.Updated) ||
			!readRemoved(s, &sc.Removed) || !readPSKs(s, &sc.PSKs) || !readReInit(s, &sc.ReInit) ||
			!readOpaque(s, &sc.raw) || !sc.ctx.unmarshal(s) || !readTree(s, g.suite, &sc.tree) {
			return false
		}
		sc.Epoch, sc.ctxRaw = sc.ctx.Epoch, mustEncode(&sc.ctx)
		return sc.priv.unmarshal(s) && readEpochSecrets(s, sc.secrets) &&
			readSecret(s, g.suite, &sc.secrets.encryption) && readOpaque(s, &sc.interim) && readOpaque(s, &sc.tag)
	})
}

func readUint32s(s *cryptobyte.String, out *[]uint32) bool {
	return readList(s, func(s *cryptobyte.String) bool {
		var v uint32
		if !s.ReadUint32(&v) {
			return false
		}
		*out = append(*out, v)
		return true
	})
}

func readRemoved(s *cryptobyte.String, out *[]RemovedMember) bool {
	return readList(s, func(s *cryptobyte.String) bool {
		var r RemovedMember
		if !s.ReadUint32(&r.Index) || !r.Leaf.unmarshal(s) {
			return false
		}
		*out = append(*out, r)
		return true
	})
}

func readPSKs(s *cryptobyte.String, out *[]PreSharedKeyID) bool {
	return readList(s, func(s *cryptobyte.String) bool {
		var p PreSharedKeyID
		if !p.unmarshal(s) {
			return false
		}
		*out = append(*out, p)
		return true
	})
}

func readReInit(s *cryptobyte.String, out **ReInitProposal) bool {
	var present bool
	r := new(ReInitProposal)
	if !readOptional(s, &present, r.unmarshal) {
		return false
	}
	if present {
		*out = r
	}
	return true
}

// readPastEpochs reads the retained earlier epochs, newest first.
func (g *Group) readPastEpochs(s *cryptobyte.String) bool {
	return readList(s, func(s *cryptobyte.String) bool {
		p := new(pastEpoch)
		if !s.ReadUint64(&p.epoch) || !readSecret(s, g.suite, &p.senderData) {
			return false
		}
		if !readSecretTree(s, g.suite, &p.keys) {
			clear(p.senderData)
			if p.keys != nil {
				p.keys.wipe()
			}
			return false
		}
		g.past = append(g.past, p) // so that Wipe reaches its secrets
		return readTree(s, g.suite, &p.tree) && readOpaque(s, &p.ctxRaw)
	})
}

// readResumption reads the resumption PSKs, in increasing epoch order.
func (g *Group) readResumption(s *cryptobyte.String) bool {
	first := true
	var prev uint64
	return readList(s, func(s *cryptobyte.String) bool {
		var e uint64
		var psk []byte
		if !s.ReadUint64(&e) || !readSecret(s, g.suite, &psk) {
			return false
		}
		if !first && e <= prev {
			clear(psk)
			return false
		}
		g.resumption[e] = psk
		first, prev = false, e
		return true
	})
}

// checkState checks that the parts of a restored group fit together, the
// cheap checks first: epochs and sizes, then tree hashes against their
// GroupContexts, then private keys against the tree's public keys.
func (g *Group) checkState() error {
	member := g.priv != nil
	if !member && (len(g.proposals) > 0 || len(g.pendingUpdates) > 0 || g.pending != nil) {
		return stateErrorf("proposals or a pending commit without member state")
	}
	if last, ok := maxKey(g.resumption); ok && last > g.ctx.Epoch {
		return stateErrorf("resumption PSK of a future epoch")
	}
	if !bytes.Equal(g.tree.treeHash(), g.ctx.TreeHash) {
		return stateErrorf("ratchet tree does not match its tree hash")
	}
	if err := g.checkPastEpochs(); err != nil {
		return err
	}
	if !member {
		// Removed: the transcript describes the epoch we left, as Merge
		// left it, and there are no keys to check.
		return nil
	}
	if err := g.checkMember(); err != nil {
		return err
	}
	for _, u := range g.pendingUpdates {
		if !keyMatches(g.suite, u.priv, u.pub) {
			return stateErrorf("pending update key pair does not match")
		}
	}
	if g.pending != nil {
		return g.checkPending()
	}
	return nil
}

// maxKey returns the largest key of m.
func maxKey(m map[uint64][]byte) (uint64, bool) {
	if len(m) == 0 {
		return 0, false
	}
	return slices.Max(slices.Collect(maps.Keys(m))), true
}

// checkMember checks a member's secret tree, signature key, transcript
// and private tree keys against the epoch.
func (g *Group) checkMember() error {
	if g.keys.leaves != g.tree.numLeaves() {
		return stateErrorf("secret tree does not fit the ratchet tree")
	}
	leaf := g.tree.leaf(g.priv.self)
	if leaf == nil || g.sigKey == nil || !bytes.Equal(g.sigKey.Public(), leaf.SignatureKey) {
		return stateErrorf("signature key does not match our leaf")
	}
	confirmed := g.ctx.ConfirmedTranscriptHash
	if !verifyConfirmationTag(g.suite, g.secrets.confirmation, confirmed, g.confirmationTag) ||
		!bytes.Equal(g.interim, interimTranscriptHash(g.suite, confirmed, g.confirmationTag)) {
		return stateErrorf("transcript does not match the epoch")
	}
	return g.priv.check(g.tree)
}

// check verifies that p's keys are those of the public keys in t: its
// leaf's and every parent node's it holds a key for.
func (p *treePrivate) check(t *ratchetTree) error {
	leaf := t.leaf(p.self)
	if leaf == nil {
		return stateErrorf("our leaf is blank")
	}
	if !keyMatches(t.suite, p.leaf, leaf.EncryptionKey) {
		return stateErrorf("leaf private key does not match the tree")
	}
	for x, k := range p.nodes {
		pn := t.parentNode(x)
		if pn == nil || !keyMatches(t.suite, k, pn.EncryptionKey) {
			return stateErrorf("node private key does not match the tree")
		}
	}
	return nil
}

// keyMatches reports whether priv is the HPKE private key of pub.
func keyMatches(s *suite, priv, pub []byte) bool {
	got, err := s.hpkePublicFromPrivate(priv)
	return err == nil && bytes.Equal(got, pub)
}

// checkPending checks that the pending commit is ours, starts the next
// epoch, and that its tree, keys and transcript agree.
func (g *Group) checkPending() error {
	sc := g.pending
	var content FramedContent
	if decode(sc.raw, &content, "framed content") != nil || content.ContentType != ContentCommit ||
		content.Epoch != g.ctx.Epoch || !bytes.Equal(content.GroupID, g.ctx.GroupID) || content.Sender != sc.Committer {
		return stateErrorf("pending commit content")
	}
	if sc.Committer != MemberSender(uint32(g.priv.self)) || sc.priv.self != g.priv.self ||
		sc.ctx.Epoch != g.ctx.Epoch+1 || !bytes.Equal(sc.ctx.GroupID, g.ctx.GroupID) || sc.ctx.CipherSuite != g.suite.id {
		return stateErrorf("pending commit does not follow the epoch")
	}
	confirmed := sc.ctx.ConfirmedTranscriptHash
	if !verifyConfirmationTag(g.suite, sc.secrets.confirmation, confirmed, sc.tag) ||
		!bytes.Equal(sc.interim, interimTranscriptHash(g.suite, confirmed, sc.tag)) {
		return stateErrorf("pending commit transcript")
	}
	if !bytes.Equal(sc.tree.treeHash(), sc.ctx.TreeHash) {
		return stateErrorf("pending commit tree does not match its tree hash")
	}
	return sc.priv.check(sc.tree)
}

// checkPastEpochs checks each past epoch's GroupContext against the group,
// its tree and its secret tree, and that they go back in time.
func (g *Group) checkPastEpochs() error {
	newer := g.ctx.Epoch
	for _, p := range g.past {
		var gc GroupContext
		if decode(p.ctxRaw, &gc, "group context") != nil || gc.Epoch != p.epoch || p.epoch >= newer ||
			!bytes.Equal(gc.GroupID, g.ctx.GroupID) || gc.CipherSuite != g.suite.id ||
			p.keys.leaves != p.tree.numLeaves() {
			return stateErrorf("past epoch %d is inconsistent", p.epoch)
		}
		if !bytes.Equal(p.tree.treeHash(), gc.TreeHash) {
			return stateErrorf("past epoch %d tree does not match its tree hash", p.epoch)
		}
		newer = p.epoch
	}
	return nil
}

// Wipe erases every secret the group holds: its private tree keys, the
// epoch secrets and secret trees of the current and past epochs, the keys
// of pending updates and of a pending commit, and the resumption PSKs. The
// group is inactive afterwards. The signature key is left alone: it
// belongs to the application, which typically shares it between groups.
// Go cannot guarantee that no copy of a secret survives elsewhere in
// memory (the runtime may have moved or copied it); Wipe clears every copy
// the group can reach.
func (g *Group) Wipe() {
	if g.pending != nil {
		g.pending.wipe()
		g.pending = nil
	}
	if g.priv != nil {
		g.priv.wipe()
		g.priv = nil
	}
	if g.secrets != nil {
		g.secrets.wipe()
		g.secrets = nil
	}
	if g.keys != nil {
		g.keys.wipe()
		g.keys = nil
	}
	for _, u := range g.pendingUpdates {
		clear(u.priv)
	}
	g.pendingUpdates = nil
	for _, p := range g.past {
		p.wipe()
	}
	g.past = nil
	for e, psk := range g.resumption {
		clear(psk)
		delete(g.resumption, e)
	}
	g.proposals = nil
}

// MarshalBinary encodes the KeyPackage with its private keys and
// signature key, for keeping it until a Welcome for it arrives. The
// result is secret.
func (p *KeyPackagePrivate) MarshalBinary() ([]byte, error) {
	if p.sigKey == nil {
		return nil, errorf("KeyPackagePrivate without a signature key")
	}
	b := cryptobyte.NewBuilder(nil)
	b.AddBytes([]byte(keyPackageStateMagic))
	b.AddUint8(stateVersion)
	p.KeyPackage.marshal(b)
	addOpaque(b, p.initPriv)
	addOpaque(b, p.encryptionPriv)
	addOpaque(b, p.sigKey.priv)
	return b.Bytes()
}

// UnmarshalKeyPackagePrivate restores a KeyPackagePrivate saved with
// [KeyPackagePrivate.MarshalBinary], checking that every private key
// belongs to the KeyPackage and that its signature is valid.
func UnmarshalKeyPackagePrivate(data []byte) (*KeyPackagePrivate, error) {
	s := cryptobyte.String(data)
	var magic []byte
	var version uint8
	if !s.ReadBytes(&magic, len(keyPackageStateMagic)) || string(magic) != keyPackageStateMagic ||
		!s.ReadUint8(&version) || version != stateVersion {
		return nil, stateErrorf("not a saved KeyPackage")
	}
	p := &KeyPackagePrivate{KeyPackage: new(KeyPackage)}
	var sig []byte
	defer clear(sig)
	if !p.KeyPackage.unmarshal(&s) || !readOpaque(&s, &p.initPriv) ||
		!readOpaque(&s, &p.encryptionPriv) || !readOpaque(&s, &sig) || !s.Empty() {
		p.Wipe()
		return nil, stateErrorf("KeyPackage state")
	}
	if err := p.restore(sig); err != nil {
		p.Wipe()
		return nil, err
	}
	return p, nil
}

// restore parses the signature key and checks every key against the
// KeyPackage.
func (p *KeyPackagePrivate) restore(sig []byte) error {
	kp := p.KeyPackage
	st, err := lookupSuite(kp.CipherSuite)
	if err != nil {
		return stateErrorf("KeyPackage cipher suite")
	}
	if p.sigKey, err = newSignatureKey(st, sig); err != nil {
		return stateErrorf("signature key")
	}
	if !bytes.Equal(p.sigKey.Public(), kp.LeafNode.SignatureKey) || !kp.verifySignature(st) {
		return stateErrorf("signature key does not match the KeyPackage")
	}
	if !keyMatches(st, p.initPriv, kp.InitKey) || !keyMatches(st, p.encryptionPriv, kp.LeafNode.EncryptionKey) {
		return stateErrorf("private keys do not match the KeyPackage")
	}
	return nil
}
