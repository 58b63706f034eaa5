package mls

import (
	"crypto/hmac"
	"crypto/rand"
	"encoding/binary"

	"golang.org/x/crypto/cryptobyte"
)

// Message framing (RFC 9420 §6): the content of a handshake or application
// message, its authentication (signature, confirmation tag, membership
// tag), and the two ways it travels — signed in the clear as a
// PublicMessage, or encrypted as a PrivateMessage.

// FramedContent is the content of a message and its context (§6). Exactly
// the body named by ContentType is set: ApplicationData, Proposal or Commit.
type FramedContent struct {
	GroupID           []byte
	Epoch             uint64
	Sender            Sender
	AuthenticatedData []byte
	ContentType       ContentType
	ApplicationData   []byte
	Proposal          *Proposal
	Commit            *Commit
}

// marshalBody writes the body selected by ContentType, without the type.
func (c *FramedContent) marshalBody(b *cryptobyte.Builder) {
	switch c.ContentType {
	case ContentApplication:
		addOpaque(b, c.ApplicationData)
	case ContentProposal:
		if c.Proposal == nil {
			b.SetError(errorf("proposal content without a proposal"))
			return
		}
		c.Proposal.marshal(b)
	case ContentCommit:
		if c.Commit == nil {
			b.SetError(errorf("commit content without a commit"))
			return
		}
		c.Commit.marshal(b)
	default:
		b.SetError(errorf("unknown content type %d", c.ContentType))
	}
}

// unmarshalBody reads the body of c.ContentType, which must be set.
func (c *FramedContent) unmarshalBody(s *cryptobyte.String) bool {
	c.ApplicationData, c.Proposal, c.Commit = nil, nil, nil
	switch c.ContentType {
	case ContentApplication:
		return readOpaque(s, &c.ApplicationData)
	case ContentProposal:
		c.Proposal = new(Proposal)
		return c.Proposal.unmarshal(s)
	case ContentCommit:
		c.Commit = new(Commit)
		return c.Commit.unmarshal(s)
	}
	return false
}

func (c *FramedContent) marshal(b *cryptobyte.Builder) {
	addOpaque(b, c.GroupID)
	b.AddUint64(c.Epoch)
	c.Sender.marshal(b)
	addOpaque(b, c.AuthenticatedData)
	b.AddUint8(uint8(c.ContentType))
	c.marshalBody(b)
}

func (c *FramedContent) unmarshal(s *cryptobyte.String) bool {
	return readOpaque(s, &c.GroupID) && s.ReadUint64(&c.Epoch) && c.Sender.unmarshal(s) &&
		readOpaque(s, &c.AuthenticatedData) && readContentType(s, &c.ContentType) &&
		c.unmarshalBody(s)
}

// FramedContentAuthData authenticates a FramedContent (§6.1): the sender's
// signature over FramedContentTBS and, for a Commit only, the confirmation
// tag MAC(confirmation_key, confirmed_transcript_hash) of the new epoch.
type FramedContentAuthData struct {
	Signature       []byte
	ConfirmationTag []byte
}

func (a *FramedContentAuthData) marshalFor(b *cryptobyte.Builder, ct ContentType) {
	addOpaque(b, a.Signature)
	if ct == ContentCommit {
		addOpaque(b, a.ConfirmationTag)
	} else if a.ConfirmationTag != nil {
		b.SetError(errorf("confirmation tag on content of type %d", ct))
	}
}

func (a *FramedContentAuthData) unmarshalFor(s *cryptobyte.String, ct ContentType) bool {
	a.ConfirmationTag = nil
	if !readOpaque(s, &a.Signature) {
		return false
	}
	if ct != ContentCommit {
		return true
	}
	if !readOpaque(s, &a.ConfirmationTag) {
		return false
	}
	if a.ConfirmationTag == nil {
		a.ConfirmationTag = []byte{} // present though empty: keep it so
	}
	return true
}

