package mls

import (
	"bytes"
	"errors"
	"testing"
)

type messageProtectionVector struct {
	CipherSuite             uint16   `json:"cipher_suite"`
	GroupID                 hexBytes `json:"group_id"`
	Epoch                   uint64   `json:"epoch"`
	TreeHash                hexBytes `json:"tree_hash"`
	ConfirmedTranscriptHash hexBytes `json:"confirmed_transcript_hash"`
	SignaturePriv           hexBytes `json:"signature_priv"`
	SignaturePub            hexBytes `json:"signature_pub"`
	EncryptionSecret        hexBytes `json:"encryption_secret"`
	SenderDataSecret        hexBytes `json:"sender_data_secret"`
	MembershipKey           hexBytes `json:"membership_key"`

	Proposal     hexBytes `json:"proposal"`
	ProposalPub  hexBytes `json:"proposal_pub"`
	ProposalPriv hexBytes `json:"proposal_priv"`

	Commit     hexBytes `json:"commit"`
	CommitPub  hexBytes `json:"commit_pub"`
	CommitPriv hexBytes `json:"commit_priv"`

	Application     hexBytes `json:"application"`
	ApplicationPriv hexBytes `json:"application_priv"`
}

// protectionEnv is the fixed state of one message-protection case.
type protectionEnv struct {
	s                *suite
	v                *messageProtectionVector
	key              *SignatureKey
	groupContext     []byte
	encryptionSecret []byte
}

// sender is the leaf index every message of the vectors comes from.
const protectionSender = 1

func newProtectionEnv(t *testing.T, s *suite, v *messageProtectionVector) *protectionEnv {
	t.Helper()
	key := vectorSignatureKey(t, s, v.SignaturePriv, v.SignaturePub)
	gc := GroupContext{
		Version:                 MLS10,
		CipherSuite:             s.id,
		GroupID:                 v.GroupID,
		Epoch:                   v.Epoch,
		TreeHash:                v.TreeHash,
		ConfirmedTranscriptHash: v.ConfirmedTranscriptHash,
	}
	return &protectionEnv{s: s, v: v, key: key, groupContext: mustEncode(&gc), encryptionSecret: v.EncryptionSecret}
}

