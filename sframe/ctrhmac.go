package sframe

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"encoding/binary"
	"hash"
	"slices"
)

// ctrHMAC is the AES-CTR with HMAC AEAD of RFC 9605 §4.5.1, an
// encrypt-then-MAC composition with a truncated tag.
//
// Unlike the AEADs of crypto/cipher it keeps scratch state, so it is not safe
// for concurrent use; its owner serializes calls.
type ctrHMAC struct {
	block  cipher.Block
	mac    hash.Hash
	tagLen int

	// Scratch space, kept here so that the per-frame path does not allocate.
	iv   [aes.BlockSize]byte
	lens [24]byte
	sum  []byte
}

func newCTRHMAC(encKey, authKey []byte, h func() hash.Hash, tagLen int) (*ctrHMAC, error) {
	block, err := aes.NewCipher(encKey)
	if err != nil {
		return nil, err
	}
	mac := hmac.New(h, authKey)
	return &ctrHMAC{block: block, mac: mac, tagLen: tagLen, sum: make([]byte, 0, mac.Size())}, nil
}

func (c *ctrHMAC) NonceSize() int { return nonceSize }
func (c *ctrHMAC) Overhead() int  { return c.tagLen }

func (c *ctrHMAC) Seal(dst, nonce, plaintext, additionalData []byte) []byte {
	ret := slices.Grow(dst, len(plaintext)+c.tagLen)
	ct := ret[len(dst) : len(dst)+len(plaintext)]
	c.xorKeyStream(ct, nonce, plaintext)
	return append(ret[:len(dst)+len(ct)], c.tag(nonce, additionalData, ct)...)
}

func (c *ctrHMAC) Open(dst, nonce, ciphertext, additionalData []byte) ([]byte, error) {
	if len(ciphertext) < c.tagLen {
		return nil, ErrAuth
	}
	ct, tag := ciphertext[:len(ciphertext)-c.tagLen], ciphertext[len(ciphertext)-c.tagLen:]
	if !hmac.Equal(c.tag(nonce, additionalData, ct), tag) {
		return nil, ErrAuth
	}
	ret := slices.Grow(dst, len(ct))[:len(dst)+len(ct)]
	c.xorKeyStream(ret[len(dst):], nonce, ct)
	return ret, nil
}

// xorKeyStream runs AES-CTR from the initial counter nonce || 0x00000000.
func (c *ctrHMAC) xorKeyStream(dst, nonce, src []byte) {
	copy(c.iv[:], nonce) // the last four bytes stay zero
	cipher.NewCTR(c.block, c.iv[:]).XORKeyStream(dst, src)
}

// tag computes the truncated HMAC over
// len(aad) || len(ct) || Nt || nonce || aad || ct, lengths as 8-byte
// big-endian integers.
func (c *ctrHMAC) tag(nonce, aad, ct []byte) []byte {
	binary.BigEndian.PutUint64(c.lens[0:], uint64(len(aad)))
	binary.BigEndian.PutUint64(c.lens[8:], uint64(len(ct)))
	binary.BigEndian.PutUint64(c.lens[16:], uint64(c.tagLen))
	c.mac.Reset()
	c.mac.Write(c.lens[:])
	c.mac.Write(nonce)
	c.mac.Write(aad)
	c.mac.Write(ct)
	c.sum = c.mac.Sum(c.sum[:0])
	return c.sum[:c.tagLen]
}
