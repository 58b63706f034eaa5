package mls

import (
	"golang.org/x/crypto/cryptobyte"
)

// This file holds the small structures of RFC 9420 that nearly every other
// structure uses: versions, credentials, extensions, capabilities and
// lifetimes.

// ProtocolVersion is the MLS protocol version (§6).
type ProtocolVersion uint16

// MLS10 is the only version this package speaks.
const MLS10 ProtocolVersion = 1

// CredentialType names a kind of credential (§5.3).
type CredentialType uint16

const (
	CredentialBasic CredentialType = 1
	CredentialX509  CredentialType = 2
)

// Credential binds an identity to a signature key (§5.3). For a basic
// credential Identity is set; for an X.509 credential Certificates holds the
// DER chain, leaf first.
type Credential struct {
	Type         CredentialType
	Identity     []byte
	Certificates [][]byte
}

// BasicCredential returns a basic credential for identity.
func BasicCredential(identity []byte) Credential {
	return Credential{Type: CredentialBasic, Identity: identity}
}

func (c *Credential) marshal(b *cryptobyte.Builder) {
	b.AddUint16(uint16(c.Type))
	switch c.Type {
	case CredentialBasic:
		addOpaque(b, c.Identity)
	case CredentialX509:
		addVector(b, func(b *cryptobyte.Builder) {
			for _, cert := range c.Certificates {
				addOpaque(b, cert)
			}
		})
	default:
		b.SetError(errUnknownCredential)
	}
}

var errUnknownCredential = errorf("unknown credential type")

func (c *Credential) unmarshal(s *cryptobyte.String) bool {
	var t uint16
	if !s.ReadUint16(&t) {
		return false
	}
	c.Type = CredentialType(t)
	switch c.Type {
	case CredentialBasic:
		return readOpaque(s, &c.Identity)
	case CredentialX509:
		c.Certificates = nil
		return readList(s, func(s *cryptobyte.String) bool {
			var cert []byte
			if !readOpaque(s, &cert) {
				return false
			}
			c.Certificates = append(c.Certificates, cert)
			return true
		})
	}
	return false
}

// ExtensionType names an extension (§13.3, §17.3).
type ExtensionType uint16

const (
	ExtApplicationID        ExtensionType = 0x0001
	ExtRatchetTree          ExtensionType = 0x0002
	ExtRequiredCapabilities ExtensionType = 0x0003
	ExtExternalPub          ExtensionType = 0x0004
	ExtExternalSenders      ExtensionType = 0x0005
	// ExtLastResort marks a KeyPackage that may be used more than once
	// (draft-ietf-mls-extensions, registered value 0x000a).
	ExtLastResort ExtensionType = 0x000a
)

// isDefaultExtension reports whether t is one every client must support and
// so need not list in its capabilities (§7.2).
func (t ExtensionType) isDefault() bool {
	return t >= ExtApplicationID && t <= ExtExternalSenders
}

// Extension is one extension: a type and opaque data (§7.2).
type Extension struct {
	Type ExtensionType
	Data []byte
}

// Extensions is a list of extensions in which each type occurs at most once.
type Extensions []Extension

// Find returns the data of the extension of type t.
func (es Extensions) Find(t ExtensionType) ([]byte, bool) {
	for _, e := range es {
		if e.Type == t {
			return e.Data, true
		}
	}
	return nil, false
}

// Has reports whether an extension of type t is present.
func (es Extensions) Has(t ExtensionType) bool { _, ok := es.Find(t); return ok }

func (es Extensions) marshal(b *cryptobyte.Builder) {
	addVector(b, func(b *cryptobyte.Builder) {
		for _, e := range es {
			b.AddUint16(uint16(e.Type))
			addOpaque(b, e.Data)
		}
	})
}

// unmarshal reads a list of extensions and rejects duplicate types.
func (es *Extensions) unmarshal(s *cryptobyte.String) bool {
	*es = nil
	return readList(s, func(s *cryptobyte.String) bool {
		var e Extension
		var t uint16
		if !s.ReadUint16(&t) || !readOpaque(s, &e.Data) {
			return false
		}
		e.Type = ExtensionType(t)
		if es.Has(e.Type) {
			return false
		}
		*es = append(*es, e)
		return true
	})
}

// ProposalType names a kind of proposal (§12.1, §17.4).
type ProposalType uint16

const (
	ProposalAdd                    ProposalType = 1
	ProposalUpdate                 ProposalType = 2
	ProposalRemove                 ProposalType = 3
	ProposalPSK                    ProposalType = 4
	ProposalReInit                 ProposalType = 5
	ProposalExternalInit           ProposalType = 6
	ProposalGroupContextExtensions ProposalType = 7
)

func (t ProposalType) isDefault() bool {
	return t >= ProposalAdd && t <= ProposalGroupContextExtensions
}

// Capabilities lists what a client supports (§7.2). Values unknown to this
// package (GREASE among them, §13.5) are kept as they are.
type Capabilities struct {
	Versions     []ProtocolVersion
	CipherSuites []CipherSuite
	Extensions   []ExtensionType
	Proposals    []ProposalType
	Credentials  []CredentialType
}

func addUint16s[T ~uint16](b *cryptobyte.Builder, vs []T) {
	addVector(b, func(b *cryptobyte.Builder) {
		for _, v := range vs {
			b.AddUint16(uint16(v))
		}
	})
}