// AuthenticatedContent is a FramedContent with its authentication and the
// wire format it travels in (§6.1), the form in which every message is
// processed once its PublicMessage or PrivateMessage framing is removed.
type AuthenticatedContent struct {
	WireFormat WireFormat
	Content    FramedContent
	Auth       FramedContentAuthData

	// content is Content encoded, once fix has been called.
	content []byte
}

// fix encodes ac.Content once and keeps the bytes, which the signature,
// the membership tag, the confirmed transcript hash and a staged commit
// then share (§6.1, §6.2, §8.2) instead of each encoding a commit of up
// to O(n) ciphertexts anew. ac.Content must not change afterwards.
func (ac *AuthenticatedContent) fix() error {
	content, err := encode(&ac.Content)
	ac.content = content
	return err
}

// encodedContent returns the encoding of ac.Content: the one fix kept, or
// a fresh one.
func (ac *AuthenticatedContent) encodedContent() ([]byte, error) {
	if ac.content != nil {
		return ac.content, nil
	}
	return encode(&ac.Content)
}

func (ac *AuthenticatedContent) marshal(b *cryptobyte.Builder) {
	b.AddUint16(uint16(ac.WireFormat))
	ac.Content.marshal(b)
	ac.Auth.marshalFor(b, ac.Content.ContentType)
}

// unmarshal accepts only the two wire formats that carry content.
func (ac *AuthenticatedContent) unmarshal(s *cryptobyte.String) bool {
	var wf uint16
	if !s.ReadUint16(&wf) {
		return false
	}
	ac.WireFormat = WireFormat(wf)
	if ac.WireFormat != WireFormatPublicMessage && ac.WireFormat != WireFormatPrivateMessage {
		return false
	}
	return ac.Content.unmarshal(s) && ac.Auth.unmarshalFor(s, ac.Content.ContentType)
}

// checkFraming enforces the rules of §6 and §6.2 on who may send what in
// which wire format: application data only in a PrivateMessage, which only
// members send; an external sender only proposals; a new member only an Add
// proposal (new_member_proposal) or a Commit (new_member_commit).
func checkFraming(wf WireFormat, c *FramedContent) error {
	switch wf {
	case WireFormatPublicMessage:
		if c.ContentType == ContentApplication {
			return errorf("application data may not be sent as a PublicMessage")
		}
	case WireFormatPrivateMessage:
		if c.Sender.Type != SenderMember {
			return errorf("only members may send a PrivateMessage")
		}
	default:
		return errorf("wire format %d carries no content", wf)
	}
	switch c.Sender.Type {
	case SenderMember:
	case SenderExternal:
		if c.ContentType != ContentProposal {
			return errorf("external sender may only send proposals")
		}
	case SenderNewMemberProposal:
		if c.ContentType != ContentProposal || c.Proposal == nil || c.Proposal.Type != ProposalAdd {
			return errorf("new_member_proposal sender may only send an Add proposal")
		}
	case SenderNewMemberCommit:
		if c.ContentType != ContentCommit {
			return errorf("new_member_commit sender may only send a Commit")
		}
	default:
		return errorf("unknown sender type %d", c.Sender.Type)
	}
	return nil
}

// checkSendable checks that ac is ready to go out in wire format wf: it
// was signed for wf, checkFraming allows it, and a Commit carries its
// confirmation tag.
func checkSendable(ac *AuthenticatedContent, wf WireFormat) error {
	if ac.WireFormat != wf {
		return errorf("content signed for wire format %d, sent as %d", ac.WireFormat, wf)
	}
	if err := checkFraming(wf, &ac.Content); err != nil {
		return err
	}
	if ac.Content.ContentType == ContentCommit && len(ac.Auth.ConfirmationTag) == 0 {
		return errorf("commit without a confirmation tag")
	}
	return nil
}

