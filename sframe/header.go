package sframe

import (
	"encoding/binary"
	"errors"
	"math/bits"
)

// MaxHeaderLen is the length of the longest SFrame header: the config byte
// followed by an 8-byte KID and an 8-byte CTR.
const MaxHeaderLen = 1 + 8 + 8

// ErrInvalidHeader is returned for a frame whose SFrame header is truncated
// or not minimally encoded.
var ErrInvalidHeader = errors.New("sframe: invalid header")

// Header is an SFrame header (RFC 9605 §4.3): the key ID that selects the
// key and the counter that forms the nonce. Neither value is secret; both are
// sent in the clear and authenticated as part of the AAD.
//
// On the wire the header is a config byte followed by the KID and CTR fields:
//
//	 0 1 2 3 4 5 6 7
//	+-+-+-+-+-+-+-+-+------------+------------+
//	|X|  K  |Y|  C  |   KID...   |   CTR...   |
//	+-+-+-+-+-+-+-+-+------------+------------+
//
// A value below 8 is carried in K (or C) with X (or Y) zero. Otherwise X (or
// Y) is one, K (or C) is the value's length in bytes minus one, and the value
// follows as a big-endian integer of the minimum length, KID before CTR.
type Header struct {
	KID uint64
	CTR uint64
}

// Len returns the length of h's encoding.
func (h Header) Len() int {
	return 1 + fieldLen(h.KID) + fieldLen(h.CTR)
}

// Append appends the minimal encoding of h to b and returns the result.
func (h Header) Append(b []byte) []byte {
	k, kn := fieldConfig(h.KID)
	c, cn := fieldConfig(h.CTR)
	b = append(b, k<<4|c)
	b = appendField(b, h.KID, kn)
	return appendField(b, h.CTR, cn)
}

// ParseHeader decodes the SFrame header at the start of b and returns it with
// its length in bytes. It returns [ErrInvalidHeader] if b is too short for
// the header its config byte announces, or if the KID or CTR is not encoded
// in the minimum number of bytes, so that every header has exactly one
// encoding.
func ParseHeader(b []byte) (Header, int, error) {
	if len(b) == 0 {
		return Header{}, 0, ErrInvalidHeader
	}
	n := 1
	kid, n, ok := parseField(b, n, b[0]>>4)
	if !ok {
		return Header{}, 0, ErrInvalidHeader
	}
	ctr, n, ok := parseField(b, n, b[0]&0x0f)
	if !ok {
		return Header{}, 0, ErrInvalidHeader
	}
	return Header{KID: kid, CTR: ctr}, n, nil
}

// fieldLen returns how many bytes follow the config byte for v.
func fieldLen(v uint64) int {
	if v < 8 {
		return 0
	}
	return (bits.Len64(v) + 7) / 8
}

// fieldConfig returns the 4-bit config nibble for v (the X or Y flag and the
// K or C field) and the number of bytes that follow the config byte.
func fieldConfig(v uint64) (nibble byte, n int) {
	n = fieldLen(v)
	if n == 0 {
		return byte(v), 0
	}
	return 0x08 | byte(n-1), n
}

func appendField(b []byte, v uint64, n int) []byte {
	var buf [8]byte
	binary.BigEndian.PutUint64(buf[:], v)
	return append(b, buf[8-n:]...)
}

// parseField decodes the value described by a config nibble, reading any
// extension bytes from b at offset off. It returns the value, the offset
// after it, and false if b is too short or the encoding is not minimal.
func parseField(b []byte, off int, nibble byte) (uint64, int, bool) {
	if nibble&0x08 == 0 {
		return uint64(nibble), off, true
	}
	n := int(nibble&0x07) + 1
	if len(b)-off < n {
		return 0, 0, false
	}
	var v uint64
	for _, c := range b[off : off+n] {
		v = v<<8 | uint64(c)
	}
	if fieldLen(v) != n {
		return 0, 0, false
	}
	return v, off + n, true
}
