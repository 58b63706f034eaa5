package mls

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
)

// SignatureKey is a member's signature private key (§5.1.2) for one cipher
// suite. It is secret: it never prints itself, and it cannot be compared
// with == (that would not be constant time).
type SignatureKey struct {
	_      [0]func()
	suite  *suite
	priv   []byte // the vector byte form: Ed25519 seed or ECDSA scalar
	pub    []byte
	signer crypto.Signer // parsed once, so signing a message costs only the signature
}

// GenerateSignatureKey makes a fresh signature key pair for cs.
func GenerateSignatureKey(cs CipherSuite) (*SignatureKey, error) {
	s, err := lookupSuite(cs)
	if err != nil {
		return nil, err
	}
	priv, _, err := s.sig.generate()
	if err != nil {
		return nil, err
	}
	return newSignatureKey(s, priv)
}

// ParseSignatureKey restores a key saved with [SignatureKey.Bytes].
func ParseSignatureKey(cs CipherSuite, priv []byte) (*SignatureKey, error) {
	s, err := lookupSuite(cs)
	if err != nil {
		return nil, err
	}
	return newSignatureKey(s, priv)
}

func newSignatureKey(s *suite, priv []byte) (*SignatureKey, error) {
	pub, err := s.sig.public(priv)
	if err != nil {
		return nil, err
	}
	k := &SignatureKey{suite: s, priv: append([]byte(nil), priv...), pub: pub}
	switch sg := s.sig.(type) {
	case ed25519Signer:
		k.signer = ed25519.NewKeyFromSeed(priv)
	case ecdsaSigner:
		ek, err := sg.parse(priv)
		if err != nil {
			return nil, err
		}
		k.signer = ek
	default:
		return nil, errors.New("mls: unsupported signature scheme")
	}
	return k, nil
}

// Public returns the SignaturePublicKey.
func (k *SignatureKey) Public() []byte { return k.pub }

// CipherSuite returns the suite the key belongs to.
func (k *SignatureKey) CipherSuite() CipherSuite { return k.suite.id }

// Bytes returns the private key in its serialized form. It is secret.
func (k *SignatureKey) Bytes() []byte { return append([]byte(nil), k.priv...) }

// String never reveals the key.
func (k *SignatureKey) String() string { return "mls.SignatureKey(redacted)" }

// signWithLabel is SignWithLabel (§5.1.2) with the pre-parsed key, over
// the content that is the concatenation of the pieces content.
func (k *SignatureKey) signWithLabel(label string, content ...[]byte) ([]byte, error) {
	return k.sign(signContent(label, content...))
}

// sign signs msg, a SignContent (§5.1.2) already built.
func (k *SignatureKey) sign(msg []byte) ([]byte, error) {
	switch sg := k.suite.sig.(type) {
	case ecdsaSigner:
		h := sg.hash.New()
		h.Write(msg)
		return k.signer.Sign(rand.Reader, h.Sum(nil), sg.hash)
	default:
		return k.signer.Sign(rand.Reader, msg, crypto.Hash(0))
	}
}