// tbs returns FramedContentTBS (§6.1) in pieces, to be written one after
// the other: version and wire format, the encoded content, and — for a
// member or new_member_commit sender — groupContext, the encoded
// GroupContext of the content's epoch.
func (ac *AuthenticatedContent) tbs(groupContext []byte) ([][]byte, error) {
	content, err := ac.encodedContent()
	if err != nil {
		return nil, err
	}
	head := []byte{byte(MLS10 >> 8), byte(MLS10), byte(ac.WireFormat >> 8), byte(ac.WireFormat)}
	switch ac.Content.Sender.Type {
	case SenderMember, SenderNewMemberCommit:
		return [][]byte{head, content, groupContext}, nil
	}
	return [][]byte{head, content}, nil
}

// framedContentTBSLabel is the label of the content signature (§6.1).
const framedContentTBSLabel = "FramedContentTBS"

// signedContent returns the message that ac's signature signs:
// SignContent("FramedContentTBS", FramedContentTBS) of §5.1.2 and §6.1,
// in one buffer. Unless ac is fixed, the FramedContent is encoded straight
// into that buffer, and ac.content set to that part of it, so that the
// content is encoded once and not copied again for the signature.
//
// SignContent starts with the length of what follows the label, known
// only once the content is encoded; space for the longest prefix is
// therefore kept in front, and the prefix written into its end afterwards.
func (ac *AuthenticatedContent) signedContent(groupContext []byte) ([]byte, error) {
	const labelLen = len(labelPrefix) + len(framedContentTBSLabel)
	const reserve = 1 + labelLen + 4 // label<V> (a one-byte length) and the longest varint
	switch ac.Content.Sender.Type {
	case SenderMember, SenderNewMemberCommit:
	default:
		groupContext = nil
	}
	size := reserve + 4 + len(groupContext)
	switch {
	case ac.content != nil:
		size += len(ac.content)
	case ac.Content.ContentType == ContentApplication:
		// Exactly enough for the fixed fields and the longest varints.
		size += 32 + len(ac.Content.GroupID) + len(ac.Content.AuthenticatedData) + len(ac.Content.ApplicationData)
	default:
		size += encodeCapacity
	}
	buf := make([]byte, reserve, size)
	buf = append(buf, byte(MLS10>>8), byte(MLS10), byte(ac.WireFormat>>8), byte(ac.WireFormat))
	start := len(buf)
	if ac.content != nil {
		buf = append(buf, ac.content...)
	} else {
		b := cryptobyte.NewBuilder(buf)
		ac.Content.marshal(b)
		var err error
		if buf, err = b.Bytes(); err != nil {
			return nil, err
		}
		ac.content = buf[start:len(buf):len(buf)]
	}
	buf = append(buf, groupContext...)
	n := len(buf) - reserve
	var vlen int
	switch {
	case n < 1<<6:
		vlen = 1
	case n < 1<<14:
		vlen = 2
	case n <= maxVectorLen:
		vlen = 4
	default:
		return nil, errorf("FramedContentTBS of %d bytes is too long", n)
	}
	// The prefix fills buf[p:reserve] exactly: appending it to buf[p:p]
	// writes it in place, in front of the content.
	p := reserve - vlen - labelLen - 1
	prefix := append(append(buf[p:p], byte(labelLen)), labelPrefix...)
	prefix = appendVarint(append(prefix, framedContentTBSLabel...), n)
	if len(prefix) != reserve-p {
		panic("mls: internal error: SignContent prefix of the wrong size")
	}
	return buf[p:], nil
}

// signFramedContent signs content for sending in wire format wf and returns the
// AuthenticatedContent (§6.1), fixed. groupContext is the encoded GroupContext of
// the current epoch; it is signed over only for member and
// new_member_commit senders. For a Commit the caller sets
// Auth.ConfirmationTag once the new epoch's key schedule has run, which
// needs this signature (§8.2).
func signFramedContent(key *SignatureKey, wf WireFormat, content *FramedContent, groupContext []byte) (*AuthenticatedContent, error) {
	if err := checkFraming(wf, content); err != nil {
		return nil, err
	}
	ac := &AuthenticatedContent{WireFormat: wf, Content: *content}
	msg, err := ac.signedContent(groupContext)
	if err != nil {
		return nil, err
	}
	sig, err := key.sign(msg)
	if err != nil {
		return nil, err
	}
	ac.Auth.Signature = sig
	return ac, nil
}

