package mls

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"time"
)

// Config tunes a Group. The zero value is usable: every field has a default.
type Config struct {
	// RatchetWindow bounds out-of-order application messages: how far ahead
	// of the last one a generation may jump, and how many skipped keys are
	// kept. Default DefaultRatchetWindow.
	RatchetWindow RatchetWindow
	// PaddingBlock pads the content of every PrivateMessage to a multiple of
	// this many bytes, hiding exact lengths. Default 32; 0 means 32.
	PaddingBlock int
	// PastEpochs is how many previous epochs' application keys are kept, so
	// that messages sent just before a commit still decrypt. Default 2.
	PastEpochs int
	// EncryptHandshake sends proposals and commits as PrivateMessage. By
	// default they are PublicMessage, so that a delivery service can order
	// commits and track membership without learning any content.
	EncryptHandshake bool
	// Now is the clock for KeyPackage lifetimes. Default time.Now.
	Now func() time.Time
	// MaxLifetime bounds the lifetime range of a KeyPackage accepted in an
	// Add (§7.2). Default DefaultMaxLifetime; a negative value sets no
	// bound, for deployments whose KeyPackages never expire.
	MaxLifetime time.Duration
	// ExternalPSK looks up an external pre-shared key by id (§8.4).
	ExternalPSK func(id []byte) ([]byte, bool)
}

