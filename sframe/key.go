package sframe

import (
	"crypto/cipher"
	"errors"
)

// ErrAuth is returned when a frame fails authentication: a wrong key, or a
// header, ciphertext, tag or metadata that was modified. Every such failure
// returns this one error, so a caller learns nothing about which check
// failed.
var ErrAuth = errors.New("sframe: message authentication failed")

// frameKey is the key material for one KID, derived once so that per-frame
// work is only the AEAD. It is not safe for concurrent use: its owner
// serializes calls.
type frameKey struct {
	aead cipher.AEAD
	salt [nonceSize]byte

	// Scratch space, kept here so that the per-frame path does not allocate.
	nonce [nonceSize]byte
	aad   []byte
}

// newFrameKey derives the key and salt for kid from baseKey
// (RFC 9605 §4.4.2) and prepares the suite's AEAD. It keeps no reference to
// baseKey and erases the intermediate secrets it derived.
func newFrameKey(s CipherSuite, kid uint64, baseKey []byte) (*frameKey, error) {
	p := s.params()
	if p == nil {
		return nil, ErrUnsupportedSuite
	}
	if len(baseKey) == 0 {
		return nil, errors.New("sframe: empty base key")
	}
	secret, err := p.sframeSecret(baseKey)
	if err != nil {
		return nil, err
	}
	defer clear(secret)
	key, salt, err := p.deriveKeySalt(s, kid, secret)
	if err != nil {
		return nil, err
	}
	defer clear(key)
	defer clear(salt)
	aead, err := p.newAEAD(key)
	if err != nil {
		return nil, err
	}
	k := &frameKey{aead: aead}
	copy(k.salt[:], salt)
	return k, nil
}

// seal appends the SFrame ciphertext of plaintext under h to dst
// (RFC 9605 §4.4.3).
func (k *frameKey) seal(dst []byte, h Header, metadata, plaintext []byte) []byte {
	k.aad = append(h.Append(k.aad[:0]), metadata...)
	formNonce(&k.nonce, &k.salt, h.CTR)
	dst = append(dst, k.aad[:len(k.aad)-len(metadata)]...)
	return k.aead.Seal(dst, k.nonce[:], plaintext, k.aad)
}

// open appends the plaintext of the SFrame ciphertext frame, whose header h
// is n bytes long, to dst (RFC 9605 §4.4.4).
func (k *frameKey) open(dst []byte, h Header, n int, metadata, frame []byte) ([]byte, error) {
	k.aad = append(append(k.aad[:0], frame[:n]...), metadata...)
	formNonce(&k.nonce, &k.salt, h.CTR)
	out, err := k.aead.Open(dst, k.nonce[:], frame[n:], k.aad)
	if err != nil {
		return nil, ErrAuth
	}
	return out, nil
}

// erase drops the AEAD and clears the key material k holds. The AES key
// schedule inside crypto/aes cannot be wiped; dropping the reference is the
// most Go allows.
func (k *frameKey) erase() {
	k.aead = nil
	clear(k.salt[:])
	clear(k.nonce[:])
	clear(k.aad)
}
