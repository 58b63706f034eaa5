package client

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/crypto/cryptobyte"
)

// A user's identity key certifies each of the user's devices: the device's
// MLS signature key is valid for the user only if a certificate signed by
// the identity key says so. Clients check the certificate of every member
// they add or meet, so a server that slips its own device onto a roster
// gains nothing: the device has no certificate, or the wrong identity.
//
// Contacts compare safety numbers, computed from both identity keys, out
// of band; a contact whose identity key changes is shown with a warning
// and never silently trusted.

// Identity is a user's long-term Ed25519 identity key pair. It is secret.
type Identity struct {
	_    [0]func()
	priv ed25519.PrivateKey
}

// NewIdentity generates a fresh identity key.
func NewIdentity() (*Identity, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	return &Identity{priv: priv}, nil
}

// ParseIdentity restores an identity from its 32-byte seed.
func ParseIdentity(seed []byte) (*Identity, error) {
	if len(seed) != ed25519.SeedSize {
		return nil, errors.New("client: identity key must be 32 bytes")
	}
	return &Identity{priv: ed25519.NewKeyFromSeed(seed)}, nil
}

// Seed returns the secret seed, for storage in the encrypted local store.
func (id *Identity) Seed() []byte { return bytes.Clone(id.priv.Seed()) }

// Public returns the identity public key.
func (id *Identity) Public() []byte { return bytes.Clone(id.priv.Public().(ed25519.PublicKey)) }

// String never reveals the key.
func (*Identity) String() string { return "client.Identity(redacted)" }

// certLabel separates device certificates from every other signature made
// with an identity key.
const certLabel = "Hush device certificate v1"

// DeviceCertificate binds an MLS signature key to a user.
type DeviceCertificate struct {
	Username     string
	CipherSuite  uint16
	SignatureKey []byte // the device's MLS SignaturePublicKey
	Issued       time.Time
	Signature    []byte // by the user's identity key
}

func (c *DeviceCertificate) marshalTBS(b *cryptobyte.Builder) {
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(certLabel)) })
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(c.Username)) })
	b.AddUint16(c.CipherSuite)
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(c.SignatureKey) })
	b.AddUint64(uint64(c.Issued.Unix()))
}

// Certify issues a certificate for a device's MLS signature key.
func (id *Identity) Certify(username string, cipherSuite uint16, signatureKey []byte, now time.Time) (*DeviceCertificate, error) {
	c := &DeviceCertificate{Username: username, CipherSuite: cipherSuite, SignatureKey: bytes.Clone(signatureKey), Issued: now.UTC().Truncate(time.Second)}
	b := cryptobyte.NewBuilder(nil)
	c.marshalTBS(b)
	tbs, err := b.Bytes()
	if err != nil {
		return nil, fmt.Errorf("client: certificate: %w", err)
	}
	c.Signature = ed25519.Sign(id.priv, tbs)
	return c, nil
}

// Marshal encodes the certificate.
func (c *DeviceCertificate) Marshal() ([]byte, error) {
	b := cryptobyte.NewBuilder(nil)
	c.marshalTBS(b)
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(c.Signature) })
	return b.Bytes()
}

// ErrBadCertificate is returned for a certificate that does not parse or
// verify.
var ErrBadCertificate = errors.New("client: invalid device certificate")

// ParseDeviceCertificate decodes a certificate; it does not verify it.
func ParseDeviceCertificate(data []byte) (*DeviceCertificate, error) {
	s := cryptobyte.String(data)
	var label, user, key, sig cryptobyte.String
	var issued uint64
	c := &DeviceCertificate{}
	if !s.ReadUint8LengthPrefixed(&label) || string(label) != certLabel ||
		!s.ReadUint8LengthPrefixed(&user) || !s.ReadUint16(&c.CipherSuite) ||
		!s.ReadUint16LengthPrefixed(&key) || !s.ReadUint64(&issued) ||
		!s.ReadUint16LengthPrefixed(&sig) || !s.Empty() || issued > 1<<62 {
		return nil, ErrBadCertificate
	}
	c.Username, c.SignatureKey, c.Signature = string(user), bytes.Clone(key), bytes.Clone(sig)
	c.Issued = time.Unix(int64(issued), 0).UTC()
	return c, nil
}

// Verify checks the certificate against the user's identity public key and
// the expected username and signature key.
func (c *DeviceCertificate) Verify(identityKey []byte, username string, signatureKey []byte) error {
	if len(identityKey) != ed25519.PublicKeySize {
		return ErrBadCertificate
	}
	if c.Username != username || !bytes.Equal(c.SignatureKey, signatureKey) {
		return fmt.Errorf("%w: issued for another user or key", ErrBadCertificate)
	}
	b := cryptobyte.NewBuilder(nil)
	c.marshalTBS(b)
	tbs, err := b.Bytes()
	if err != nil || !ed25519.Verify(identityKey, tbs, c.Signature) {
		return ErrBadCertificate
	}
	return nil
}

// safetyIterations is how often each fingerprint is hashed: it makes a
// search for a colliding identity key costly, as in Signal's scheme.
const safetyIterations = 5200

// fingerprint is 30 decimal digits derived from one user's identity key.
func fingerprint(username string, identityKey []byte) string {
	var ver [2]byte
	binary.BigEndian.PutUint16(ver[:], 1)
	h := sha512.New()
	h.Write(ver[:])
	h.Write(identityKey)
	h.Write([]byte(username))
	digest := h.Sum(nil)
	for range safetyIterations {
		h.Reset()
		h.Write(digest)
		h.Write(identityKey)
		digest = h.Sum(digest[:0])
	}
	var sb strings.Builder
	for i := 0; i < 30; i += 5 {
		chunk := uint64(digest[i])<<32 | uint64(digest[i+1])<<24 | uint64(digest[i+2])<<16 | uint64(digest[i+3])<<8 | uint64(digest[i+4])
		fmt.Fprintf(&sb, "%05d", chunk%100000)
	}
	return sb.String()
}

// SafetyNumber is the 60-digit number two users compare to verify each
// other's identity keys. Both compute the same number: the two halves are
// ordered by value, not by who computes.
func SafetyNumber(userA string, keyA []byte, userB string, keyB []byte) string {
	a, b := fingerprint(userA, keyA), fingerprint(userB, keyB)
	if a > b {
		a, b = b, a
	}
	return a + b
}

// FormatSafetyNumber groups a safety number in blocks of five digits,
// three rows of four blocks.
func FormatSafetyNumber(n string) string {
	var sb strings.Builder
	for i := 0; i+5 <= len(n); i += 5 {
		if i > 0 {
			if i%20 == 0 {
				sb.WriteByte('\n')
			} else {
				sb.WriteByte(' ')
			}
		}
		sb.WriteString(n[i : i+5])
	}
	return sb.String()
}
