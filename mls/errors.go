package mls

import (
	"errors"
	"fmt"
)

// Errors a caller may want to tell apart. Every error this package returns
// starts with "mls: " and never contains key material or plaintext.
var (
	// ErrInvalid is wrapped by errors that reject a structurally sound but
	// semantically invalid message: a bad signature, an unknown sender, a
	// proposal list that breaks a rule of RFC 9420 §12.
	ErrInvalid = errors.New("mls: invalid")
	// ErrWrongEpoch is returned for a message of an epoch other than the
	// group's current one (or a retained past one, for application data).
	ErrWrongEpoch = errors.New("mls: wrong epoch")
	// ErrReplay is returned for an application message whose generation was
	// already consumed.
	ErrReplay = errors.New("mls: message already processed or too old")
)

// errorf builds an error that wraps ErrInvalid.
func errorf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}

// badSignature is the error for a signature that does not verify under
// key: a key the suite cannot parse (an ECDSA key must be an uncompressed
// point, RFC 9420 §5.1.1; an Ed25519 key 32 bytes) is named as such, so
// that a peer's encoding mistake is not reported as a forgery.
func badSignature(s *suite, key []byte, what string) error {
	if s.sig.validatePublic(key) != nil {
		return errorf("%s: malformed signature public key (%d bytes; ECDSA keys must be uncompressed points, RFC 9420 §5.1.1)", what, len(key))
	}
	return errorf("%s: signature does not verify", what)
}
