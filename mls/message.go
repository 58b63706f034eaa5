package mls

import (
	"golang.org/x/crypto/cryptobyte"
)

// This file holds the outermost MLS structures (RFC 9420 §6): the wire
// formats, content types and senders, and MLSMessage, the envelope every
// message travels in.

// WireFormat says how an MLSMessage's body is encoded (§6, §17.2).
type WireFormat uint16

const (
	WireFormatPublicMessage  WireFormat = 1
	WireFormatPrivateMessage WireFormat = 2
	WireFormatWelcome        WireFormat = 3
	WireFormatGroupInfo      WireFormat = 4
	WireFormatKeyPackage     WireFormat = 5
)

// ContentType says what a FramedContent carries (§6).
type ContentType uint8

const (
	ContentApplication ContentType = 1
	ContentProposal    ContentType = 2
	ContentCommit      ContentType = 3
)

func (c ContentType) valid() bool {
	return c >= ContentApplication && c <= ContentCommit
}

func readContentType(s *cryptobyte.String, out *ContentType) bool {
	var v uint8
	if !s.ReadUint8(&v) || !ContentType(v).valid() {
		return false
	}
	*out = ContentType(v)
	return true
}

// SenderType says who sent a message (§6).
type SenderType uint8

const (
	// SenderMember is a member of the group, identified by its leaf index.
	SenderMember SenderType = 1
	// SenderExternal is a preconfigured external sender, identified by its
	// index in the group's external_senders extension (§12.1.8.1).
	SenderExternal SenderType = 2
	// SenderNewMemberProposal is a non-member proposing to add itself.
	SenderNewMemberProposal SenderType = 3
	// SenderNewMemberCommit is a non-member joining by external commit.
	SenderNewMemberCommit SenderType = 4
)

// Sender identifies the sender of a FramedContent (§6). Index is the
// leaf_index of a member or the sender_index of an external sender; it is
// zero and not encoded for the two new-member sender types.
type Sender struct {
	Type  SenderType
	Index uint32
}

// MemberSender returns the Sender for the member at leaf index leaf.
func MemberSender(leaf uint32) Sender { return Sender{Type: SenderMember, Index: leaf} }

func (s *Sender) marshal(b *cryptobyte.Builder) {
	b.AddUint8(uint8(s.Type))
	switch s.Type {
	case SenderMember, SenderExternal:
		b.AddUint32(s.Index)
	case SenderNewMemberProposal, SenderNewMemberCommit:
		if s.Index != 0 {
			b.SetError(errorf("new-member sender carries an index"))
		}
	default:
		b.SetError(errorf("unknown sender type %d", s.Type))
	}
}

func (s *Sender) unmarshal(str *cryptobyte.String) bool {
	var t uint8
	if !str.ReadUint8(&t) {
		return false
	}
	s.Type, s.Index = SenderType(t), 0
	switch s.Type {
	case SenderMember, SenderExternal:
		return str.ReadUint32(&s.Index)
	case SenderNewMemberProposal, SenderNewMemberCommit:
		return true
	}
	return false
}

// MLSMessage is the envelope of every MLS message on the wire (§6): the
// protocol version (always mls10) and one body selected by WireFormat.
// Exactly the field named by WireFormat is set.
type MLSMessage struct {
	WireFormat     WireFormat
	PublicMessage  *PublicMessage
	PrivateMessage *PrivateMessage
	Welcome        *Welcome
	GroupInfo      *GroupInfo
	KeyPackage     *KeyPackage
}

// body returns the body selected by m.WireFormat, or nil when that body is
// missing or the wire format is unknown.
func (m *MLSMessage) body() marshaler {
	switch m.WireFormat {
	case WireFormatPublicMessage:
		if m.PublicMessage != nil {
			return m.PublicMessage
		}
	case WireFormatPrivateMessage:
		if m.PrivateMessage != nil {
			return m.PrivateMessage
		}
	case WireFormatWelcome:
		if m.Welcome != nil {
			return m.Welcome
		}
	case WireFormatGroupInfo:
		if m.GroupInfo != nil {
			return m.GroupInfo
		}
	case WireFormatKeyPackage:
		if m.KeyPackage != nil {
			return m.KeyPackage
		}
	}
	return nil
}

func (m *MLSMessage) marshal(b *cryptobyte.Builder) {
	body := m.body()
	if body == nil {
		b.SetError(errorf("MLSMessage with wire format %d has no matching body", m.WireFormat))
		return
	}
	b.AddUint16(uint16(MLS10))
	b.AddUint16(uint16(m.WireFormat))
	body.marshal(b)
}

func (m *MLSMessage) unmarshal(s *cryptobyte.String) bool {
	var version, wf uint16
	if !s.ReadUint16(&version) || ProtocolVersion(version) != MLS10 || !s.ReadUint16(&wf) {
		return false
	}
	*m = MLSMessage{WireFormat: WireFormat(wf)}
	switch m.WireFormat {
	case WireFormatPublicMessage:
		m.PublicMessage = new(PublicMessage)
		return m.PublicMessage.unmarshal(s)
	case WireFormatPrivateMessage:
		m.PrivateMessage = new(PrivateMessage)
		return m.PrivateMessage.unmarshal(s)
	case WireFormatWelcome:
		m.Welcome = new(Welcome)
		return m.Welcome.unmarshal(s)
	case WireFormatGroupInfo:
		m.GroupInfo = new(GroupInfo)
		return m.GroupInfo.unmarshal(s)
	case WireFormatKeyPackage:
		m.KeyPackage = new(KeyPackage)
		return m.KeyPackage.unmarshal(s)
	}
	return false
}

// Marshal returns the wire encoding of m.
func (m *MLSMessage) Marshal() ([]byte, error) { return encode(m) }

// UnmarshalMLSMessage decodes an MLSMessage, strictly: an unknown version or
// wire format, a malformed body or trailing bytes are errors wrapping
// ErrDecode.
func UnmarshalMLSMessage(data []byte) (*MLSMessage, error) {
	m := new(MLSMessage)
	if err := decode(data, m, "MLSMessage"); err != nil {
		return nil, err
	}
	return m, nil
}
