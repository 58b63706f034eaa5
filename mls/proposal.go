package mls

import (
	"golang.org/x/crypto/cryptobyte"
)

// Proposals (RFC 9420 §12.1): a member's request to change the group, which
// a later Commit applies.

// Proposal is one proposal (§12.1). Exactly the body field named by Type is
// set; proposals of a type this package does not know cannot be decoded, as
// their bodies carry no length.
type Proposal struct {
	Type                   ProposalType
	Add                    *AddProposal
	Update                 *UpdateProposal
	Remove                 *RemoveProposal
	PreSharedKey           *PreSharedKeyProposal
	ReInit                 *ReInitProposal
	ExternalInit           *ExternalInitProposal
	GroupContextExtensions *GroupContextExtensionsProposal
}

// AddProposal adds the client of KeyPackage to the group (§12.1.1).
type AddProposal struct {
	KeyPackage KeyPackage
}

func (p *AddProposal) marshal(b *cryptobyte.Builder) { p.KeyPackage.marshal(b) }

func (p *AddProposal) unmarshal(s *cryptobyte.String) bool { return p.KeyPackage.unmarshal(s) }

// UpdateProposal replaces the sender's leaf with LeafNode (§12.1.2).
type UpdateProposal struct {
	LeafNode LeafNode
}

func (p *UpdateProposal) marshal(b *cryptobyte.Builder) { p.LeafNode.marshal(b) }

func (p *UpdateProposal) unmarshal(s *cryptobyte.String) bool { return p.LeafNode.unmarshal(s) }

// RemoveProposal removes the member at leaf index Removed (§12.1.3).
type RemoveProposal struct {
	Removed uint32
}

func (p *RemoveProposal) marshal(b *cryptobyte.Builder) { b.AddUint32(p.Removed) }

func (p *RemoveProposal) unmarshal(s *cryptobyte.String) bool { return s.ReadUint32(&p.Removed) }

// PreSharedKeyProposal injects the PSK named by PSK into the next epoch's
// key schedule (§12.1.4).
type PreSharedKeyProposal struct {
	PSK PreSharedKeyID
}

func (p *PreSharedKeyProposal) marshal(b *cryptobyte.Builder) { p.PSK.marshal(b) }

func (p *PreSharedKeyProposal) unmarshal(s *cryptobyte.String) bool { return p.PSK.unmarshal(s) }

// ReInitProposal asks to close the group and restart it with new
// parameters (§12.1.5). Version may name a future protocol version, so it
// is kept as sent.
type ReInitProposal struct {
	GroupID     []byte
	Version     ProtocolVersion
	CipherSuite CipherSuite
	Extensions  Extensions
}

func (p *ReInitProposal) marshal(b *cryptobyte.Builder) {
	addOpaque(b, p.GroupID)
	b.AddUint16(uint16(p.Version))
	b.AddUint16(uint16(p.CipherSuite))
	p.Extensions.marshal(b)
}

func (p *ReInitProposal) unmarshal(s *cryptobyte.String) bool {
	var v, cs uint16
	if !readOpaque(s, &p.GroupID) || !s.ReadUint16(&v) || !s.ReadUint16(&cs) {
		return false
	}
	p.Version, p.CipherSuite = ProtocolVersion(v), CipherSuite(cs)
	return p.Extensions.unmarshal(s)
}

// ExternalInitProposal carries the KEM output from which a joiner by
// external commit and the group derive the new init_secret (§12.1.6).
type ExternalInitProposal struct {
	KEMOutput []byte
}

func (p *ExternalInitProposal) marshal(b *cryptobyte.Builder) { addOpaque(b, p.KEMOutput) }

func (p *ExternalInitProposal) unmarshal(s *cryptobyte.String) bool {
	return readOpaque(s, &p.KEMOutput)
}

// GroupContextExtensionsProposal replaces the group's extensions (§12.1.7).
type GroupContextExtensionsProposal struct {
	Extensions Extensions
}

func (p *GroupContextExtensionsProposal) marshal(b *cryptobyte.Builder) { p.Extensions.marshal(b) }

func (p *GroupContextExtensionsProposal) unmarshal(s *cryptobyte.String) bool {
	return p.Extensions.unmarshal(s)
}

// proposalBody is the body of one proposal type.
type proposalBody interface {
	marshaler
	unmarshaler
}

// body returns the body selected by p.Type, or nil when that body is
// missing or the type is unknown.
func (p *Proposal) body() proposalBody {
	switch p.Type {
	case ProposalAdd:
		if p.Add != nil {
			return p.Add
		}
	case ProposalUpdate:
		if p.Update != nil {
			return p.Update
		}
	case ProposalRemove:
		if p.Remove != nil {
			return p.Remove
		}
	case ProposalPSK:
		if p.PreSharedKey != nil {
			return p.PreSharedKey
		}
	case ProposalReInit:
		if p.ReInit != nil {
			return p.ReInit
		}
	case ProposalExternalInit:
		if p.ExternalInit != nil {
			return p.ExternalInit
		}
	case ProposalGroupContextExtensions:
		if p.GroupContextExtensions != nil {
			return p.GroupContextExtensions
		}
	}
	return nil
}

// newBody sets a fresh, empty body for p.Type and returns it, or returns
// nil for an unknown type.
func (p *Proposal) newBody() proposalBody {
	switch p.Type {
	case ProposalAdd:
		p.Add = new(AddProposal)
	case ProposalUpdate:
		p.Update = new(UpdateProposal)
	case ProposalRemove:
		p.Remove = new(RemoveProposal)
	case ProposalPSK:
		p.PreSharedKey = new(PreSharedKeyProposal)
	case ProposalReInit:
		p.ReInit = new(ReInitProposal)
	case ProposalExternalInit:
		p.ExternalInit = new(ExternalInitProposal)
	case ProposalGroupContextExtensions:
		p.GroupContextExtensions = new(GroupContextExtensionsProposal)
	}
	return p.body()
}

func (p *Proposal) marshal(b *cryptobyte.Builder) {
	body := p.body()
	if body == nil {
		b.SetError(errorf("proposal of type %d has no matching body", p.Type))
		return
	}
	b.AddUint16(uint16(p.Type))
	body.marshal(b)
}

func (p *Proposal) unmarshal(s *cryptobyte.String) bool {
	var t uint16
	if !s.ReadUint16(&t) {
		return false
	}
	*p = Proposal{Type: ProposalType(t)}
	body := p.newBody()
	return body != nil && body.unmarshal(s)
}

// ProposalRef names a proposal sent earlier in the epoch (§5.2):
// RefHash("MLS 1.0 Proposal Reference", AuthenticatedContent).
type ProposalRef []byte

// proposalRefLabel is the RefHash label of a ProposalRef (§5.2).
const proposalRefLabel = "MLS 1.0 Proposal Reference"

// makeProposalRef computes the reference of the proposal carried by ac, the
// AuthenticatedContent it was sent in (§5.2).
func makeProposalRef(s *suite, ac *AuthenticatedContent) (ProposalRef, error) {
	if ac.Content.ContentType != ContentProposal {
		return nil, errorf("proposal reference of a non-proposal")
	}
	data, err := encode(ac)
	if err != nil {
		return nil, err
	}
	return s.refHash(proposalRefLabel, data), nil
}
