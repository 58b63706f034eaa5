// Package auth authenticates devices to the delivery service.
//
// Every device has its own authentication secret: proto.AuthSecretBytes
// random bytes chosen by the device when it is registered. The server keeps
// only the secret's SHA-256 hash. A request carries the credentials as
//
//	Authorization: Bearer <device id>.<secret in unpadded base64url>
//
// The secret is high-entropy, so a fast hash is enough: there is nothing
// to brute-force that a slow password hash would protect.
//
// # Security considerations
//
// Hashes are compared with crypto/subtle in constant time, and an unknown
// or revoked device is checked against a dummy hash, so the time taken
// does not tell which check failed. Every failure is the one error
// ErrUnauthorized. Tokens and secrets are never logged and never part of
// an error message.
package auth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"strings"

	"github.com/hush-chat/hush/proto"
	"github.com/hush-chat/hush/store"
)

// ErrUnauthorized is the one error for every authentication failure:
// a missing or malformed header, an unknown or revoked device, a wrong
// secret.
var ErrUnauthorized = errors.New("auth: missing or wrong device credentials")

// ErrBadSecret is returned by Hash for a secret that is not
// proto.AuthSecretBytes long.
var ErrBadSecret = errors.New("auth: device secret must be 32 bytes")

// Hash returns the hash the server keeps of a device secret.
func Hash(secret []byte) ([]byte, error) {
	if len(secret) != proto.AuthSecretBytes {
		return nil, ErrBadSecret
	}
	h := sha256.Sum256(secret)
	return h[:], nil
}

// Token formats a device's credentials for the Authorization header,
// without the "Bearer " prefix.
func Token(dev store.DeviceID, secret []byte) string {
	return dev.String() + "." + base64.RawURLEncoding.EncodeToString(secret)
}

// ParseToken splits a token made by Token.
func ParseToken(token string) (store.DeviceID, []byte, error) {
	id, enc, ok := strings.Cut(token, ".")
	if !ok {
		return store.DeviceID{}, nil, ErrUnauthorized
	}
	dev, err := store.ParseDeviceID(id)
	if err != nil {
		return store.DeviceID{}, nil, ErrUnauthorized
	}
	secret, err := base64.RawURLEncoding.DecodeString(enc)
	if err != nil || len(secret) != proto.AuthSecretBytes {
		return store.DeviceID{}, nil, ErrUnauthorized
	}
	return dev, secret, nil
}

// Devices is what the Authenticator needs from the store.
type Devices interface {
	Device(ctx context.Context, id store.DeviceID) (store.Device, error)
}

// Authenticator checks device credentials against the store.
type Authenticator struct {
	devices Devices
}

// New returns an Authenticator over devices.
func New(devices Devices) *Authenticator { return &Authenticator{devices: devices} }

// dummyHash is compared against when the device does not exist, so that
// an unknown device costs the same as a wrong secret.
var dummyHash = make([]byte, sha256.Size)

// Header authenticates the value of an Authorization header.
func (a *Authenticator) Header(ctx context.Context, header string) (store.Device, error) {
	token, ok := strings.CutPrefix(header, "Bearer ")
	if !ok {
		return store.Device{}, ErrUnauthorized
	}
	return a.Token(ctx, token)
}

// Token authenticates a token made by Token. It returns ErrUnauthorized,
// or the store's error if the store failed (so that an outage is not
// reported as bad credentials).
func (a *Authenticator) Token(ctx context.Context, token string) (store.Device, error) {
	id, secret, err := ParseToken(token)
	if err != nil {
		return store.Device{}, err
	}
	sum := sha256.Sum256(secret)
	clear(secret)
	d, err := a.devices.Device(ctx, id)
	want := d.AuthHash
	switch {
	case errors.Is(err, store.ErrNotFound):
		want = dummyHash
	case err != nil:
		return store.Device{}, err
	}
	match := subtle.ConstantTimeCompare(sum[:], want) == 1
	if !match || d.Revoked || err != nil {
		return store.Device{}, ErrUnauthorized
	}
	return d, nil
}
