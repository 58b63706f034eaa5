package mls

import (
	"crypto"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/hpke"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"hash"

	"crypto/aes"

	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/cryptobyte"
)

// CipherSuite is an MLS cipher suite identifier (RFC 9420 §17.1).
type CipherSuite uint16

// The cipher suites this package implements. Suites 0x0004 and 0x0006 need
// X448 and Ed448, which the Go standard library does not provide.
const (
	X25519_AES128GCM_SHA256_Ed25519        CipherSuite = 0x0001
	P256_AES128GCM_SHA256_P256             CipherSuite = 0x0002
	X25519_CHACHA20POLY1305_SHA256_Ed25519 CipherSuite = 0x0003
	P521_AES256GCM_SHA512_P521             CipherSuite = 0x0005
	P384_AES256GCM_SHA384_P384             CipherSuite = 0x0007
)

// DefaultCipherSuite is the suite Hush uses for new groups.
const DefaultCipherSuite = X25519_AES128GCM_SHA256_Ed25519

// ErrUnsupportedCipherSuite is returned for a suite this package lacks.
var ErrUnsupportedCipherSuite = errors.New("mls: unsupported cipher suite")

// SignatureScheme is a TLS SignatureScheme value (RFC 8446 §4.2.3).
type SignatureScheme uint16

const (
	ECDSA_P256_SHA256 SignatureScheme = 0x0403
	ECDSA_P384_SHA384 SignatureScheme = 0x0503
	ECDSA_P521_SHA512 SignatureScheme = 0x0603
	Ed25519           SignatureScheme = 0x0807
)

// suite holds everything a cipher suite determines. Every algorithm is a
// value here, so a new suite — for instance a hybrid post-quantum KEM such
// as hpke.MLKEM768X25519 — is one more table entry and nothing else.
type suite struct {
	id      CipherSuite
	newHash func() hash.Hash
	kem     hpke.KEM
	kdf     hpke.KDF
	aead    hpke.AEAD
	newAEAD func(key []byte) (cipher.AEAD, error)
	nk, nn  int // AEAD key and nonce sizes
	sig     signer
	hashLen int // newHash().Size(), set by init
}

func init() {
	for _, s := range suites {
		s.hashLen = s.newHash().Size()
	}
}

