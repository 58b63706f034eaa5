package store

import "fmt"

// NormalizeUsername returns the canonical form of a username: 3 to 32
// characters from [a-z0-9_.-], with ASCII upper case folded to lower case.
// Usernames are unique in their canonical form, which makes them
// case-insensitive. Non-ASCII input is rejected rather than folded, so that
// look-alike characters (such as the Kelvin sign) cannot alias a name.
func NormalizeUsername(name string) (string, error) {
	if len(name) < 3 || len(name) > 32 {
		return "", fmt.Errorf("%w: username must be 3 to 32 characters", ErrInvalid)
	}
	b := []byte(name)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
			b[i] = c
		}
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == '-') {
			return "", fmt.Errorf("%w: username may contain only a-z, 0-9, '_', '.' and '-'", ErrInvalid)
		}
	}
	return string(b), nil
}
