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
