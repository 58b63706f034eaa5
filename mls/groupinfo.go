package mls

import (
	"golang.org/x/crypto/cryptobyte"
)

// GroupInfo (RFC 9420 §12.4.3): the signed description of a group's
// current epoch that a new member needs to join, sent inside a Welcome or
// published for external joiners.

// GroupInfo describes an epoch of a group (§12.4.3). Signature is
// SignWithLabel(., "GroupInfoTBS", GroupInfoTBS) by the member at leaf
// index Signer; ConfirmationTag is the epoch's confirmation tag.
type GroupInfo struct {
	GroupContext    GroupContext
	Extensions      Extensions
	ConfirmationTag []byte
	Signer          uint32
	Signature       []byte
}

// marshalTBS writes GroupInfoTBS: every field but the signature.
func (gi *GroupInfo) marshalTBS(b *cryptobyte.Builder) {
	gi.GroupContext.marshal(b)
	gi.Extensions.marshal(b)
	addOpaque(b, gi.ConfirmationTag)
	b.AddUint32(gi.Signer)
}

func (gi *GroupInfo) marshal(b *cryptobyte.Builder) {
	gi.marshalTBS(b)
	addOpaque(b, gi.Signature)
}

func (gi *GroupInfo) unmarshal(s *cryptobyte.String) bool {
	return gi.GroupContext.unmarshal(s) && gi.Extensions.unmarshal(s) &&
		readOpaque(s, &gi.ConfirmationTag) && s.ReadUint32(&gi.Signer) &&
		readOpaque(s, &gi.Signature)
}

func (gi *GroupInfo) tbs() ([]byte, error) {
	b := cryptobyte.NewBuilder(nil)
	gi.marshalTBS(b)
	return b.Bytes()
}

// sign sets gi.Signature; key must belong to the member at gi.Signer.
func (gi *GroupInfo) sign(key *SignatureKey) error {
	tbs, err := gi.tbs()
	if err != nil {
		return err
	}
	sig, err := key.signWithLabel("GroupInfoTBS", tbs)
	if err != nil {
		return err
	}
	gi.Signature = sig
	return nil
}

// verifySignature checks gi.Signature against pub, the signature key of the
// leaf at gi.Signer.
func (gi *GroupInfo) verifySignature(s *suite, pub []byte) bool {
	tbs, err := gi.tbs()
	return err == nil && s.verifyWithLabel(pub, gi.Signature, "GroupInfoTBS", tbs)
}

// Marshal returns the encoding of gi (without an MLSMessage envelope).
func (gi *GroupInfo) Marshal() ([]byte, error) { return encode(gi) }