// verifySignature checks ac's signature against pub, the signature key of
// its sender: the leaf's key for a member, the external_senders entry for an
// external sender, the KeyPackage's leaf for new_member_proposal and the
// UpdatePath's leaf for new_member_commit (§6.1). It fixes ac.
func (ac *AuthenticatedContent) verifySignature(s *suite, pub, groupContext []byte) bool {
	msg, err := ac.signedContent(groupContext)
	return err == nil && s.sig.verify(pub, msg, ac.Auth.Signature)
}

// membershipTag is MAC(membership_key, AuthenticatedContentTBM) of §6.2,
// where AuthenticatedContentTBM is FramedContentTBS followed by
// FramedContentAuthData.
func (ac *AuthenticatedContent) membershipTag(s *suite, membershipKey, groupContext []byte) ([]byte, error) {
	tbs, err := ac.tbs(groupContext)
	if err != nil {
		return nil, err
	}
	b := cryptobyte.NewBuilder(nil)
	ac.Auth.marshalFor(b, ac.Content.ContentType)
	auth, err := b.Bytes()
	if err != nil {
		return nil, err
	}
	return s.mac(membershipKey, append(tbs, auth)...), nil
}

// PublicMessage is a handshake message sent signed but not encrypted
// (§6.2). MembershipTag is set exactly when the sender is a member.
type PublicMessage struct {
	Content       FramedContent
	Auth          FramedContentAuthData
	MembershipTag []byte
}

func (pm *PublicMessage) marshal(b *cryptobyte.Builder) {
	pm.Content.marshal(b)
	pm.Auth.marshalFor(b, pm.Content.ContentType)
	if pm.Content.Sender.Type == SenderMember {
		addOpaque(b, pm.MembershipTag)
	} else if pm.MembershipTag != nil {
		b.SetError(errorf("membership tag on a message from a non-member"))
	}
}

func (pm *PublicMessage) unmarshal(s *cryptobyte.String) bool {
	pm.MembershipTag = nil
	if !pm.Content.unmarshal(s) || !pm.Auth.unmarshalFor(s, pm.Content.ContentType) {
		return false
	}
	if pm.Content.Sender.Type != SenderMember {
		return true
	}
	if !readOpaque(s, &pm.MembershipTag) {
		return false
	}
	if pm.MembershipTag == nil {
		pm.MembershipTag = []byte{}
	}
	return true
}

// authenticatedContent returns the AuthenticatedContent pm carries.
func (pm *PublicMessage) authenticatedContent() *AuthenticatedContent {
	return &AuthenticatedContent{WireFormat: WireFormatPublicMessage, Content: pm.Content, Auth: pm.Auth}
}

// protectPublic wraps ac — signed, in wire format public_message, with its
// confirmation tag set if it is a Commit — into a PublicMessage, adding the
// membership tag under membershipKey when the sender is a member (§6.2).
func protectPublic(s *suite, ac *AuthenticatedContent, membershipKey, groupContext []byte) (*PublicMessage, error) {
	if err := checkSendable(ac, WireFormatPublicMessage); err != nil {
		return nil, err
	}
	pm := &PublicMessage{Content: ac.Content, Auth: ac.Auth}
	if ac.Content.Sender.Type == SenderMember {
		tag, err := ac.membershipTag(s, membershipKey, groupContext)
		if err != nil {
			return nil, err
		}
		pm.MembershipTag = tag
	}
	return pm, nil
}

