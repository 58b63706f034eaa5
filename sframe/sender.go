package sframe

import (
	"errors"
	"fmt"
	"math"
	"sync"
)

// ErrCounterExhausted is returned by [Sender.Encrypt] once every CTR value
// of the sender's key has been used. The sender needs a new key.
var ErrCounterExhausted = errors.New("sframe: counter exhausted")

// Sender encrypts frames under one KID, the sending half of an SFrame
// context (RFC 9605 §4.4.1). It uses the CTR values 0, 1, 2, ... in order and
// never the same one twice, so each (key, nonce) pair is used once.
//
// The base key given to a Sender must not be used by any other Sender, in
// this process or another, nor for decryption: see "Security considerations"
// in the package documentation.
//
// A Sender is safe for concurrent use.
type Sender struct {
	mu   sync.Mutex
	kid  uint64
	next uint64    // CTR of the next frame
	key  *frameKey // nil once the CTR space is used up
}

// NewSender returns a Sender that encrypts with the key that suite derives
// for kid from baseKey. It keeps no reference to baseKey.
func NewSender(suite CipherSuite, kid uint64, baseKey []byte) (*Sender, error) {
	k, err := newFrameKey(suite, kid, baseKey)
	if err != nil {
		return nil, err
	}
	return &Sender{kid: kid, key: k}, nil
}

// KID returns the key ID the sender writes into every frame header.
func (s *Sender) KID() uint64 { return s.kid }

// Encrypt appends the SFrame ciphertext of plaintext to dst and returns the
// result: the header, then the AEAD ciphertext and tag. metadata is
// authenticated but not encrypted or included in the output; the receiver
// must supply the same bytes (RFC 9605 §9.4).
//
// With room in dst for len(plaintext) + [MaxHeaderLen] +
// suite.[CipherSuite.Overhead] more bytes, Encrypt does not allocate under
// the GCM suites, and allocates once under the AES-CTR-HMAC suites.
// dst must not overlap plaintext.
func (s *Sender) Encrypt(dst, metadata, plaintext []byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.key == nil {
		return nil, ErrCounterExhausted
	}
	ctr := s.next
	out := s.key.seal(dst, Header{KID: s.kid, CTR: ctr}, metadata, plaintext)
	if ctr == math.MaxUint64 {
		s.key.erase()
		s.key = nil
	} else {
		s.next++
	}
	return out, nil
}

// erase drops the sender's key; further calls to Encrypt fail.
func (s *Sender) erase() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.key != nil {
		s.key.erase()
		s.key = nil
	}
}

// String describes the sender without revealing key material.
func (s *Sender) String() string {
	return fmt.Sprintf("sframe.Sender(kid=%d, key=redacted)", s.kid)
}

// Format makes every fmt verb print [Sender.String], so that no verb dumps
// key material by reflection.
func (s *Sender) Format(f fmt.State, _ rune) { fmt.Fprint(f, s.String()) }
