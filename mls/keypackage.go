package mls

import (
	"bytes"
	"time"

	"golang.org/x/crypto/cryptobyte"
)

// KeyPackages (RFC 9420 §10): a client's signed, pre-published offer to be
// added to a group.

// KeyPackage lets others add its client to a group (§10). InitKey is the
// HPKE key the Welcome's group secrets are encrypted to; Signature is
// SignWithLabel(., "KeyPackageTBS", KeyPackageTBS) by LeafNode.SignatureKey.
type KeyPackage struct {
	Version     ProtocolVersion
	CipherSuite CipherSuite
	InitKey     []byte
	LeafNode    LeafNode
	Extensions  Extensions
	Signature   []byte
}

// marshalTBS writes KeyPackageTBS: every field but the signature.
func (kp *KeyPackage) marshalTBS(b *cryptobyte.Builder) {
	b.AddUint16(uint16(kp.Version))
	b.AddUint16(uint16(kp.CipherSuite))
	addOpaque(b, kp.InitKey)
	kp.LeafNode.marshal(b)
	kp.Extensions.marshal(b)
}

func (kp *KeyPackage) marshal(b *cryptobyte.Builder) {
	kp.marshalTBS(b)
	addOpaque(b, kp.Signature)
}

// unmarshal decodes a KeyPackage. The version is kept as sent and checked
// by validateKeyPackage, which can say why the package is unacceptable.
func (kp *KeyPackage) unmarshal(s *cryptobyte.String) bool {
	var v, cs uint16
	if !s.ReadUint16(&v) || !s.ReadUint16(&cs) {
		return false
	}
	kp.Version, kp.CipherSuite = ProtocolVersion(v), CipherSuite(cs)
	return readOpaque(s, &kp.InitKey) && kp.LeafNode.unmarshal(s) &&
		kp.Extensions.unmarshal(s) && readOpaque(s, &kp.Signature)
}

// tbs returns the encoded KeyPackageTBS.
func (kp *KeyPackage) tbs() ([]byte, error) {
	b := cryptobyte.NewBuilder(nil)
	kp.marshalTBS(b)
	return b.Bytes()
}

// sign sets kp.Signature; key must be the private key of
// kp.LeafNode.SignatureKey.
func (kp *KeyPackage) sign(key *SignatureKey) error {
	tbs, err := kp.tbs()
	if err != nil {
		return err
	}
	sig, err := key.signWithLabel("KeyPackageTBS", tbs)
	if err != nil {
		return err
	}
	kp.Signature = sig
	return nil
}

// verifySignature checks kp.Signature against kp.LeafNode.SignatureKey.
func (kp *KeyPackage) verifySignature(s *suite) bool {
	tbs, err := kp.tbs()
	return err == nil && s.verifyWithLabel(kp.LeafNode.SignatureKey, kp.Signature, "KeyPackageTBS", tbs)
}

// IsLastResort reports whether kp carries the last_resort extension, which
// marks a KeyPackage its owner lets be used more than once.
func (kp *KeyPackage) IsLastResort() bool { return kp.Extensions.Has(ExtLastResort) }

// KeyPackageRef names a KeyPackage (§5.2):
// RefHash("MLS 1.0 KeyPackage Reference", KeyPackage).
type KeyPackageRef []byte

const keyPackageRefLabel = "MLS 1.0 KeyPackage Reference"

// Ref returns the KeyPackageRef of kp under its own cipher suite.
func (kp *KeyPackage) Ref() (KeyPackageRef, error) {
	s, err := lookupSuite(kp.CipherSuite)
	if err != nil {
		return nil, err
	}
	return makeKeyPackageRef(s, kp)
}

func makeKeyPackageRef(s *suite, kp *KeyPackage) (KeyPackageRef, error) {
	data, err := encode(kp)
	if err != nil {
		return nil, err
	}
	return s.refHash(keyPackageRefLabel, data), nil
}

// Marshal returns the encoding of kp (without an MLSMessage envelope).
func (kp *KeyPackage) Marshal() ([]byte, error) { return encode(kp) }

// DefaultMaxLifetime is the longest lifetime range of a KeyPackage's leaf
// this package accepts unless told otherwise. §7.2 has every application
// bound the total lifetime, so that a stolen KeyPackage cannot be used
// forever.
const DefaultMaxLifetime = 90 * 24 * time.Hour