// unprotectPublic checks pm's framing and, for a member sender, its
// membership tag under membershipKey (§6.2), and returns its
// AuthenticatedContent, fixed. The caller must then check that the content
// is for the current group and epoch, and verify the signature with
// AuthenticatedContent.verifySignature and the sender's key.
func unprotectPublic(s *suite, pm *PublicMessage, membershipKey, groupContext []byte) (*AuthenticatedContent, error) {
	ac := pm.authenticatedContent()
	if err := checkFraming(ac.WireFormat, &ac.Content); err != nil {
		return nil, err
	}
	if err := ac.fix(); err != nil {
		return nil, err
	}
	if ac.Content.Sender.Type == SenderMember {
		tag, err := ac.membershipTag(s, membershipKey, groupContext)
		if err != nil {
			return nil, err
		}
		if !hmac.Equal(tag, pm.MembershipTag) {
			return nil, errorf("membership tag does not verify")
		}
	}
	return ac, nil
}

// PrivateMessage is a message encrypted with keys from the secret tree
// (§6.3). Ciphertext holds the encrypted PrivateMessageContent;
// EncryptedSenderData the encrypted SenderData.
type PrivateMessage struct {
	GroupID             []byte
	Epoch               uint64
	ContentType         ContentType
	AuthenticatedData   []byte
	EncryptedSenderData []byte
	Ciphertext          []byte
}

func (pm *PrivateMessage) marshal(b *cryptobyte.Builder) {
	addOpaque(b, pm.GroupID)
	b.AddUint64(pm.Epoch)
	b.AddUint8(uint8(pm.ContentType))
	addOpaque(b, pm.AuthenticatedData)
	addOpaque(b, pm.EncryptedSenderData)
	addOpaque(b, pm.Ciphertext)
}

func (pm *PrivateMessage) unmarshal(s *cryptobyte.String) bool {
	return readOpaque(s, &pm.GroupID) && s.ReadUint64(&pm.Epoch) &&
		readContentType(s, &pm.ContentType) && readOpaque(s, &pm.AuthenticatedData) &&
		readOpaque(s, &pm.EncryptedSenderData) && readOpaque(s, &pm.Ciphertext)
}

// reuseGuardSize is the length of SenderData.reuse_guard (§6.3.2).
const reuseGuardSize = 4

// senderData identifies the sender and key generation of a PrivateMessage
// (§6.3.2). reuseGuard is XORed into the content nonce, so that a nonce is
// not reused even if a generation's key is (§6.3.1).
type senderData struct {
	leafIndex  uint32
	generation uint32
	reuseGuard [reuseGuardSize]byte
}

// senderDataSize is the size of an encoded SenderData.
const senderDataSize = 4 + 4 + reuseGuardSize

func (d *senderData) marshal(b *cryptobyte.Builder) {
	b.AddUint32(d.leafIndex)
	b.AddUint32(d.generation)
	b.AddBytes(d.reuseGuard[:])
}

func (d *senderData) unmarshal(s *cryptobyte.String) bool {
	return s.ReadUint32(&d.leafIndex) && s.ReadUint32(&d.generation) && s.CopyBytes(d.reuseGuard[:])
}

// privateMessageContent is the plaintext of a PrivateMessage (§6.3.1): the
// body of the content, its authentication, and padding zero bytes.
type privateMessageContent struct {
	content FramedContent // only ContentType and the body are used
	auth    FramedContentAuthData
	padding int
}

func (p *privateMessageContent) marshal(b *cryptobyte.Builder) {
	p.content.marshalBody(b)
	p.auth.marshalFor(b, p.content.ContentType)
	b.AddBytes(make([]byte, p.padding))
}

// unmarshal reads the content of type p.content.ContentType, which comes
// from the PrivateMessage. Whatever follows the auth data is padding and
// must be all zero.
func (p *privateMessageContent) unmarshal(s *cryptobyte.String) bool {
	if !p.content.unmarshalBody(s) || !p.auth.unmarshalFor(s, p.content.ContentType) {
		return false
	}
	var nonZero byte
	for _, c := range *s {
		nonZero |= c
	}
	p.padding = len(*s)
	s.Skip(len(*s))
	return nonZero == 0
}

