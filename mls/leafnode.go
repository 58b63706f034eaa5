package mls

import (
	"bytes"
	"slices"

	"golang.org/x/crypto/cryptobyte"
)

// LeafNodeSource says in which context a LeafNode was made (§7.2).
type LeafNodeSource uint8

const (
	SourceKeyPackage LeafNodeSource = 1
	SourceUpdate     LeafNodeSource = 2
	SourceCommit     LeafNodeSource = 3
)

// LeafNode is a member's leaf in the ratchet tree (§7.2).
type LeafNode struct {
	EncryptionKey []byte // HPKEPublicKey
	SignatureKey  []byte // SignaturePublicKey
	Credential    Credential
	Capabilities  Capabilities
	Source        LeafNodeSource
	Lifetime      Lifetime // when Source == SourceKeyPackage
	ParentHash    []byte   // when Source == SourceCommit
	Extensions    Extensions
	Signature     []byte
}

// marshalTBSFields writes the fields shared by LeafNode and LeafNodeTBS.
func (l *LeafNode) marshalContent(b *cryptobyte.Builder) {
	addOpaque(b, l.EncryptionKey)
	addOpaque(b, l.SignatureKey)
	l.Credential.marshal(b)
	l.Capabilities.marshal(b)
	b.AddUint8(uint8(l.Source))
	switch l.Source {
	case SourceKeyPackage:
		b.AddUint64(l.Lifetime.NotBefore)
		b.AddUint64(l.Lifetime.NotAfter)
	case SourceUpdate:
	case SourceCommit:
		addOpaque(b, l.ParentHash)
	default:
		b.SetError(errorf("unknown leaf node source %d", l.Source))
	}
	l.Extensions.marshal(b)
}

func (l *LeafNode) marshal(b *cryptobyte.Builder) {
	l.marshalContent(b)
	addOpaque(b, l.Signature)
}

func (l *LeafNode) unmarshal(s *cryptobyte.String) bool {
	var src uint8
	if !readOpaque(s, &l.EncryptionKey) || !readOpaque(s, &l.SignatureKey) ||
		!l.Credential.unmarshal(s) || !l.Capabilities.unmarshal(s) || !s.ReadUint8(&src) {
		return false
	}
	l.Source = LeafNodeSource(src)
	l.Lifetime, l.ParentHash = Lifetime{}, nil
	switch l.Source {
	case SourceKeyPackage:
		if !s.ReadUint64(&l.Lifetime.NotBefore) || !s.ReadUint64(&l.Lifetime.NotAfter) {
			return false
		}
	case SourceUpdate:
	case SourceCommit:
		if !readOpaque(s, &l.ParentHash) {
			return false
		}
	default:
		return false
	}
	return l.Extensions.unmarshal(s) && readOpaque(s, &l.Signature)
}

// tbs returns LeafNodeTBS: the content, then for update and commit leaves
// the group id and leaf index that bind the leaf to its place.
func (l *LeafNode) tbs(groupID []byte, index leafIndex) []byte {
	b := cryptobyte.NewBuilder(nil)
	l.marshalContent(b)
	if l.Source == SourceUpdate || l.Source == SourceCommit {
		addOpaque(b, groupID)
		b.AddUint32(uint32(index))
	}
	out, err := b.Bytes()
	if err != nil {
		return nil
	}
	return out
}

// sign sets l.Signature with the signature private key priv.
func (l *LeafNode) sign(s *suite, priv []byte, groupID []byte, index leafIndex) error {
	tbs := l.tbs(groupID, index)
	if tbs == nil {
		return errorf("leaf node cannot be encoded")
	}
	sig, err := s.signWithLabel(priv, "LeafNodeTBS", tbs)
	if err != nil {
		return err
	}
	l.Signature = sig
	return nil
}

// verifySignature checks l.Signature against l.SignatureKey.
func (l *LeafNode) verifySignature(s *suite, groupID []byte, index leafIndex) bool {
	tbs := l.tbs(groupID, index)
	return tbs != nil && s.verifyWithLabel(l.SignatureKey, l.Signature, "LeafNodeTBS", tbs)
}

// clone returns a deep copy of l, safe to modify.
func (l *LeafNode) clone() *LeafNode {
	c := *l
	c.EncryptionKey = bytes.Clone(l.EncryptionKey)
	c.SignatureKey = bytes.Clone(l.SignatureKey)
	c.Credential.Identity = bytes.Clone(l.Credential.Identity)
	c.Credential.Certificates = cloneAll(l.Credential.Certificates)
	c.Capabilities = Capabilities{
		Versions:     slices.Clone(l.Capabilities.Versions),
		CipherSuites: slices.Clone(l.Capabilities.CipherSuites),
		Extensions:   slices.Clone(l.Capabilities.Extensions),
		Proposals:    slices.Clone(l.Capabilities.Proposals),
		Credentials:  slices.Clone(l.Capabilities.Credentials),
	}
	c.ParentHash = bytes.Clone(l.ParentHash)
	c.Extensions = l.Extensions.clone()
	c.Signature = bytes.Clone(l.Signature)
	return &c
}

func cloneAll(bs [][]byte) [][]byte {
	if bs == nil {
		return nil
	}
	out := make([][]byte, len(bs))
	for i, b := range bs {
		out[i] = bytes.Clone(b)
	}
	return out
}

// clone returns a deep copy of es.
func (es Extensions) clone() Extensions {
	if es == nil {
		return nil
	}
	out := make(Extensions, len(es))
	for i, e := range es {
		out[i] = Extension{Type: e.Type, Data: bytes.Clone(e.Data)}
	}
	return out
}
