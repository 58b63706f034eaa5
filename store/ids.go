package store

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
)

// UserID identifies a user. It is 16 random bytes chosen by the store when
// the user is created; its text form is 32 lowercase hex digits.
type UserID [16]byte

// DeviceID identifies a device. Like UserID it is 16 random bytes, chosen by
// the store, with a 32-hex-digit text form that is safe to use in URLs and
// notification subjects.
type DeviceID [16]byte

// BlobID identifies an attachment blob. Use NewBlobID to make one.
type BlobID [16]byte

// GroupID is an MLS group id: opaque bytes chosen by the client (typically
// 32 random bytes), between 1 and MaxGroupIDLen bytes long. Convert it to a
// string to use it as a map key.
type GroupID []byte

// MaxGroupIDLen is the longest GroupID the store accepts.
const MaxGroupIDLen = 255

// NewUserID returns a random UserID.
func NewUserID() UserID { return UserID(random16()) }

// NewDeviceID returns a random DeviceID.
func NewDeviceID() DeviceID { return DeviceID(random16()) }

// NewBlobID returns a random BlobID.
func NewBlobID() BlobID { return BlobID(random16()) }

func random16() (b [16]byte) {
	rand.Read(b[:]) // crypto/rand.Read never fails (it panics instead)
	return b
}

func (id UserID) String() string   { return hex.EncodeToString(id[:]) }
func (id DeviceID) String() string { return hex.EncodeToString(id[:]) }
func (id BlobID) String() string   { return hex.EncodeToString(id[:]) }

// String returns g in hex, so that logging a group id prints something
// readable.
func (g GroupID) String() string { return hex.EncodeToString(g) }

// MarshalText implements encoding.TextMarshaler (hex).
func (id UserID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// MarshalText implements encoding.TextMarshaler (hex).
func (id DeviceID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// MarshalText implements encoding.TextMarshaler (hex).
func (id BlobID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler (hex).
func (id *UserID) UnmarshalText(b []byte) error { return parse16((*[16]byte)(id), b) }

// UnmarshalText implements encoding.TextUnmarshaler (hex).
func (id *DeviceID) UnmarshalText(b []byte) error { return parse16((*[16]byte)(id), b) }

// UnmarshalText implements encoding.TextUnmarshaler (hex).
func (id *BlobID) UnmarshalText(b []byte) error { return parse16((*[16]byte)(id), b) }

// ParseUserID parses the text form of a UserID.
func ParseUserID(s string) (id UserID, err error) { return id, id.UnmarshalText([]byte(s)) }

// ParseDeviceID parses the text form of a DeviceID.
func ParseDeviceID(s string) (id DeviceID, err error) { return id, id.UnmarshalText([]byte(s)) }

// ParseBlobID parses the text form of a BlobID.
func ParseBlobID(s string) (id BlobID, err error) { return id, id.UnmarshalText([]byte(s)) }

func parse16(dst *[16]byte, text []byte) error {
	if len(text) != 32 {
		return fmt.Errorf("%w: id must be 32 hex digits", ErrInvalid)
	}
	if _, err := hex.Decode(dst[:], text); err != nil {
		return fmt.Errorf("%w: id must be 32 hex digits", ErrInvalid)
	}
	return nil
}