// privateContentAAD is PrivateContentAAD (§6.3.1), the AAD of the content
// encryption.
func privateContentAAD(pm *PrivateMessage) ([]byte, error) {
	b := cryptobyte.NewBuilder(make([]byte, 0, len(pm.GroupID)+len(pm.AuthenticatedData)+17))
	addOpaque(b, pm.GroupID)
	b.AddUint64(pm.Epoch)
	b.AddUint8(uint8(pm.ContentType))
	addOpaque(b, pm.AuthenticatedData)
	return b.Bytes()
}

// senderDataAAD is SenderDataAAD (§6.3.2), the AAD of the sender data
// encryption.
func senderDataAAD(pm *PrivateMessage) ([]byte, error) {
	b := cryptobyte.NewBuilder(make([]byte, 0, len(pm.GroupID)+13))
	addOpaque(b, pm.GroupID)
	b.AddUint64(pm.Epoch)
	b.AddUint8(uint8(pm.ContentType))
	return b.Bytes()
}

// paddingFor returns how many zero bytes bring n up to a multiple of
// block; a block of 0 or 1 means no padding.
func paddingFor(n, block int) int {
	if block <= 1 {
		return 0
	}
	return (block - n%block) % block
}

// ratchetFor selects the hash ratchet that keys content of type ct (§9.1).
func ratchetFor(ct ContentType) ratchetType {
	if ct == ContentApplication {
		return applicationRatchet
	}
	return handshakeRatchet
}

// maxNonceSize bounds the AEAD nonces of every suite, so that the nonce
// with the reuse guard applied can live on the stack.
const maxNonceSize = 32

// protectPrivate encrypts ac into a PrivateMessage (§6.3). ac must be in
// wire format private_message, from a member, signed, and for a Commit
// carry its confirmation tag. The content key and nonce are the next ones
// of the sender's ratchet in st (application or handshake, by content
// type), the nonce XORed with a fresh random reuse guard; the plaintext is
// padded with zero bytes to a multiple of padBlock (0 or 1: no padding).
// The SenderData is encrypted under keys derived from senderDataSecret and
// a sample of the content ciphertext.
func protectPrivate(s *suite, st *secretTree, senderDataSecret []byte, ac *AuthenticatedContent, padBlock int) (*PrivateMessage, error) {
	if err := checkSendable(ac, WireFormatPrivateMessage); err != nil {
		return nil, err
	}
	c := &ac.Content
	pm := &PrivateMessage{
		GroupID:           c.GroupID,
		Epoch:             c.Epoch,
		ContentType:       c.ContentType,
		AuthenticatedData: c.AuthenticatedData,
	}
	// The plaintext is encoded, padded and sealed in place, in one buffer
	// with room for the padding and the AEAD tag.
	pmc := privateMessageContent{content: *c, auth: ac.Auth}
	size := encodeCapacity
	if c.ContentType == ContentApplication {
		size = 8 + len(c.ApplicationData) + len(ac.Auth.Signature) // two varints
	}
	b := cryptobyte.NewBuilder(make([]byte, 0, size+max(padBlock, 0)+maxAEADOverhead))
	pmc.marshal(b)
	plaintext, err := b.Bytes()
	if err != nil {
		return nil, err
	}
	plaintext = append(plaintext, make([]byte, paddingFor(len(plaintext), padBlock))...)
	sealed := false
	defer func() {
		if !sealed {
			clear(plaintext)
		}
	}()
	aad, err := privateContentAAD(pm)
	if err != nil {
		return nil, err
	}
	sd := senderData{leafIndex: c.Sender.Index}
	if _, err := rand.Read(sd.reuseGuard[:]); err != nil {
		return nil, err
	}
	gen, key, nonce, err := st.nextSenderKey(leafIndex(sd.leafIndex), ratchetFor(c.ContentType))
	if err != nil {
		return nil, err
	}
	sd.generation = gen
	pm.Ciphertext, err = sealInPlace(s, key, nonce, sd.reuseGuard, plaintext, aad)
	clear(key)
	clear(nonce)
	if err != nil {
		return nil, err
	}
	sealed = true
	if pm.EncryptedSenderData, err = sealSenderData(s, senderDataSecret, pm, &sd); err != nil {
		return nil, err
	}
	return pm, nil
}

