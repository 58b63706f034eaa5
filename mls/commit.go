package mls

import (
	"golang.org/x/crypto/cryptobyte"
)

// Commits (RFC 9420 §12.4): the message that applies a list of proposals
// and, usually, refreshes the sender's path in the ratchet tree.

// ProposalOrRefType says whether a Commit carries a proposal by value or by
// reference (§12.4).
type ProposalOrRefType uint8

const (
	ProposalOrRefProposal  ProposalOrRefType = 1
	ProposalOrRefReference ProposalOrRefType = 2
)

// ProposalOrRef is one entry of a Commit's proposal list (§12.4): a
// proposal inline (Proposal set) or the reference of a proposal sent
// earlier in the epoch (Reference set).
type ProposalOrRef struct {
	Type      ProposalOrRefType
	Proposal  *Proposal
	Reference ProposalRef
}

func (p *ProposalOrRef) marshal(b *cryptobyte.Builder) {
	b.AddUint8(uint8(p.Type))
	switch p.Type {
	case ProposalOrRefProposal:
		if p.Proposal == nil {
			b.SetError(errorf("inline proposal missing"))
			return
		}
		p.Proposal.marshal(b)
	case ProposalOrRefReference:
		addOpaque(b, p.Reference)
	default:
		b.SetError(errorf("unknown ProposalOrRef type %d", p.Type))
	}
}

func (p *ProposalOrRef) unmarshal(s *cryptobyte.String) bool {
	var t uint8
	if !s.ReadUint8(&t) {
		return false
	}
	*p = ProposalOrRef{Type: ProposalOrRefType(t)}
	switch p.Type {
	case ProposalOrRefProposal:
		p.Proposal = new(Proposal)
		return p.Proposal.unmarshal(s)
	case ProposalOrRefReference:
		return readOpaque(s, (*[]byte)(&p.Reference))
	}
	return false
}

// Commit applies Proposals and, when Path is set, refreshes the
// committer's direct path (§12.4).
type Commit struct {
	Proposals []ProposalOrRef
	Path      *UpdatePath
}

func (c *Commit) marshal(b *cryptobyte.Builder) {
	addVector(b, func(b *cryptobyte.Builder) {
		for i := range c.Proposals {
			c.Proposals[i].marshal(b)
		}
	})
	addOptional(b, c.Path != nil, func(b *cryptobyte.Builder) { c.Path.marshal(b) })
}

func (c *Commit) unmarshal(s *cryptobyte.String) bool {
	*c = Commit{}
	if !readList(s, func(s *cryptobyte.String) bool {
		var p ProposalOrRef
		if !p.unmarshal(s) {
			return false
		}
		c.Proposals = append(c.Proposals, p)
		return true
	}) {
		return false
	}
	var present bool
	return readOptional(s, &present, func(s *cryptobyte.String) bool {
		c.Path = new(UpdatePath)
		return c.Path.unmarshal(s)
	})
}
