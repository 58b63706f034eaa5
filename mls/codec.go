package mls

import (
	"errors"
	"fmt"
	"sync"

	"golang.org/x/crypto/cryptobyte"
)

// This file holds the TLS presentation language helpers of RFC 9420 §2.1:
// fixed-width integers come straight from cryptobyte, and variable-length
// vectors carry the QUIC-style length prefix of §2.1.2.

// ErrDecode is wrapped by every error that reports malformed MLS bytes.
var ErrDecode = errors.New("mls: malformed encoding")

// maxVectorLen is the largest length a variable-size vector may declare:
// the 4-byte varint form tops out at 2^30-1 (§2.1.2).
const maxVectorLen = 1<<30 - 1

// addVarint appends the minimal §2.1.2 encoding of n, which must be < 2^30.
func addVarint(b *cryptobyte.Builder, n int) {
	switch {
	case n < 0 || n > maxVectorLen:
		b.SetError(fmt.Errorf("%w: vector of %d bytes is too long", ErrDecode, n))
	case n < 1<<6:
		b.AddUint8(uint8(n))
	case n < 1<<14:
		b.AddUint16(uint16(n) | 0x4000)
	default:
		b.AddUint32(uint32(n) | 0x80000000)
	}
}

// readVarint reads a §2.1.2 variable-length integer, rejecting the reserved
// 8-byte prefix and non-minimal encodings.
func readVarint(s *cryptobyte.String, out *int) bool {
	var first uint8
	if !s.ReadUint8(&first) {
		return false
	}
	prefix := first >> 6
	v := uint32(first & 0x3f)
	switch prefix {
	case 0:
	case 1:
		var rest uint8
		if !s.ReadUint8(&rest) {
			return false
		}
		v = v<<8 | uint32(rest)
		if v < 1<<6 {
			return false // not minimal
		}
	case 2:
		var rest [3]byte
		var rs []byte
		if !s.ReadBytes(&rs, 3) {
			return false
		}
		copy(rest[:], rs)
		v = v<<24 | uint32(rest[0])<<16 | uint32(rest[1])<<8 | uint32(rest[2])
		if v < 1<<14 {
			return false // not minimal
		}
	default:
		return false // 0b11 prefix is invalid in MLS
	}
	*out = int(v)
	return true
}

// addOpaque appends opaque data<V>.
func addOpaque(b *cryptobyte.Builder, data []byte) {
	addVarint(b, len(data))
	b.AddBytes(data)
}

// vectorBuffers recycles the scratch buffers addVector writes bodies in:
// encoding a large commit would otherwise grow a fresh buffer at every
// level of nesting. A buffer is cleared before it is recycled, as bodies
// can hold secrets.
var vectorBuffers = sync.Pool{New: func() any { return new([]byte) }}

// addVector appends a vector<V> whose body is written by f.
func addVector(b *cryptobyte.Builder, f func(b *cryptobyte.Builder)) {
	buf := vectorBuffers.Get().(*[]byte)
	child := cryptobyte.NewBuilder((*buf)[:0])
	f(child)
	body, err := child.Bytes()
	if err != nil {
		b.SetError(err)
		return // the buffer, perhaps partly written, is not recycled
	}
	addOpaque(b, body)
	clear(body)
	*buf = body[:0]
	vectorBuffers.Put(buf)
}

// readVector reads the body of a vector<V> into out, without copying.
func readVector(s *cryptobyte.String, out *cryptobyte.String) bool {
	var n int
	if !readVarint(s, &n) {
		return false
	}
	var body []byte
	if !s.ReadBytes(&body, n) {
		return false
	}
	*out = body
	return true
}

// readOpaque reads opaque data<V> into a fresh copy, so that the result does
// not alias (and keep alive) the input buffer.
func readOpaque(s *cryptobyte.String, out *[]byte) bool {
	var body cryptobyte.String
	if !readVector(s, &body) {
		return false
	}
	*out = append([]byte(nil), body...)
	return true
}

// readList reads a vector<V> of elements, calling f until the body is used up.
func readList(s *cryptobyte.String, f func(s *cryptobyte.String) bool) bool {
	var body cryptobyte.String
	if !readVector(s, &body) {
		return false
	}
	for !body.Empty() {
		if !f(&body) {
			return false
		}
	}
	return true
}

// addOptional appends optional<T>: a presence byte, then the value.
func addOptional(b *cryptobyte.Builder, present bool, f func(b *cryptobyte.Builder)) {
	if !present {
		b.AddUint8(0)
		return
	}
	b.AddUint8(1)
	f(b)
}

// readOptional reads optional<T>'s presence byte, then the value if present.
func readOptional(s *cryptobyte.String, present *bool, f func(s *cryptobyte.String) bool) bool {
	var p uint8
	if !s.ReadUint8(&p) {
		return false
	}
	switch p {
	case 0:
		*present = false
		return true
	case 1:
		*present = true
		return f(s)
	default:
		return false
	}
}

// readBool reads a TLS bool (one byte, 0 or 1).
func readBool(s *cryptobyte.String, out *bool) bool {
	var v uint8
	if !s.ReadUint8(&v) || v > 1 {
		return false
	}
	*out = v == 1
	return true
}

func addBool(b *cryptobyte.Builder, v bool) {
	if v {
		b.AddUint8(1)
	} else {
		b.AddUint8(0)
	}
}

// marshaler is implemented by every MLS struct that can be encoded.
type marshaler interface {
	marshal(b *cryptobyte.Builder)
}

// unmarshaler is implemented by every MLS struct that can be decoded. It
// returns false on malformed input; the caller turns that into an error.
type unmarshaler interface {
	unmarshal(s *cryptobyte.String) bool
}

// encodeCapacity is the buffer encode starts with: enough for most
// messages and keys without growing it.
const encodeCapacity = 256

// encode returns the wire encoding of v.
func encode(v marshaler) ([]byte, error) {
	b := cryptobyte.NewBuilder(make([]byte, 0, encodeCapacity))
	v.marshal(b)
	return b.Bytes()
}

// mustEncode encodes values whose encoding cannot fail (all fields are
// bounded by construction). It panics only on a programming error.
func mustEncode(v marshaler) []byte {
	out, err := encode(v)
	if err != nil {
		panic("mls: internal encoding error: " + err.Error())
	}
	return out
}

// decode parses data into v, strictly: the whole input must be consumed.
func decode(data []byte, v unmarshaler, what string) error {
	s := cryptobyte.String(data)
	if !v.unmarshal(&s) {
		return fmt.Errorf("%w: %s", ErrDecode, what)
	}
	if !s.Empty() {
		return fmt.Errorf("%w: %s has %d trailing bytes", ErrDecode, what, len(s))
	}
	return nil
}