// maxAEADOverhead bounds the tag size of every suite's AEAD.
const maxAEADOverhead = 16

// sealInPlace encrypts plaintext with key and nonce, the nonce XORed with
// guard, overwriting plaintext with the ciphertext when its capacity
// holds the tag, and erasing it otherwise.
func sealInPlace(s *suite, key, nonce []byte, guard [reuseGuardSize]byte, plaintext, aad []byte) ([]byte, error) {
	aead, err := s.newAEAD(key)
	if err != nil {
		return nil, err
	}
	var buf [maxNonceSize]byte
	n := applyReuseGuard(buf[:0], nonce, guard)
	defer clear(n)
	ct := aead.Seal(plaintext[:0], n, plaintext, aad)
	if len(plaintext) > 0 && &ct[0] != &plaintext[0] {
		clear(plaintext) // no room for the tag: sealed into a new buffer
	}
	return ct, nil
}

// sealSenderData encrypts sd for pm, whose Ciphertext must be set (§6.3.2).
func sealSenderData(s *suite, senderDataSecret []byte, pm *PrivateMessage, sd *senderData) ([]byte, error) {
	aad, err := senderDataAAD(pm)
	if err != nil {
		return nil, err
	}
	key, nonce := senderDataKeyNonce(s, senderDataSecret, pm.Ciphertext)
	defer clear(key)
	aead, err := s.newAEAD(key)
	if err != nil {
		return nil, err
	}
	// The 12 bytes of SenderData are sealed in place, in a buffer with
	// room for the tag.
	pt := binary.BigEndian.AppendUint32(make([]byte, 0, senderDataSize+maxAEADOverhead), sd.leafIndex)
	pt = binary.BigEndian.AppendUint32(pt, sd.generation)
	pt = append(pt, sd.reuseGuard[:]...)
	return aead.Seal(pt[:0], nonce, pt, aad), nil
}

// openSenderData decrypts and decodes the SenderData of pm (§6.3.2).
func openSenderData(s *suite, senderDataSecret []byte, pm *PrivateMessage) (*senderData, error) {
	aad, err := senderDataAAD(pm)
	if err != nil {
		return nil, err
	}
	key, nonce := senderDataKeyNonce(s, senderDataSecret, pm.Ciphertext)
	defer clear(key)
	aead, err := s.newAEAD(key)
	if err != nil {
		return nil, err
	}
	pt, err := aead.Open(nil, nonce, pm.EncryptedSenderData, aad)
	if err != nil {
		return nil, errDecrypt
	}
	sd := new(senderData)
	if err := decode(pt, sd, "SenderData"); err != nil {
		return nil, err
	}
	return sd, nil
}