var suites = map[CipherSuite]*suite{
	X25519_AES128GCM_SHA256_Ed25519: {
		id: 1, newHash: sha256.New, kem: hpke.DHKEM(ecdh.X25519()), kdf: hpke.HKDFSHA256(),
		aead: hpke.AES128GCM(), newAEAD: newGCM, nk: 16, nn: 12, sig: ed25519Signer{},
	},
	P256_AES128GCM_SHA256_P256: {
		id: 2, newHash: sha256.New, kem: hpke.DHKEM(ecdh.P256()), kdf: hpke.HKDFSHA256(),
		aead: hpke.AES128GCM(), newAEAD: newGCM, nk: 16, nn: 12,
		sig: ecdsaSigner{scheme_: ECDSA_P256_SHA256, curve: elliptic.P256(), hash: crypto.SHA256},
	},
	X25519_CHACHA20POLY1305_SHA256_Ed25519: {
		id: 3, newHash: sha256.New, kem: hpke.DHKEM(ecdh.X25519()), kdf: hpke.HKDFSHA256(),
		aead: hpke.ChaCha20Poly1305(), newAEAD: chacha20poly1305.New, nk: 32, nn: 12, sig: ed25519Signer{},
	},
	P521_AES256GCM_SHA512_P521: {
		id: 5, newHash: sha512.New, kem: hpke.DHKEM(ecdh.P521()), kdf: hpke.HKDFSHA512(),
		aead: hpke.AES256GCM(), newAEAD: newGCM, nk: 32, nn: 12,
		sig: ecdsaSigner{scheme_: ECDSA_P521_SHA512, curve: elliptic.P521(), hash: crypto.SHA512},
	},
	P384_AES256GCM_SHA384_P384: {
		id: 7, newHash: sha512.New384, kem: hpke.DHKEM(ecdh.P384()), kdf: hpke.HKDFSHA384(),
		aead: hpke.AES256GCM(), newAEAD: newGCM, nk: 32, nn: 12,
		sig: ecdsaSigner{scheme_: ECDSA_P384_SHA384, curve: elliptic.P384(), hash: crypto.SHA384},
	},
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// Supported reports whether this package implements cs.
func (cs CipherSuite) Supported() bool { _, ok := suites[cs]; return ok }

func (cs CipherSuite) String() string {
	switch cs {
	case X25519_AES128GCM_SHA256_Ed25519:
		return "MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519"
	case P256_AES128GCM_SHA256_P256:
		return "MLS_128_DHKEMP256_AES128GCM_SHA256_P256"
	case X25519_CHACHA20POLY1305_SHA256_Ed25519:
		return "MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519"
	case P521_AES256GCM_SHA512_P521:
		return "MLS_256_DHKEMP521_AES256GCM_SHA512_P521"
	case P384_AES256GCM_SHA384_P384:
		return "MLS_256_DHKEMP384_AES256GCM_SHA384_P384"
	}
	return fmt.Sprintf("CipherSuite(0x%04x)", uint16(cs))
}

// lookupSuite returns the implementation of cs or ErrUnsupportedCipherSuite.
func lookupSuite(cs CipherSuite) (*suite, error) {
	s, ok := suites[cs]
	if !ok {
		return nil, fmt.Errorf("%w: 0x%04x", ErrUnsupportedCipherSuite, uint16(cs))
	}
	return s, nil
}

// nh is the output size of the suite's hash (and KDF.Nh).
func (s *suite) nh() int { return s.hashLen }

// hash hashes the concatenation of data.
func (s *suite) hash(data ...[]byte) []byte {
	h := s.newHash()
	for _, d := range data {
		h.Write(d)
	}
	return h.Sum(nil)
}

// refHash is RefHash(label, value) of §5.2.
func (s *suite) refHash(label string, value []byte) []byte {
	b := cryptobyte.NewBuilder(make([]byte, 0, len(label)+len(value)+8))
	addOpaque(b, []byte(label))
	addOpaque(b, value)
	return s.hash(b.BytesOrPanic())
}

func (s *suite) extract(salt, ikm []byte) []byte {
	out, err := hkdf.Extract(s.newHash, ikm, salt)
	if err != nil {
		panic("mls: hkdf extract: " + err.Error()) // cannot fail for HMAC hashes
	}
	return out
}

func (s *suite) expand(prk []byte, info []byte, length int) []byte {
	out, err := hkdf.Expand(s.newHash, prk, string(info), length)
	if err != nil {
		panic("mls: hkdf expand: " + err.Error()) // only on length > 255*Nh, never asked here
	}
	return out
}

// expandWithLabel is ExpandWithLabel of §8. The KDFLabel is built on the
// stack when it fits, as it does for every label of §9.1 and §6.3.2: the
// secret tree derives five values per message this way.
func (s *suite) expandWithLabel(secret []byte, label string, context []byte, length int) []byte {
	var buf [96]byte
	info := append(buf[:0], byte(length>>8), byte(length))
	info = appendVarint(info, len(labelPrefix)+len(label))
	info = append(info, labelPrefix...)
	info = append(info, label...)
	info = appendVarint(info, len(context))
	info = append(info, context...)
	return s.expand(secret, info, length)
}

// appendVarint appends n as a §2.1.2 variable-length integer. n is the
// length of a label or context this package passes, never above
// maxVectorLen.
func appendVarint(dst []byte, n int) []byte {
	switch {
	case n < 0 || n > maxVectorLen:
		panic("mls: vector too long for a variable-length integer")
	case n < 1<<6:
		return append(dst, byte(n))
	case n < 1<<14:
		return append(dst, byte(n>>8)|0x40, byte(n))
	}
	return append(dst, byte(n>>24)|0x80, byte(n>>16), byte(n>>8), byte(n))
}

// deriveSecret is DeriveSecret of §8.
func (s *suite) deriveSecret(secret []byte, label string) []byte {
	return s.expandWithLabel(secret, label, nil, s.nh())
}

// deriveTreeSecret is DeriveTreeSecret of §9.1.
func (s *suite) deriveTreeSecret(secret []byte, label string, generation uint32, length int) []byte {
	ctx := []byte{byte(generation >> 24), byte(generation >> 16), byte(generation >> 8), byte(generation)}
	return s.expandWithLabel(secret, label, ctx, length)
}

// mac is the suite's MAC (HMAC with its hash) of the concatenation of
// data.
func (s *suite) mac(key []byte, data ...[]byte) []byte {
	m := hmac.New(s.newHash, key)
	for _, d := range data {
		m.Write(d)
	}
	return m.Sum(nil)
}

// --- HPKE (§5.1.3) ---

// hpkeKeyPair derives the HPKE key pair of a node from a secret (§7.4: DeriveKeyPair).
func (s *suite) deriveKeyPair(ikm []byte) (priv, pub []byte, err error) {
	k, err := s.kem.DeriveKeyPair(ikm)
	if err != nil {
		return nil, nil, err
	}
	priv, err = k.Bytes()
	if err != nil {
		return nil, nil, err
	}
	return priv, k.PublicKey().Bytes(), nil
}

// generateKeyPair makes a fresh random HPKE key pair.
func (s *suite) generateKeyPair() (priv, pub []byte, err error) {
	k, err := s.kem.GenerateKey()
	if err != nil {
		return nil, nil, err
	}
	priv, err = k.Bytes()
	if err != nil {
		return nil, nil, err
	}
	return priv, k.PublicKey().Bytes(), nil
}

// validatePublicKey checks that pub is a valid HPKE public key of the suite.
func (s *suite) validatePublicKey(pub []byte) error {
	_, err := s.kem.NewPublicKey(pub)
	return err
}

// hpkePublicFromPrivate returns the public key that belongs to priv.
func (s *suite) hpkePublicFromPrivate(priv []byte) ([]byte, error) {
	k, err := s.kem.NewPrivateKey(priv)
	if err != nil {
		return nil, err
	}
	return k.PublicKey().Bytes(), nil
}

func encryptContext(label string, context []byte) []byte {
	b := cryptobyte.NewBuilder(nil)
	addLabel(b, label)
	addOpaque(b, context)
	return b.BytesOrPanic()
}

// encryptWithLabel is EncryptWithLabel of §5.1.3.
func (s *suite) encryptWithLabel(pub []byte, label string, context, plaintext []byte) (kemOutput, ciphertext []byte, err error) {
	pk, err := s.kem.NewPublicKey(pub)
	if err != nil {
		return nil, nil, fmt.Errorf("mls: invalid HPKE public key: %w", err)
	}
	enc, sender, err := hpke.NewSender(pk, s.kdf, s.aead, encryptContext(label, context))
	if err != nil {
		return nil, nil, err
	}
	ct, err := sender.Seal(nil, plaintext)
	if err != nil {
		return nil, nil, err
	}
	return enc, ct, nil
}

// errDecrypt is the one opaque error every failed decryption returns, so a
// peer learns nothing from which check failed.
var errDecrypt = errors.New("mls: decryption failed")

// decryptWithLabel is DecryptWithLabel of §5.1.3.
func (s *suite) decryptWithLabel(priv []byte, label string, context, kemOutput, ciphertext []byte) ([]byte, error) {
	k, err := s.kem.NewPrivateKey(priv)
	if err != nil {
		return nil, errDecrypt
	}
	r, err := hpke.NewRecipient(kemOutput, k, s.kdf, s.aead, encryptContext(label, context))
	if err != nil {
		return nil, errDecrypt
	}
	pt, err := r.Open(nil, ciphertext)
	if err != nil {
		return nil, errDecrypt
	}
	return pt, nil
}

// exportExternal runs SetupBaseS(pub, "") and exports the external init
// secret (§8.3), returning kem_output and the secret.
func (s *suite) exportExternal(pub []byte) (kemOutput, secret []byte, err error) {
	pk, err := s.kem.NewPublicKey(pub)
	if err != nil {
		return nil, nil, fmt.Errorf("mls: invalid external public key: %w", err)
	}
	enc, sender, err := hpke.NewSender(pk, s.kdf, hpke.ExportOnly(), nil)
	if err != nil {
		return nil, nil, err
	}
	secret, err = sender.Export("MLS 1.0 external init secret", s.nh())
	return enc, secret, err
}

// importExternal is the receiving side of exportExternal.
func (s *suite) importExternal(priv, kemOutput []byte) ([]byte, error) {
	k, err := s.kem.NewPrivateKey(priv)
	if err != nil {
		return nil, errDecrypt
	}
	r, err := hpke.NewRecipient(kemOutput, k, s.kdf, hpke.ExportOnly(), nil)
	if err != nil {
		return nil, errDecrypt
	}
	return r.Export("MLS 1.0 external init secret", s.nh())
}

// --- Signatures (§5.1.2) ---

// signer is one signature algorithm. Private keys are the byte forms of the
// test vectors: an Ed25519 seed, or an ECDSA scalar (big-endian).
type signer interface {
	scheme() SignatureScheme
	generate() (priv, pub []byte, err error)
	public(priv []byte) ([]byte, error)
	sign(priv, msg []byte) ([]byte, error)
	verify(pub, msg, sig []byte) bool
	validatePublic(pub []byte) error
}

type ed25519Signer struct{}

func (ed25519Signer) scheme() SignatureScheme { return Ed25519 }

func (ed25519Signer) generate() (priv, pub []byte, err error) {
	p, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	return k.Seed(), p, nil
}

func (ed25519Signer) public(priv []byte) ([]byte, error) {
	if len(priv) != ed25519.SeedSize {
		return nil, errors.New("mls: invalid Ed25519 private key")
	}
	return ed25519.NewKeyFromSeed(priv).Public().(ed25519.PublicKey), nil
}

func (ed25519Signer) sign(priv, msg []byte) ([]byte, error) {
	if len(priv) != ed25519.SeedSize {
		return nil, errors.New("mls: invalid Ed25519 private key")
	}
	return ed25519.Sign(ed25519.NewKeyFromSeed(priv), msg), nil
}

func (ed25519Signer) verify(pub, msg, sig []byte) bool {
	return len(pub) == ed25519.PublicKeySize && ed25519.Verify(pub, msg, sig)
}

func (ed25519Signer) validatePublic(pub []byte) error {
	if len(pub) != ed25519.PublicKeySize {
		return errors.New("mls: invalid Ed25519 public key")
	}
	return nil
}

type ecdsaSigner struct {
	scheme_ SignatureScheme
	curve   elliptic.Curve
	hash    crypto.Hash
}

// scheme is a field named scheme_ to keep the interface method name free.
func (e ecdsaSigner) scheme() SignatureScheme { return e.scheme_ }

func (e ecdsaSigner) generate() (priv, pub []byte, err error) {
	k, err := ecdsa.GenerateKey(e.curve, rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	priv, err = k.Bytes()
	if err != nil {
		return nil, nil, err
	}
	pub, err = k.PublicKey.Bytes()
	return priv, pub, err
}

// parse reads an ECDSA scalar. The test vectors, like
// Field-Element-to-Octet-String implementations that drop leading zeros,
// may give it shorter than the curve's width: it is left-padded.
func (e ecdsaSigner) parse(priv []byte) (*ecdsa.PrivateKey, error) {
	size := (e.curve.Params().BitSize + 7) / 8
	if len(priv) == 0 || len(priv) > size {
		return nil, errors.New("mls: invalid ECDSA private key")
	}
	if len(priv) < size {
		padded := make([]byte, size)
		copy(padded[size-len(priv):], priv)
		defer clear(padded)
		priv = padded
	}
	k, err := ecdsa.ParseRawPrivateKey(e.curve, priv)
	if err != nil {
		return nil, errors.New("mls: invalid ECDSA private key")
	}
	return k, nil
}

func (e ecdsaSigner) public(priv []byte) ([]byte, error) {
	k, err := e.parse(priv)
	if err != nil {
		return nil, errors.New("mls: invalid ECDSA private key")
	}
	return k.PublicKey.Bytes()
}

func (e ecdsaSigner) sign(priv, msg []byte) ([]byte, error) {
	k, err := e.parse(priv)
	if err != nil {
		return nil, errors.New("mls: invalid ECDSA private key")
	}
	h := e.hash.New()
	h.Write(msg)
	return ecdsa.SignASN1(rand.Reader, k, h.Sum(nil))
}

func (e ecdsaSigner) verify(pub, msg, sig []byte) bool {
	k, err := ecdsa.ParseUncompressedPublicKey(e.curve, pub)
	if err != nil {
		return false
	}
	h := e.hash.New()
	h.Write(msg)
	return ecdsa.VerifyASN1(k, h.Sum(nil), sig)
}

func (e ecdsaSigner) validatePublic(pub []byte) error {
	if _, err := ecdsa.ParseUncompressedPublicKey(e.curve, pub); err != nil {
		return errors.New("mls: invalid ECDSA public key")
	}
	return nil
}

// labelPrefix starts every label of §5.1.2, §5.1.3 and §8.
const labelPrefix = "MLS 1.0 "

// addLabel appends opaque label<V> with "MLS 1.0 " prepended to label.
func addLabel(b *cryptobyte.Builder, label string) {
	addVarint(b, len(labelPrefix)+len(label))
	b.AddBytes([]byte(labelPrefix))
	b.AddBytes([]byte(label))
}

// signContent returns SignContent (§5.1.2) for label and the content that
// is the concatenation of the pieces content, in one buffer: the message
// that is signed.
func signContent(label string, content ...[]byte) []byte {
	n := 0
	for _, c := range content {
		n += len(c)
	}
	b := cryptobyte.NewBuilder(make([]byte, 0, len(labelPrefix)+len(label)+n+8))
	addLabel(b, label)
	addVarint(b, n)
	for _, c := range content {
		b.AddBytes(c)
	}
	return b.BytesOrPanic()
}

// signWithLabel is SignWithLabel of §5.1.2.
func (s *suite) signWithLabel(priv []byte, label string, content []byte) ([]byte, error) {
	return s.sig.sign(priv, signContent(label, content))
}

// verifyWithLabel is VerifyWithLabel of §5.1.2 of signature sig, over the
// content that is the concatenation of the pieces content.
func (s *suite) verifyWithLabel(pub, sig []byte, label string, content ...[]byte) bool {
	return s.sig.verify(pub, signContent(label, content...), sig)
}
