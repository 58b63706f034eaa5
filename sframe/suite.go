package sframe

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
)

// CipherSuite identifies an SFrame cipher suite by its IANA value
// (RFC 9605 §4.5 and §8.1). Every party to a media stream must use the same
// suite; choosing it is up to the application.
type CipherSuite uint16

// The cipher suites of RFC 9605 §4.5. The AES-CTR-HMAC suites trade
// authentication strength for bandwidth (see "Security considerations" in
// the package documentation); AES_128_GCM_SHA256_128 is a sound default.
const (
	AES_128_CTR_HMAC_SHA256_80 CipherSuite = 0x0001
	AES_128_CTR_HMAC_SHA256_64 CipherSuite = 0x0002
	AES_128_CTR_HMAC_SHA256_32 CipherSuite = 0x0003
	AES_128_GCM_SHA256_128     CipherSuite = 0x0004
	AES_256_GCM_SHA512_128     CipherSuite = 0x0005
)

// ErrUnsupportedSuite is returned when a CipherSuite is not one of the
// suites this package implements.
var ErrUnsupportedSuite = errors.New("sframe: unsupported cipher suite")

// nonceSize is AEAD.Nn, the same for every suite.
const nonceSize = 12

// suiteParams holds the constants of RFC 9605 Table 1.
type suiteParams struct {
	name string
	hash func() hash.Hash
	nka  int // AES key size of the AES-CTR-HMAC suites; 0 for GCM
	nk   int // AEAD key size: Nka+Nh for AES-CTR-HMAC
	nt   int // tag size
}

var suites = [...]suiteParams{
	AES_128_CTR_HMAC_SHA256_80: {"AES_128_CTR_HMAC_SHA256_80", sha256.New, 16, 48, 10},
	AES_128_CTR_HMAC_SHA256_64: {"AES_128_CTR_HMAC_SHA256_64", sha256.New, 16, 48, 8},
	AES_128_CTR_HMAC_SHA256_32: {"AES_128_CTR_HMAC_SHA256_32", sha256.New, 16, 48, 4},
	AES_128_GCM_SHA256_128:     {"AES_128_GCM_SHA256_128", sha256.New, 0, 16, 16},
	AES_256_GCM_SHA512_128:     {"AES_256_GCM_SHA512_128", sha512.New, 0, 32, 16},
}

// params returns the suite's constants, or nil if s is not supported.
func (s CipherSuite) params() *suiteParams {
	if int(s) >= len(suites) || suites[s].name == "" {
		return nil
	}
	return &suites[s]
}

// String returns the suite's IANA name.
func (s CipherSuite) String() string {
	if p := s.params(); p != nil {
		return p.name
	}
	return fmt.Sprintf("CipherSuite(0x%04x)", uint16(s))
}

// Overhead returns the length of the authentication tag the suite appends
// to each frame (AEAD.Nt), or 0 for an unsupported suite. A frame is
// [Header.Len] + Overhead bytes longer than its plaintext.
func (s CipherSuite) Overhead() int {
	if p := s.params(); p != nil {
		return p.nt
	}
	return 0
}

// sframeSecret computes sframe_secret = HKDF-Extract("", base_key)
// (RFC 9605 §4.4.2).
func (p *suiteParams) sframeSecret(baseKey []byte) ([]byte, error) {
	return hkdf.Extract(p.hash, baseKey, nil)
}

// deriveKeySalt computes sframe_key and sframe_salt for kid from
// sframe_secret (RFC 9605 §4.4.2).
func (p *suiteParams) deriveKeySalt(s CipherSuite, kid uint64, secret []byte) (key, salt []byte, err error) {
	key, err = hkdf.Expand(p.hash, secret, label("SFrame 1.0 Secret key ", kid, s), p.nk)
	if err != nil {
		return nil, nil, err
	}
	salt, err = hkdf.Expand(p.hash, secret, label("SFrame 1.0 Secret salt ", kid, s), nonceSize)
	if err != nil {
		clear(key)
		return nil, nil, err
	}
	return key, salt, nil
}

// label returns prefix + KID + cipher_suite, with the KID as an 8-byte and
// the suite as a 2-byte big-endian integer.
func label(prefix string, kid uint64, s CipherSuite) string {
	b := binary.BigEndian.AppendUint64([]byte(prefix), kid)
	return string(binary.BigEndian.AppendUint16(b, uint16(s)))
}

// newAEAD returns the suite's AEAD keyed with sframe_key. The result keeps
// no reference to key.
func (p *suiteParams) newAEAD(key []byte) (cipher.AEAD, error) {
	if p.nka == 0 {
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, err
		}
		return cipher.NewGCM(block)
	}
	return newCTRHMAC(key[:p.nka], key[p.nka:], p.hash, p.nt)
}

// formNonce sets nonce to sframe_salt XOR CTR, with the CTR encoded as a
// big-endian integer of AEAD.Nn bytes (RFC 9605 §4.4.3).
func formNonce(nonce, salt *[nonceSize]byte, ctr uint64) {
	*nonce = *salt
	binary.BigEndian.PutUint64(nonce[4:], binary.BigEndian.Uint64(salt[4:])^ctr)
}