func readUint16s[T ~uint16](s *cryptobyte.String, out *[]T) bool {
	*out = nil
	return readList(s, func(s *cryptobyte.String) bool {
		var v uint16
		if !s.ReadUint16(&v) {
			return false
		}
		*out = append(*out, T(v))
		return true
	})
}

func (c *Capabilities) marshal(b *cryptobyte.Builder) {
	addUint16s(b, c.Versions)
	addUint16s(b, c.CipherSuites)
	addUint16s(b, c.Extensions)
	addUint16s(b, c.Proposals)
	addUint16s(b, c.Credentials)
}

func (c *Capabilities) unmarshal(s *cryptobyte.String) bool {
	return readUint16s(s, &c.Versions) && readUint16s(s, &c.CipherSuites) &&
		readUint16s(s, &c.Extensions) && readUint16s(s, &c.Proposals) &&
		readUint16s(s, &c.Credentials)
}

func contains[T comparable](list []T, v T) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// supportsExtension reports whether these capabilities cover extension t.
func (c *Capabilities) supportsExtension(t ExtensionType) bool {
	return t.isDefault() || contains(c.Extensions, t)
}

// supportsProposal reports whether these capabilities cover proposal t.
func (c *Capabilities) supportsProposal(t ProposalType) bool {
	return t.isDefault() || contains(c.Proposals, t)
}

// supportsCredential reports whether these capabilities cover credential t.
func (c *Capabilities) supportsCredential(t CredentialType) bool {
	return contains(c.Credentials, t)
}

// Lifetime bounds when a KeyPackage's leaf may be used, in seconds since
// the Unix epoch (§7.2).
type Lifetime struct {
	NotBefore, NotAfter uint64
}

// RequiredCapabilities is the data of the required_capabilities extension (§11.1).
type RequiredCapabilities struct {
	Extensions  []ExtensionType
	Proposals   []ProposalType
	Credentials []CredentialType
}

func (r *RequiredCapabilities) marshal(b *cryptobyte.Builder) {
	addUint16s(b, r.Extensions)
	addUint16s(b, r.Proposals)
	addUint16s(b, r.Credentials)
}

func (r *RequiredCapabilities) unmarshal(s *cryptobyte.String) bool {
	return readUint16s(s, &r.Extensions) && readUint16s(s, &r.Proposals) && readUint16s(s, &r.Credentials)
}

// satisfiedBy reports whether c meets these requirements.
func (r *RequiredCapabilities) satisfiedBy(c *Capabilities) bool {
	for _, e := range r.Extensions {
		if !c.supportsExtension(e) {
			return false
		}
	}
	for _, p := range r.Proposals {
		if !c.supportsProposal(p) {
			return false
		}
	}
	for _, t := range r.Credentials {
		if !c.supportsCredential(t) {
			return false
		}
	}
	return true
}

// ExternalSender is one entry of the external_senders extension (§12.1.8.1).
type ExternalSender struct {
	SignatureKey []byte
	Credential   Credential
}

// externalSenders is the data of the external_senders extension.
type externalSenders []ExternalSender

func (es externalSenders) marshal(b *cryptobyte.Builder) {
	addVector(b, func(b *cryptobyte.Builder) {
		for i := range es {
			addOpaque(b, es[i].SignatureKey)
			es[i].Credential.marshal(b)
		}
	})
}

func (es *externalSenders) unmarshal(s *cryptobyte.String) bool {
	*es = nil
	return readList(s, func(s *cryptobyte.String) bool {
		var e ExternalSender
		if !readOpaque(s, &e.SignatureKey) || !e.Credential.unmarshal(s) {
			return false
		}
		*es = append(*es, e)
		return true
	})
}

// GroupContext is the state every member agrees on in an epoch (§8.1).
type GroupContext struct {
	Version                 ProtocolVersion
	CipherSuite             CipherSuite
	GroupID                 []byte
	Epoch                   uint64
	TreeHash                []byte
	ConfirmedTranscriptHash []byte
	Extensions              Extensions
}

func (g *GroupContext) marshal(b *cryptobyte.Builder) {
	b.AddUint16(uint16(g.Version))
	b.AddUint16(uint16(g.CipherSuite))
	addOpaque(b, g.GroupID)
	b.AddUint64(g.Epoch)
	addOpaque(b, g.TreeHash)
	addOpaque(b, g.ConfirmedTranscriptHash)
	g.Extensions.marshal(b)
}

func (g *GroupContext) unmarshal(s *cryptobyte.String) bool {
	var v, cs uint16
	if !s.ReadUint16(&v) || ProtocolVersion(v) != MLS10 || !s.ReadUint16(&cs) {
		return false
	}
	g.Version, g.CipherSuite = ProtocolVersion(v), CipherSuite(cs)
	return readOpaque(s, &g.GroupID) && s.ReadUint64(&g.Epoch) &&
		readOpaque(s, &g.TreeHash) && readOpaque(s, &g.ConfirmedTranscriptHash) &&
		g.Extensions.unmarshal(s)
}

// HPKECiphertext is the output of EncryptWithLabel (§7.6).
type HPKECiphertext struct {
	KEMOutput  []byte
	Ciphertext []byte
}

func (c *HPKECiphertext) marshal(b *cryptobyte.Builder) {
	addOpaque(b, c.KEMOutput)
	addOpaque(b, c.Ciphertext)
}

func (c *HPKECiphertext) unmarshal(s *cryptobyte.String) bool {
	return readOpaque(s, &c.KEMOutput) && readOpaque(s, &c.Ciphertext)
}