// unprotectPrivate decrypts pm (§6.3) and returns its AuthenticatedContent,
// the sender being the member at the leaf index of the SenderData. st and
// senderDataSecret must be those of pm's epoch, which the caller selects
// (and checks pm.GroupID) beforehand. The content key is taken from st for
// the sender's leaf and generation; it is consumed only if the content
// decrypts and decodes, so a forged message costs the ratchet nothing. An
// already used generation gives ErrReplay.
//
// The caller must then check that the sender's leaf is occupied in the
// ratchet tree, and verify the signature with
// AuthenticatedContent.verifySignature and that leaf's signature key,
// which also encodes the content once (ac is not fixed before).
func unprotectPrivate(s *suite, st *secretTree, senderDataSecret []byte, pm *PrivateMessage) (*AuthenticatedContent, error) {
	sd, err := openSenderData(s, senderDataSecret, pm)
	if err != nil {
		return nil, err
	}
	aad, err := privateContentAAD(pm)
	if err != nil {
		return nil, err
	}
	var pmc privateMessageContent
	pmc.content.ContentType = pm.ContentType
	err = st.withReceiverKey(leafIndex(sd.leafIndex), ratchetFor(pm.ContentType), sd.generation, func(key, nonce []byte) error {
		return openContent(s, key, nonce, sd.reuseGuard, pm.Ciphertext, aad, &pmc)
	})
	if err != nil {
		return nil, err
	}
	ac := &AuthenticatedContent{
		WireFormat: WireFormatPrivateMessage,
		Content: FramedContent{
			GroupID:           pm.GroupID,
			Epoch:             pm.Epoch,
			Sender:            MemberSender(sd.leafIndex),
			AuthenticatedData: pm.AuthenticatedData,
			ContentType:       pm.ContentType,
			ApplicationData:   pmc.content.ApplicationData,
			Proposal:          pmc.content.Proposal,
			Commit:            pmc.content.Commit,
		},
		Auth: pmc.auth,
	}
	if err := checkFraming(ac.WireFormat, &ac.Content); err != nil {
		return nil, err
	}
	return ac, nil
}

// openContent decrypts a PrivateMessage's ciphertext with key and nonce
// (the nonce XORed with guard) and decodes it into pmc, whose content type
// is set.
func openContent(s *suite, key, nonce []byte, guard [reuseGuardSize]byte, ciphertext, aad []byte, pmc *privateMessageContent) error {
	aead, err := s.newAEAD(key)
	if err != nil {
		return err
	}
	var buf [maxNonceSize]byte
	n := applyReuseGuard(buf[:0], nonce, guard)
	defer clear(n)
	pt, err := aead.Open(nil, n, ciphertext, aad)
	if err != nil {
		return errDecrypt
	}
	defer clear(pt)
	return decode(pt, pmc, "PrivateMessageContent")
}

// --- Transcript hashes and confirmation tags (§8.2) ---

// confirmedTranscriptHash returns the confirmed transcript hash after the
// Commit in ac:
//
//	Hash(interim_transcript_hash_before || ConfirmedTranscriptHashInput)
//
// where ConfirmedTranscriptHashInput is the wire format, the FramedContent
// and the signature.
func confirmedTranscriptHash(s *suite, interimBefore []byte, ac *AuthenticatedContent) ([]byte, error) {
	if ac.Content.ContentType != ContentCommit {
		return nil, errorf("transcript hash of a non-commit")
	}
	content, err := ac.encodedContent()
	if err != nil {
		return nil, err
	}
	b := cryptobyte.NewBuilder(nil)
	addOpaque(b, ac.Auth.Signature)
	sig, err := b.Bytes()
	if err != nil {
		return nil, err
	}
	wf := []byte{byte(ac.WireFormat >> 8), byte(ac.WireFormat)}
	return s.hash(interimBefore, wf, content, sig), nil
}

// interimTranscriptHash returns
// Hash(confirmed_transcript_hash || InterimTranscriptHashInput), the
// latter being the confirmation tag as a MAC<V> (§8.2).
func interimTranscriptHash(s *suite, confirmed, confirmationTag []byte) []byte {
	b := cryptobyte.NewBuilder(append([]byte(nil), confirmed...))
	addOpaque(b, confirmationTag)
	return s.hash(b.BytesOrPanic())
}

// confirmationTag is MAC(confirmation_key, confirmed_transcript_hash) (§6.1).
func confirmationTag(s *suite, confirmationKey, confirmedTranscriptHash []byte) []byte {
	return s.mac(confirmationKey, confirmedTranscriptHash)
}

// verifyConfirmationTag checks tag in constant time.
func verifyConfirmationTag(s *suite, confirmationKey, confirmedTranscriptHash, tag []byte) bool {
	return hmac.Equal(confirmationTag(s, confirmationKey, confirmedTranscriptHash), tag)
}