// secretTree returns a fresh secret tree of 2 leaves for the epoch.
func (e *protectionEnv) secretTree(t *testing.T) *secretTree {
	t.Helper()
	st, err := newSecretTree(e.s, e.encryptionSecret, 2, DefaultRatchetWindow)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// vectorSignatureKey parses a vector's signature private key and checks it
// against pub. The vectors write ECDSA scalars minimally, so a P-521 key
// may lack its leading zero byte; it is widened to the curve's size first.
func vectorSignatureKey(t *testing.T, s *suite, priv, pub []byte) *SignatureKey {
	t.Helper()
	if sg, ok := s.sig.(ecdsaSigner); ok {
		if size := (sg.curve.Params().BitSize + 7) / 8; len(priv) < size {
			priv = append(make([]byte, size-len(priv)), priv...)
		}
	}
	key, err := ParseSignatureKey(s.id, priv)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(key.Public(), pub) {
		t.Fatal("signature private key does not match the public key")
	}
	return key
}

// content returns the FramedContent that carries raw, of type ct.
func (e *protectionEnv) content(t *testing.T, ct ContentType, raw []byte) *FramedContent {
	t.Helper()
	c := &FramedContent{
		GroupID:     e.v.GroupID,
		Epoch:       e.v.Epoch,
		Sender:      MemberSender(protectionSender),
		ContentType: ct,
	}
	switch ct {
	case ContentApplication:
		c.ApplicationData = raw
	case ContentProposal:
		c.Proposal = new(Proposal)
		if err := decode(raw, c.Proposal, "Proposal"); err != nil {
			t.Fatal(err)
		}
	case ContentCommit:
		c.Commit = new(Commit)
		if err := decode(raw, c.Commit, "Commit"); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// checkContent checks that ac is from the vectors' sender, carries raw and
// has a signature that verifies.
func (e *protectionEnv) checkContent(t *testing.T, what string, ac *AuthenticatedContent, raw []byte) {
	t.Helper()
	if ac.Content.Sender != MemberSender(protectionSender) {
		t.Errorf("%s: sender %+v, want member %d", what, ac.Content.Sender, protectionSender)
	}
	if !bytes.Equal(ac.Content.GroupID, e.v.GroupID) || ac.Content.Epoch != e.v.Epoch {
		t.Errorf("%s: wrong group or epoch", what)
	}
	var got []byte
	switch ac.Content.ContentType {
	case ContentApplication:
		got = ac.Content.ApplicationData
	case ContentProposal:
		got = mustEncode(ac.Content.Proposal)
	case ContentCommit:
		got = mustEncode(ac.Content.Commit)
	}
	if !bytes.Equal(got, raw) {
		t.Errorf("%s: content %x, want %x", what, got, raw)
	}
	if !ac.verifySignature(e.s, e.v.SignaturePub, e.groupContext) {
		t.Errorf("%s: signature does not verify", what)
	}
}

// checkPublic verifies an encoded MLSMessage(PublicMessage) with the
// membership key and signature key, and checks that it carries raw.
func (e *protectionEnv) checkPublic(t *testing.T, what string, data, raw []byte) *AuthenticatedContent {
	t.Helper()
	m, err := UnmarshalMLSMessage(data)
	if err != nil || m.WireFormat != WireFormatPublicMessage {
		t.Fatalf("%s: not a PublicMessage: %v", what, err)
	}
	ac, err := unprotectPublic(e.s, m.PublicMessage, e.v.MembershipKey, e.groupContext)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	e.checkContent(t, what, ac, raw)
	return ac
}

// checkPrivate decrypts an encoded MLSMessage(PrivateMessage) with a fresh
// secret tree and checks that it carries raw.
func (e *protectionEnv) checkPrivate(t *testing.T, what string, data []byte, ct ContentType, raw []byte) {
	t.Helper()
	m, err := UnmarshalMLSMessage(data)
	if err != nil || m.WireFormat != WireFormatPrivateMessage {
		t.Fatalf("%s: not a PrivateMessage: %v", what, err)
	}
	if m.PrivateMessage.ContentType != ct {
		t.Fatalf("%s: content type %d, want %d", what, m.PrivateMessage.ContentType, ct)
	}
	ac, err := unprotectPrivate(e.s, e.secretTree(t), e.v.SenderDataSecret, m.PrivateMessage)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	e.checkContent(t, what, ac, raw)
}

// protectPublic signs raw as a PublicMessage and checks that the result
// verifies. confirmationTag is set for a Commit.
func (e *protectionEnv) protectPublic(t *testing.T, ct ContentType, raw, confirmationTag []byte) {
	t.Helper()
	ac, err := signFramedContent(e.key, WireFormatPublicMessage, e.content(t, ct, raw), e.groupContext)
	if err != nil {
		t.Fatal(err)
	}
	ac.Auth.ConfirmationTag = confirmationTag
	pm, err := protectPublic(e.s, ac, e.v.MembershipKey, e.groupContext)
	if err != nil {
		t.Fatal(err)
	}
	data, err := (&MLSMessage{WireFormat: WireFormatPublicMessage, PublicMessage: pm}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	e.checkPublic(t, "protected public", data, raw)
}

// protectPrivate encrypts raw with one secret tree and decrypts it with
// another, as sender and receiver would.
func (e *protectionEnv) protectPrivate(t *testing.T, ct ContentType, raw, confirmationTag []byte) {
	t.Helper()
	ac, err := signFramedContent(e.key, WireFormatPrivateMessage, e.content(t, ct, raw), e.groupContext)
	if err != nil {
		t.Fatal(err)
	}
	ac.Auth.ConfirmationTag = confirmationTag
	pm, err := protectPrivate(e.s, e.secretTree(t), e.v.SenderDataSecret, ac, 32)
	if err != nil {
		t.Fatal(err)
	}
	data, err := (&MLSMessage{WireFormat: WireFormatPrivateMessage, PrivateMessage: pm}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	e.checkPrivate(t, "protected private", data, ct, raw)
}

func TestMessageProtectionVectors(t *testing.T) {
	var vs []messageProtectionVector
	loadVectors(t, "message-protection.json", &vs)
	tally := newTally(t, "message-protection")
	for _, v := range vs {
		t.Run(CipherSuite(v.CipherSuite).String(), func(t *testing.T) {
			defer tally.record(t)
			e := newProtectionEnv(t, suiteOrSkip(t, v.CipherSuite), &v)

			e.checkPublic(t, "proposal_pub", v.ProposalPub, v.Proposal)
			e.protectPublic(t, ContentProposal, v.Proposal, nil)
			e.checkPrivate(t, "proposal_priv", v.ProposalPriv, ContentProposal, v.Proposal)
			e.protectPrivate(t, ContentProposal, v.Proposal, nil)

			commit := e.checkPublic(t, "commit_pub", v.CommitPub, v.Commit)
			tag := commit.Auth.ConfirmationTag
			e.protectPublic(t, ContentCommit, v.Commit, tag)
			e.checkPrivate(t, "commit_priv", v.CommitPriv, ContentCommit, v.Commit)
			e.protectPrivate(t, ContentCommit, v.Commit, tag)

			if _, err := signFramedContent(e.key, WireFormatPublicMessage, e.content(t, ContentApplication, v.Application), e.groupContext); err == nil {
				t.Error("application data signed as a PublicMessage")
			}
			e.checkPrivate(t, "application_priv", v.ApplicationPriv, ContentApplication, v.Application)
			e.protectPrivate(t, ContentApplication, v.Application, nil)
		})
	}
}

// framingFixture is a member's signed application message and proposal in
// a small synthetic epoch, for the negative tests.
type framingFixture struct {
	s                         *suite
	key                       *SignatureKey
	groupContext              []byte
	membershipKey, senderData []byte
	encryptionSecret          []byte
	proposal                  *FramedContent
	application               *FramedContent
	sender, receiver          *secretTree
}

func newFramingFixture(t *testing.T) *framingFixture {
	t.Helper()
	s, err := lookupSuite(X25519_AES128GCM_SHA256_Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	key, err := GenerateSignatureKey(s.id)
	if err != nil {
		t.Fatal(err)
	}
	f := &framingFixture{
		s:                s,
		key:              key,
		membershipKey:    bytes.Repeat([]byte{1}, s.nh()),
		senderData:       bytes.Repeat([]byte{2}, s.nh()),
		encryptionSecret: bytes.Repeat([]byte{3}, s.nh()),
	}
	gc := GroupContext{Version: MLS10, CipherSuite: s.id, GroupID: []byte("group"), Epoch: 7}
	f.groupContext = mustEncode(&gc)
	base := FramedContent{GroupID: gc.GroupID, Epoch: gc.Epoch, Sender: MemberSender(1), AuthenticatedData: []byte("ad")}
	f.proposal, f.application = &base, new(FramedContent)
	*f.application = base
	f.proposal.ContentType = ContentProposal
	f.proposal.Proposal = &Proposal{Type: ProposalRemove, Remove: &RemoveProposal{Removed: 0}}
	f.application.ContentType = ContentApplication
	f.application.ApplicationData = []byte("hello")
	if f.sender, err = newSecretTree(s, f.encryptionSecret, 2, DefaultRatchetWindow); err != nil {
		t.Fatal(err)
	}
	if f.receiver, err = newSecretTree(s, f.encryptionSecret, 2, DefaultRatchetWindow); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *framingFixture) private(t *testing.T, c *FramedContent, padBlock int) *PrivateMessage {
	t.Helper()
	ac, err := signFramedContent(f.key, WireFormatPrivateMessage, c, f.groupContext)
	if err != nil {
		t.Fatal(err)
	}
	pm, err := protectPrivate(f.s, f.sender, f.senderData, ac, padBlock)
	if err != nil {
		t.Fatal(err)
	}
	return pm
}

func TestPublicMessageRejectsTampering(t *testing.T) {
	f := newFramingFixture(t)
	ac, err := signFramedContent(f.key, WireFormatPublicMessage, f.proposal, f.groupContext)
	if err != nil {
		t.Fatal(err)
	}
	pm, err := protectPublic(f.s, ac, f.membershipKey, f.groupContext)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := unprotectPublic(f.s, pm, f.membershipKey, f.groupContext); err != nil {
		t.Fatalf("genuine message: %v", err)
	}
	wrongKey := bytes.Repeat([]byte{9}, f.s.nh())
	if _, err := unprotectPublic(f.s, pm, wrongKey, f.groupContext); !errors.Is(err, ErrInvalid) {
		t.Errorf("wrong membership key: err = %v", err)
	}
	otherContext := append([]byte(nil), f.groupContext...)
	otherContext[len(otherContext)-1] ^= 1
	if _, err := unprotectPublic(f.s, pm, f.membershipKey, otherContext); err == nil {
		t.Error("membership tag verifies under another group context")
	}
	got, _ := unprotectPublic(f.s, pm, f.membershipKey, f.groupContext)
	if got.verifySignature(f.s, f.key.Public(), otherContext) {
		t.Error("signature verifies under another group context")
	}
	changed := &AuthenticatedContent{WireFormat: got.WireFormat, Content: got.Content, Auth: got.Auth}
	changed.Content.AuthenticatedData = []byte("changed")
	if changed.verifySignature(f.s, f.key.Public(), f.groupContext) {
		t.Error("signature verifies over changed content")
	}
	// A member's application data never travels as a PublicMessage, even
	// when someone frames it so by hand.
	forged := &PublicMessage{Content: *f.application, Auth: ac.Auth}
	if _, err := unprotectPublic(f.s, forged, f.membershipKey, f.groupContext); err == nil {
		t.Error("application PublicMessage accepted")
	}
	if _, err := protectPublic(f.s, &AuthenticatedContent{WireFormat: WireFormatPublicMessage, Content: *f.application}, f.membershipKey, f.groupContext); err == nil {
		t.Error("application data protected as a PublicMessage")
	}
}

func TestSenderRules(t *testing.T) {
	f := newFramingFixture(t)
	for _, tc := range []struct {
		name   string
		wf     WireFormat
		sender Sender
		c      *FramedContent
		ok     bool
	}{
		{"external proposal", WireFormatPublicMessage, Sender{Type: SenderExternal, Index: 0}, f.proposal, true},
		{"external application", WireFormatPrivateMessage, Sender{Type: SenderExternal}, f.application, false},
		{"new member remove", WireFormatPublicMessage, Sender{Type: SenderNewMemberProposal}, f.proposal, false},
		{"new member commit of a proposal", WireFormatPublicMessage, Sender{Type: SenderNewMemberCommit}, f.proposal, false},
		{"private from external", WireFormatPrivateMessage, Sender{Type: SenderExternal}, f.proposal, false},
		{"welcome wire format", WireFormatWelcome, MemberSender(0), f.proposal, false},
	} {
		c := *tc.c
		c.Sender = tc.sender
		_, err := signFramedContent(f.key, tc.wf, &c, f.groupContext)
		if (err == nil) != tc.ok {
			t.Errorf("%s: err = %v, want ok = %v", tc.name, err, tc.ok)
		}
	}
}

func TestPrivateMessageRoundTripAndReplay(t *testing.T) {
	f := newFramingFixture(t)
	for _, block := range []int{0, 1, 16, 100} {
		pm := f.private(t, f.application, block)
		ac, err := unprotectPrivate(f.s, f.receiver, f.senderData, pm)
		if err != nil {
			t.Fatalf("pad block %d: %v", block, err)
		}
		if !bytes.Equal(ac.Content.ApplicationData, []byte("hello")) || !bytes.Equal(ac.Content.AuthenticatedData, []byte("ad")) {
			t.Errorf("pad block %d: wrong content", block)
		}
		if !ac.verifySignature(f.s, f.key.Public(), f.groupContext) {
			t.Errorf("pad block %d: signature does not verify", block)
		}
		if _, err := unprotectPrivate(f.s, f.receiver, f.senderData, pm); !errors.Is(err, ErrReplay) {
			t.Errorf("pad block %d: replay gives %v, want ErrReplay", block, err)
		}
	}
}

func TestPrivateMessagePadding(t *testing.T) {
	f := newFramingFixture(t)
	const block = 64
	pm := f.private(t, f.application, block)
	// The ciphertext is the padded plaintext plus the AEAD tag (16 bytes for
	// AES-GCM).
	if got := len(pm.Ciphertext) - 16; got%block != 0 {
		t.Errorf("plaintext of %d bytes, not a multiple of %d", got, block)
	}
}

func TestPrivateMessageRejectsTampering(t *testing.T) {
	f := newFramingFixture(t)
	for _, tc := range []struct {
		name   string
		tamper func(pm *PrivateMessage)
	}{
		{"authenticated data", func(pm *PrivateMessage) { pm.AuthenticatedData = []byte("other") }},
		{"epoch", func(pm *PrivateMessage) { pm.Epoch++ }},
		{"content type", func(pm *PrivateMessage) { pm.ContentType = ContentProposal }},
		{"ciphertext", func(pm *PrivateMessage) { pm.Ciphertext[len(pm.Ciphertext)-1] ^= 1 }},
		{"sender data", func(pm *PrivateMessage) { pm.EncryptedSenderData[0] ^= 1 }},
	} {
		pm := f.private(t, f.application, 0)
		tc.tamper(pm)
		if _, err := unprotectPrivate(f.s, f.receiver, f.senderData, pm); err == nil {
			t.Errorf("%s: tampered message accepted", tc.name)
		}
	}
	// The key of a message whose forgery was rejected stays usable.
	pm := f.private(t, f.application, 0)
	forged := *pm
	forged.Ciphertext = append([]byte(nil), pm.Ciphertext...)
	forged.Ciphertext[0] ^= 1
	if _, err := unprotectPrivate(f.s, f.receiver, f.senderData, &forged); err == nil {
		t.Fatal("forged ciphertext accepted")
	}
	if _, err := unprotectPrivate(f.s, f.receiver, f.senderData, pm); err != nil {
		t.Errorf("genuine message after a forgery: %v", err)
	}
}

func TestPrivateMessageContentPaddingMustBeZero(t *testing.T) {
	f := newFramingFixture(t)
	pmc := privateMessageContent{content: *f.application, auth: FramedContentAuthData{Signature: []byte("sig")}, padding: 8}
	data := mustEncode(&pmc)
	var got privateMessageContent
	got.content.ContentType = ContentApplication
	if err := decode(data, &got, "PrivateMessageContent"); err != nil || got.padding != 8 {
		t.Fatalf("zero padding: err = %v, padding = %d", err, got.padding)
	}
	data[len(data)-3] = 1
	got = privateMessageContent{}
	got.content.ContentType = ContentApplication
	if err := decode(data, &got, "PrivateMessageContent"); err == nil {
		t.Error("non-zero padding accepted")
	}
}

func TestDecodersRejectBadEnvelopes(t *testing.T) {
	f := newFramingFixture(t)
	ac, err := signFramedContent(f.key, WireFormatPublicMessage, f.proposal, f.groupContext)
	if err != nil {
		t.Fatal(err)
	}
	pm, err := protectPublic(f.s, ac, f.membershipKey, f.groupContext)
	if err != nil {
		t.Fatal(err)
	}
	good, err := (&MLSMessage{WireFormat: WireFormatPublicMessage, PublicMessage: pm}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := UnmarshalMLSMessage(good); err != nil {
		t.Fatalf("genuine message: %v", err)
	}
	for _, tc := range []struct {
		name   string
		mutate func(b []byte) []byte
	}{
		{"version 2", func(b []byte) []byte { b[1] = 2; return b }},
		{"wire format 0", func(b []byte) []byte { b[3] = 0; return b }},
		{"wire format 6", func(b []byte) []byte { b[3] = 6; return b }},
		{"trailing byte", func(b []byte) []byte { return append(b, 0) }},
		{"truncated", func(b []byte) []byte { return b[:len(b)-1] }},
		// group_id<V> is 1+5 bytes, epoch 8: the sender type follows.
		{"sender type 5", func(b []byte) []byte { b[4+6+8] = 5; return b }},
		{"sender type 0", func(b []byte) []byte { b[4+6+8] = 0; return b }},
		// sender 1+4 bytes, authenticated_data<V> 1+2 bytes: the content type.
		{"content type 4", func(b []byte) []byte { b[4+6+8+5+3] = 4; return b }},
		// then the proposal type (uint16).
		{"proposal type 8", func(b []byte) []byte { b[4+6+8+5+3+2] = 8; return b }},
	} {
		if _, err := UnmarshalMLSMessage(tc.mutate(bytes.Clone(good))); !errors.Is(err, ErrDecode) {
			t.Errorf("%s: err = %v, want ErrDecode", tc.name, err)
		}
	}
}

func TestProposalRef(t *testing.T) {
	f := newFramingFixture(t)
	ac, err := signFramedContent(f.key, WireFormatPublicMessage, f.proposal, f.groupContext)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := makeProposalRef(f.s, ac)
	if err != nil {
		t.Fatal(err)
	}
	if want := f.s.refHash("MLS 1.0 Proposal Reference", mustEncode(ac)); !bytes.Equal(ref, want) || len(ref) != f.s.nh() {
		t.Errorf("proposal ref %x, want %x", ref, want)
	}
	commit := *ac
	commit.Content.ContentType = ContentCommit
	if _, err := makeProposalRef(f.s, &commit); err == nil {
		t.Error("reference of a commit")
	}
}

func TestCommitNeedsConfirmationTag(t *testing.T) {
	f := newFramingFixture(t)
	c := *f.proposal
	c.ContentType, c.Proposal, c.Commit = ContentCommit, nil, &Commit{}
	protect := map[WireFormat]func(ac *AuthenticatedContent) error{
		WireFormatPublicMessage: func(ac *AuthenticatedContent) error {
			_, err := protectPublic(f.s, ac, f.membershipKey, f.groupContext)
			return err
		},
		WireFormatPrivateMessage: func(ac *AuthenticatedContent) error {
			_, err := protectPrivate(f.s, f.sender, f.senderData, ac, 0)
			return err
		},
	}
	for wf, protect := range protect {
		ac, err := signFramedContent(f.key, wf, &c, f.groupContext)
		if err != nil {
			t.Fatal(err)
		}
		if err := protect(ac); err == nil {
			t.Errorf("wire format %d: commit without confirmation tag protected", wf)
		}
		ac.Auth.ConfirmationTag = []byte("tag")
		if err := protect(ac); err != nil {
			t.Errorf("wire format %d: commit with confirmation tag: %v", wf, err)
		}
	}
}

// TestSignedContentIsSignContent checks that the SignContent that
// signedContent builds in one buffer is exactly SignContent of §5.1.2 over
// the pieces of FramedContentTBS, for contents whose length takes a 1-, 2-
// and 4-byte varint, for senders with and without the GroupContext, and
// whether or not the content was encoded before.
func TestSignedContentIsSignContent(t *testing.T) {
	groupContext := bytes.Repeat([]byte{0xc7}, 90)
	senders := []Sender{MemberSender(3), {Type: SenderExternal, Index: 1}, {Type: SenderNewMemberCommit}}
	for _, size := range []int{0, 10, 40, 200, 20000, 70000} {
		for _, sender := range senders {
			for _, fixed := range []bool{false, true} {
				ac := &AuthenticatedContent{
					WireFormat: WireFormatPublicMessage,
					Content: FramedContent{
						GroupID: []byte("group"), Epoch: 7, Sender: sender,
						AuthenticatedData: []byte("ad"),
						ContentType:       ContentApplication,
						ApplicationData:   bytes.Repeat([]byte{0x5a}, size),
					},
				}
				if fixed {
					if err := ac.fix(); err != nil {
						t.Fatal(err)
					}
				}
				got, err := ac.signedContent(groupContext)
				if err != nil {
					t.Fatal(err)
				}
				content := mustEncode(&ac.Content)
				if !bytes.Equal(ac.content, content) {
					t.Fatalf("size %d, sender %v, fixed %v: content kept is not the encoding", size, sender.Type, fixed)
				}
				tbs, err := ac.tbs(groupContext)
				if err != nil {
					t.Fatal(err)
				}
				if want := signContent("FramedContentTBS", tbs...); !bytes.Equal(got, want) {
					t.Fatalf("size %d, sender %v, fixed %v: SignContent differs", size, sender.Type, fixed)
				}
			}
		}
	}
}