func (c Config) withDefaults() Config {
	if c.RatchetWindow == (RatchetWindow{}) {
		c.RatchetWindow = DefaultRatchetWindow
	}
	if c.PaddingBlock <= 0 {
		c.PaddingBlock = 32
	}
	if c.PastEpochs < 0 {
		c.PastEpochs = 0
	} else if c.PastEpochs == 0 {
		c.PastEpochs = 2
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.MaxLifetime == 0 {
		c.MaxLifetime = DefaultMaxLifetime
	}
	return c
}

// resumptionHistory is how many epochs' resumption PSKs a group keeps.
const resumptionHistory = 8

// Group is one member's state of an MLS group: the ratchet tree, its own
// private keys, the current epoch's secrets and what it has received in
// this epoch. A Group is not safe for concurrent use.
type Group struct {
	cfg    Config
	suite  *suite
	ctx    GroupContext
	ctxRaw []byte // ctx, encoded: signed over by every member message
	tree   *ratchetTree
	priv   *treePrivate
	sigKey *SignatureKey

	secrets         *epochSecrets
	keys            *secretTree
	interim         []byte // interim transcript hash
	confirmationTag []byte

	proposals      []cachedProposal // received this epoch, in order
	pendingUpdates []pendingUpdate  // leaf keys of our Update proposals
	pending        *StagedCommit    // our own commit, sent but not yet confirmed
	past           []*pastEpoch     // newest first
	resumption     map[uint64][]byte

	// reinit is set once a commit with a ReInit proposal has been merged:
	// the group may then send nothing more (§12.1.5).
	reinit *ReInitProposal
}

// cachedProposal is a proposal received (or sent) in the current epoch.
type cachedProposal struct {
	ref      ProposalRef
	proposal *Proposal
	sender   Sender
}

// pendingUpdate is the key pair of an Update proposal we sent.
type pendingUpdate struct {
	pub, priv []byte
}

// pastEpoch keeps what is needed to decrypt late application messages of
// an earlier epoch: its keys and the tree that knows its members.
type pastEpoch struct {
	epoch      uint64
	senderData []byte
	keys       *secretTree
	tree       *ratchetTree
	ctxRaw     []byte // the epoch's GroupContext, which signatures cover
}

func (p *pastEpoch) wipe() {
	clear(p.senderData)
	p.keys.wipe()
}

// Member describes one leaf of the group.
type Member struct {
	Index        uint32
	Credential   Credential
	SignatureKey []byte
}

// KeyPackageOptions describe the client a KeyPackage is for.
type KeyPackageOptions struct {
	Credential Credential
	// Lifetime of the KeyPackage; default 30 days from now (minus an hour,
	// to tolerate clock skew).
	Lifetime time.Duration
	// LastResort marks the package as usable more than once (the
	// last_resort extension).
	LastResort bool
	// Capabilities are added to the defaults (this package's version, the
	// key's cipher suite, basic and X.509 credentials).
	Extensions     []ExtensionType
	Proposals      []ProposalType
	Credentials    []CredentialType
	LeafExtensions Extensions
	Now            func() time.Time
}

// KeyPackagePrivate holds the private keys of a KeyPackage. It is secret.
type KeyPackagePrivate struct {
	_              [0]func()
	KeyPackage     *KeyPackage
	initPriv       []byte
	encryptionPriv []byte
	sigKey         *SignatureKey
}

// String never reveals the keys.
func (*KeyPackagePrivate) String() string { return "mls.KeyPackagePrivate(redacted)" }

// Wipe erases the private keys once the package has been used.
func (p *KeyPackagePrivate) Wipe() {
	clear(p.initPriv)
	clear(p.encryptionPriv)
}

// defaultCapabilities are what this implementation supports.
func defaultCapabilities(cs CipherSuite, o *KeyPackageOptions) Capabilities {
	caps := Capabilities{
		Versions:     []ProtocolVersion{MLS10},
		CipherSuites: []CipherSuite{cs},
		Credentials:  []CredentialType{CredentialBasic, CredentialX509},
	}
	if o != nil {
		caps.Extensions = append(caps.Extensions, o.Extensions...)
		caps.Proposals = append(caps.Proposals, o.Proposals...)
		for _, c := range o.Credentials {
			if !contains(caps.Credentials, c) {
				caps.Credentials = append(caps.Credentials, c)
			}
		}
		if o.LastResort && !contains(caps.Extensions, ExtLastResort) {
			caps.Extensions = append(caps.Extensions, ExtLastResort)
		}
	}
	return caps
}

// addContextExtensions lists the group context's non-default extension
// types in c: every member's leaf must support them (§12.1.7, §13.4).
func (c *Capabilities) addContextExtensions(exts Extensions) {
	for _, e := range exts {
		if !e.Type.isDefault() && !contains(c.Extensions, e.Type) {
			c.Extensions = append(c.Extensions, e.Type)
		}
	}
}

// NewKeyPackage makes a KeyPackage (§10) for the client with signature key
// key, and returns it with its private keys.
func NewKeyPackage(key *SignatureKey, o KeyPackageOptions) (*KeyPackagePrivate, error) {
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	lifetime := o.Lifetime
	if lifetime <= 0 {
		lifetime = 30 * 24 * time.Hour
	}
	t := now()
	leaf := LeafNode{
		Credential:   o.Credential,
		Capabilities: defaultCapabilities(key.suite.id, &o),
		Lifetime: Lifetime{
			NotBefore: uint64(t.Add(-time.Hour).Unix()),
			NotAfter:  uint64(t.Add(lifetime).Unix()),
		},
		Extensions: o.LeafExtensions,
	}
	var exts Extensions
	if o.LastResort {
		exts = append(exts, Extension{Type: ExtLastResort})
	}
	kp, initPriv, encPriv, err := newKeyPackage(key, leaf, exts)
	if err != nil {
		return nil, err
	}
	return &KeyPackagePrivate{KeyPackage: kp, initPriv: initPriv, encryptionPriv: encPriv, sigKey: key}, nil
}

// CreateGroupOptions describe a new group.
type CreateGroupOptions struct {
	// GroupID; default 32 random bytes.
	GroupID []byte
	// Extensions of the GroupContext (e.g. required_capabilities,
	// external_senders, or an application's own).
	Extensions Extensions
	// Capabilities of the creator's leaf, beyond the defaults.
	LeafExtensions []ExtensionType
	LeafProposals  []ProposalType
	Config         Config
}

// CreateGroup starts a group with one member: the caller (§11).
func CreateGroup(key *SignatureKey, cred Credential, o CreateGroupOptions) (*Group, error) {
	s := key.suite
	groupID := o.GroupID
	if groupID == nil {
		groupID = make([]byte, 32)
		rand.Read(groupID)
	}
	encPriv, encPub, err := s.generateKeyPair()
	if err != nil {
		return nil, err
	}
	caps := defaultCapabilities(s.id, &KeyPackageOptions{Extensions: o.LeafExtensions, Proposals: o.LeafProposals})
	caps.addContextExtensions(o.Extensions)
	leaf := &LeafNode{
		EncryptionKey: encPub,
		SignatureKey:  key.Public(),
		Credential:    cred,
		Capabilities:  caps,
		Source:        SourceKeyPackage,
		Lifetime:      Lifetime{NotBefore: 0, NotAfter: ^uint64(0)},
	}
	// §7.2: a creator's leaf has source key_package; it is signed like one.
	if err := signKeyPackageLeaf(key, leaf); err != nil {
		return nil, err
	}
	tree := newRatchetTree(s, leaf)
	priv, err := newTreePrivate(tree, 0, encPriv)
	clear(encPriv)
	if err != nil {
		return nil, err
	}
	g := &Group{
		cfg:    o.Config.withDefaults(),
		suite:  s,
		tree:   tree,
		priv:   priv,
		sigKey: key,
		ctx: GroupContext{
			Version:     MLS10,
			CipherSuite: s.id,
			GroupID:     bytes.Clone(groupID),
			Epoch:       0,
			TreeHash:    tree.treeHash(),
			Extensions:  o.Extensions,
		},
		resumption: make(map[uint64][]byte),
	}
	if err := validateLeafNode(s, &g.ctx, leaf, 0, SourceKeyPackage); err != nil {
		return nil, err
	}
	// §8: epoch 0 starts from a random init secret and zero commit secret;
	// its confirmed transcript hash is empty and its interim one follows
	// from the confirmation tag.
	init := make([]byte, s.nh())
	rand.Read(init)
	g.ctxRaw = mustEncode(&g.ctx)
	secrets := newEpochSecrets(s, init, nil, nil, g.ctxRaw)
	clear(init)
	g.confirmationTag = confirmationTag(s, secrets.confirmation, g.ctx.ConfirmedTranscriptHash)
	g.interim = interimTranscriptHash(s, g.ctx.ConfirmedTranscriptHash, g.confirmationTag)
	if err := g.enterEpoch(secrets); err != nil {
		return nil, err
	}
	return g, nil
}

// enterEpoch installs the secrets of the epoch in g.ctx.
func (g *Group) enterEpoch(secrets *epochSecrets) error {
	keys, err := newSecretTree(g.suite, secrets.encryption, g.tree.numLeaves(), g.cfg.RatchetWindow)
	if err != nil {
		return err
	}
	clear(secrets.encryption) // the secret tree holds what is left of it (§9.2)
	g.secrets, g.keys = secrets, keys
	g.resumption[g.ctx.Epoch] = bytes.Clone(secrets.resumption)
	delete(g.resumption, g.ctx.Epoch-resumptionHistory)
	return nil
}

// GroupID returns the group's id.
func (g *Group) GroupID() []byte { return bytes.Clone(g.ctx.GroupID) }

// Epoch returns the current epoch.
func (g *Group) Epoch() uint64 { return g.ctx.Epoch }

// CipherSuite returns the group's cipher suite.
func (g *Group) CipherSuite() CipherSuite { return g.suite.id }

// Index returns our own leaf index.
func (g *Group) Index() uint32 { return uint32(g.priv.self) }

// Extensions returns the GroupContext extensions in force.
func (g *Group) Extensions() Extensions { return g.ctx.Extensions }

// Active reports whether the group can still be used; a group ends when a
// ReInit is committed or when we are removed.
func (g *Group) Active() bool { return g.reinit == nil && g.priv != nil }

// Members lists the group's members in leaf order.
func (g *Group) Members() []Member {
	var ms []Member
	for i := leafIndex(0); uint32(i) < g.tree.numLeaves(); i++ {
		if l := g.tree.leaf(i); l != nil {
			ms = append(ms, Member{Index: uint32(i), Credential: l.Credential, SignatureKey: bytes.Clone(l.SignatureKey)})
		}
	}
	return ms
}

// Member returns the member at leaf index i.
func (g *Group) Member(i uint32) (Member, bool) {
	if i >= g.tree.numLeaves() {
		return Member{}, false
	}
	l := g.tree.leaf(leafIndex(i))
	if l == nil {
		return Member{}, false
	}
	return Member{Index: i, Credential: l.Credential, SignatureKey: bytes.Clone(l.SignatureKey)}, true
}

// EpochAuthenticator returns the epoch authenticator (§8.7): members that
// compare it out of band confirm they share the epoch's keys.
// It is nil once we have been removed.
func (g *Group) EpochAuthenticator() []byte {
	if g.secrets == nil {
		return nil
	}
	return bytes.Clone(g.secrets.epochAuthenticator)
}

// Export is MLS-Exporter(label, context, length) (§8.5): a secret for the
// application, e.g. SFrame base keys for calls.
func (g *Group) Export(label string, context []byte, length int) ([]byte, error) {
	if g.secrets == nil {
		return nil, ErrInactive
	}
	return g.secrets.exportSecret(label, context, length)
}

// ResumptionPSK returns the resumption PSK of an epoch the group still
// remembers (§8.6).
func (g *Group) ResumptionPSK(epoch uint64) ([]byte, bool) {
	p, ok := g.resumption[epoch]
	return bytes.Clone(p), ok
}

// ErrInactive is returned when a group that was re-initialised, or that
// removed us, is asked to send.
var ErrInactive = errors.New("mls: group is no longer active")

// Encrypt protects application data as a PrivateMessage (§6.3).
func (g *Group) Encrypt(data, authenticatedData []byte) (*MLSMessage, error) {
	if !g.Active() {
		return nil, ErrInactive
	}
	if g.pending != nil {
		// §12.4: no application data between sending a commit and its
		// confirmation; it would be encrypted in the epoch about to end.
		return nil, errorf("cannot send application data while a commit is pending")
	}
	content := FramedContent{
		GroupID:           g.ctx.GroupID,
		Epoch:             g.ctx.Epoch,
		Sender:            MemberSender(uint32(g.priv.self)),
		AuthenticatedData: authenticatedData,
		ContentType:       ContentApplication,
		ApplicationData:   data,
	}
	return g.protect(&content)
}

// protect signs content and frames it: as a PrivateMessage for
// application data or when handshake encryption is on, otherwise as a
// PublicMessage with a membership tag.
func (g *Group) protect(content *FramedContent) (*MLSMessage, error) {
	ac, err := g.sign(content)
	if err != nil {
		return nil, err
	}
	return g.frame(ac)
}

func (g *Group) wireFormat(ct ContentType) WireFormat {
	if ct == ContentApplication || g.cfg.EncryptHandshake {
		return WireFormatPrivateMessage
	}
	return WireFormatPublicMessage
}

func (g *Group) sign(content *FramedContent) (*AuthenticatedContent, error) {
	return signFramedContent(g.sigKey, g.wireFormat(content.ContentType), content, g.ctxRaw)
}

func (g *Group) frame(ac *AuthenticatedContent) (*MLSMessage, error) {
	if ac.WireFormat == WireFormatPrivateMessage {
		pm, err := protectPrivate(g.suite, g.keys, g.secrets.senderData, ac, g.cfg.PaddingBlock)
		if err != nil {
			return nil, err
		}
		return &MLSMessage{WireFormat: WireFormatPrivateMessage, PrivateMessage: pm}, nil
	}
	pm, err := protectPublic(g.suite, ac, g.secrets.membership, g.ctxRaw)
	if err != nil {
		return nil, err
	}
	return &MLSMessage{WireFormat: WireFormatPublicMessage, PublicMessage: pm}, nil
}

// Event is what processing a message yields: *ApplicationMessage,
// *ProposalEvent or *StagedCommit.
type Event interface{ event() }

// ApplicationMessage is decrypted application data.
type ApplicationMessage struct {
	Sender            uint32 // leaf index
	Epoch             uint64
	Data              []byte
	AuthenticatedData []byte
}

// ProposalEvent is a proposal received and cached for the next commit.
type ProposalEvent struct {
	Ref      ProposalRef
	Proposal *Proposal
	Sender   Sender
}

func (*ApplicationMessage) event() {}
func (*ProposalEvent) event()      {}
func (*StagedCommit) event()       {}

// Process verifies and decrypts an incoming PublicMessage or
// PrivateMessage. Application data and proposals take effect at once; a
// commit is returned staged, to be applied with [Group.Merge]. On any
// error the group is unchanged.
func (g *Group) Process(m *MLSMessage) (Event, error) {
	if g.priv == nil && m.WireFormat != WireFormatPrivateMessage {
		return nil, ErrInactive
	}
	ac, err := g.unprotect(m)
	if err != nil {
		return nil, err
	}
	switch ac.Content.ContentType {
	case ContentApplication:
		return &ApplicationMessage{
			Sender:            ac.Content.Sender.Index,
			Epoch:             ac.Content.Epoch,
			Data:              ac.Content.ApplicationData,
			AuthenticatedData: ac.Content.AuthenticatedData,
		}, nil
	case ContentProposal:
		return g.receiveProposal(ac)
	case ContentCommit:
		return g.stageReceivedCommit(ac)
	}
	return nil, errorf("unknown content type %d", ac.Content.ContentType)
}

// unprotect removes the framing of m and checks everything that does not
// depend on the content: group, epoch, sender, signature, membership tag.
func (g *Group) unprotect(m *MLSMessage) (*AuthenticatedContent, error) {
	switch m.WireFormat {
	case WireFormatPrivateMessage:
		if m.PrivateMessage == nil {
			return nil, errorf("missing PrivateMessage")
		}
		return g.unprotectPrivate(m.PrivateMessage)
	case WireFormatPublicMessage:
		if m.PublicMessage == nil {
			return nil, errorf("missing PublicMessage")
		}
		return g.unprotectPublic(m.PublicMessage)
	}
	return nil, errorf("wire format %d is not a group message", m.WireFormat)
}

func (g *Group) unprotectPrivate(pm *PrivateMessage) (*AuthenticatedContent, error) {
	if !bytes.Equal(pm.GroupID, g.ctx.GroupID) {
		return nil, errorf("message for another group")
	}
	var keys *secretTree
	var senderData, ctxRaw []byte
	tree := g.tree
	if g.secrets != nil {
		keys, senderData, ctxRaw = g.keys, g.secrets.senderData, g.ctxRaw
	}
	if pm.Epoch != g.ctx.Epoch || g.secrets == nil {
		// Only application data may come from a retained past epoch.
		p := g.pastEpoch(pm.Epoch)
		if p == nil || pm.ContentType != ContentApplication {
			return nil, fmt.Errorf("%w: message of epoch %d, group is at %d", ErrWrongEpoch, pm.Epoch, g.ctx.Epoch)
		}
		keys, senderData, tree, ctxRaw = p.keys, p.senderData, p.tree, p.ctxRaw
	}
	ac, err := unprotectPrivate(g.suite, keys, senderData, pm)
	if err != nil {
		return nil, err
	}
	sender := ac.Content.Sender
	if sender.Type != SenderMember || sender.Index >= tree.numLeaves() || tree.leaf(leafIndex(sender.Index)) == nil {
		return nil, errorf("message from a non-member")
	}
	if !ac.verifySignature(g.suite, tree.leaf(leafIndex(sender.Index)).SignatureKey, ctxRaw) {
		return nil, errorf("invalid signature")
	}
	return ac, nil
}

func (g *Group) unprotectPublic(pm *PublicMessage) (*AuthenticatedContent, error) {
	c := &pm.Content
	if !bytes.Equal(c.GroupID, g.ctx.GroupID) {
		return nil, errorf("message for another group")
	}
	if c.Epoch != g.ctx.Epoch {
		return nil, fmt.Errorf("%w: message of epoch %d, group is at %d", ErrWrongEpoch, c.Epoch, g.ctx.Epoch)
	}
	ac, err := unprotectPublic(g.suite, pm, g.secrets.membership, g.ctxRaw)
	if err != nil {
		return nil, err
	}
	var pub []byte
	switch c.Sender.Type {
	case SenderMember:
		leaf := g.tree.leaf(leafIndex(c.Sender.Index))
		if c.Sender.Index >= g.tree.numLeaves() || leaf == nil {
			return nil, errorf("message from a non-member")
		}
		pub = leaf.SignatureKey
	case SenderExternal:
		senders, err := g.externalSenders()
		if err != nil {
			return nil, err
		}
		if int(c.Sender.Index) >= len(senders) {
			return nil, errorf("unknown external sender %d", c.Sender.Index)
		}
		pub = senders[c.Sender.Index].SignatureKey
	case SenderNewMemberProposal:
		if c.ContentType != ContentProposal || c.Proposal == nil || c.Proposal.Type != ProposalAdd {
			return nil, errorf("new member may only propose to add itself")
		}
		pub = c.Proposal.Add.KeyPackage.LeafNode.SignatureKey
	case SenderNewMemberCommit:
		if c.ContentType != ContentCommit || c.Commit == nil || c.Commit.Path == nil {
			return nil, errorf("external commit without a path")
		}
		pub = c.Commit.Path.LeafNode.SignatureKey
	default:
		return nil, errorf("unknown sender type %d", c.Sender.Type)
	}
	if !ac.verifySignature(g.suite, pub, g.ctxRaw) {
		return nil, errorf("invalid signature")
	}
	return ac, nil
}

func (g *Group) externalSenders() (externalSenders, error) {
	var es externalSenders
	data, ok := g.ctx.Extensions.Find(ExtExternalSenders)
	if !ok {
		return nil, nil
	}
	if err := decode(data, &es, "external_senders"); err != nil {
		return nil, err
	}
	return es, nil
}

func (g *Group) pastEpoch(epoch uint64) *pastEpoch {
	for _, p := range g.past {
		if p.epoch == epoch {
			return p
		}
	}
	return nil
}

// receiveProposal validates a proposal on its own and caches it.
func (g *Group) receiveProposal(ac *AuthenticatedContent) (*ProposalEvent, error) {
	p := ac.Content.Proposal
	if p == nil {
		return nil, errorf("proposal message without a proposal")
	}
	if err := g.checkStandaloneProposal(p, ac.Content.Sender); err != nil {
		return nil, err
	}
	ref, err := makeProposalRef(g.suite, ac)
	if err != nil {
		return nil, err
	}
	for _, c := range g.proposals {
		if bytes.Equal(c.ref, ref) {
			return nil, fmt.Errorf("%w: proposal already received", ErrReplay)
		}
	}
	g.proposals = append(g.proposals, cachedProposal{ref: ref, proposal: p, sender: ac.Content.Sender})
	return &ProposalEvent{Ref: ref, Proposal: p, Sender: ac.Content.Sender}, nil
}

// checkStandaloneProposal applies the rules a proposal must meet when it
// arrives on its own (§12.1, §12.1.8): who may send which type.
func (g *Group) checkStandaloneProposal(p *Proposal, sender Sender) error {
	switch p.Type {
	case ProposalExternalInit:
		return errorf("ExternalInit may only be sent inside an external commit")
	case ProposalUpdate:
		if sender.Type != SenderMember {
			return errorf("only members may propose an update")
		}
	}
	return nil
}