// checkLifetime checks a key_package leaf's lifetime (§7.2, §7.3): now lies
// within [NotBefore, NotAfter], and the range is at most maxLifetime long
// (a negative maxLifetime sets no bound).
func checkLifetime(lt Lifetime, now time.Time, maxLifetime time.Duration) error {
	if lt.NotAfter < lt.NotBefore {
		return errorf("leaf lifetime ends before it starts")
	}
	if maxLifetime >= 0 && lt.NotAfter-lt.NotBefore > uint64(maxLifetime/time.Second) {
		return errorf("leaf lifetime spans more than %v", maxLifetime)
	}
	unix := now.Unix()
	if unix < 0 || uint64(unix) < lt.NotBefore {
		return errorf("leaf lifetime has not started")
	}
	if uint64(unix) > lt.NotAfter {
		return errorf("leaf lifetime has expired")
	}
	return nil
}

// validateKeyPackage runs the checks of §10.1 that need no group state: the
// version and cipher suite are the group's (cs), the leaf was made for a
// KeyPackage, is validly signed and within its lifetime at now (a range no
// longer than maxLifetime), the KeyPackage signature verifies, and the init
// key is a valid HPKE key distinct from the leaf's encryption key. The
// checks of the leaf against the group (capabilities, required
// capabilities, uniqueness of its keys in the tree; §7.3) are the caller's.
func validateKeyPackage(kp *KeyPackage, cs CipherSuite, now time.Time, maxLifetime time.Duration) error {
	if kp.Version != MLS10 {
		return errorf("KeyPackage version %d, want mls10", kp.Version)
	}
	if kp.CipherSuite != cs {
		return errorf("KeyPackage cipher suite %v, group uses %v", kp.CipherSuite, cs)
	}
	s, err := lookupSuite(cs)
	if err != nil {
		return err
	}
	leaf := &kp.LeafNode
	if leaf.Source != SourceKeyPackage {
		return errorf("KeyPackage leaf has source %d, want key_package", leaf.Source)
	}
	if !leaf.verifySignature(s, nil, 0) {
		return badSignature(s, leaf.SignatureKey, "KeyPackage leaf node")
	}
	if err := checkLifetime(leaf.Lifetime, now, maxLifetime); err != nil {
		return err
	}
	if !kp.verifySignature(s) {
		return errorf("KeyPackage signature does not verify")
	}
	if err := s.validatePublicKey(kp.InitKey); err != nil {
		return errorf("KeyPackage init key is not a valid HPKE public key")
	}
	if bytes.Equal(kp.InitKey, leaf.EncryptionKey) {
		return errorf("KeyPackage init key equals the leaf encryption key")
	}
	return nil
}

// newKeyPackage makes a KeyPackage for the client that owns key. The caller
// fills leaf's Credential, Capabilities, Lifetime and Extensions; this
// function sets fresh encryption and init key pairs, the signature key and
// source, and signs the leaf and the package. It returns the private init
// and encryption keys, which the client keeps until the package is used.
func newKeyPackage(key *SignatureKey, leaf LeafNode, exts Extensions) (kp *KeyPackage, initPriv, encPriv []byte, err error) {
	s := key.suite
	encPriv, encPub, err := s.generateKeyPair()
	if err != nil {
		return nil, nil, nil, err
	}
	initPriv, initPub, err := s.generateKeyPair()
	if err != nil {
		clear(encPriv)
		return nil, nil, nil, err
	}
	leaf.EncryptionKey = encPub
	leaf.SignatureKey = key.Public()
	leaf.Source = SourceKeyPackage
	leaf.ParentHash = nil
	kp = &KeyPackage{Version: MLS10, CipherSuite: s.id, InitKey: initPub, LeafNode: leaf, Extensions: exts}
	if err = signKeyPackageLeaf(key, &kp.LeafNode); err == nil {
		err = kp.sign(key)
	}
	if err != nil {
		clear(encPriv)
		clear(initPriv)
		return nil, nil, nil, err
	}
	return kp, initPriv, encPriv, nil
}

// signKeyPackageLeaf sets the signature of a key_package leaf, which binds
// it to no group (§7.2).
func signKeyPackageLeaf(key *SignatureKey, leaf *LeafNode) error {
	tbs := leaf.tbs(nil, 0)
	if tbs == nil {
		return errorf("leaf node cannot be encoded")
	}
	sig, err := key.signWithLabel("LeafNodeTBS", tbs)
	if err != nil {
		return err
	}
	leaf.Signature = sig
	return nil
}
