// Package profile keeps one device's Hush state in a directory, by
// default $XDG_DATA_HOME/hush/<name> (~/.local/share/hush/<name>):
//
//	state.db   the local store (package client/sqlite), every value sealed
//	key        the store key: 32 random bytes, mode 0600
//	salt       instead of key, when the profile is protected by a
//	           passphrase: the Argon2id salt
//
// A profile is one device of one account; several profiles (say "alice"
// and "bob", or "laptop" and "work") live side by side.
//
// # Security considerations
//
// With a key file, the state is as safe as the key file: anyone who can
// read both it and state.db reads everything. Open refuses a key file
// that others than its owner may read, and creates the directory 0700.
// With a passphrase nothing secret is written beside the database; the
// store key is derived with Argon2id (64 MiB, 3 passes) each time the
// profile is opened. A wrong passphrase or key gives [client.ErrWrongKey].
package profile

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"

	"github.com/hush-chat/hush/client"
	"github.com/hush-chat/hush/client/sqlite"
)

// File names inside a profile directory.
const (
	DBFile   = "state.db"
	KeyFile  = "key"
	SaltFile = "salt"
)

// DefaultName is the profile used when none is named.
const DefaultName = "default"

// Dir returns the directory of the named profile.
func Dir(name string) (string, error) {
	if name == "" {
		name = DefaultName
	}
	if !validName(name) {
		return "", fmt.Errorf("profile: name %q may contain only letters, digits, '_', '.' and '-'", name)
	}
	base := os.Getenv("XDG_DATA_HOME")
	if base == "" || !filepath.IsAbs(base) {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("profile: no home directory for the state: %w", err)
		}
		base = filepath.Join(home, ".local", "share")
	}
	return filepath.Join(base, "hush", name), nil
}

func validName(n string) bool {
	if n == "." || n == ".." || len(n) > 64 {
		return false
	}
	for _, c := range n {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// Options say how to open a profile.
type Options struct {
	// Create makes a new profile; it fails if one exists. Without it,
	// Open fails with ErrNoProfile if there is none.
	Create bool
	// Passphrase protects a new profile instead of a key file, and opens
	// a profile so protected.
	Passphrase []byte
	// Client holds the client options other than Storage and Key.
	Client client.Options
}

var (
	// ErrNoProfile is returned by Open for a directory without a profile.
	ErrNoProfile = errors.New("profile: no account on this device yet (run: hush register NAME, or hush link --code CODE)")
	// ErrExists is returned by Open with Create when a profile exists.
	ErrExists = errors.New("profile: a profile already exists here")
	// ErrPassphrase is returned when a profile needs a passphrase and
	// none was given.
	ErrPassphrase = errors.New("profile: this profile is protected by a passphrase")
	// ErrKeyPermissions is returned for a key file others may read.
	ErrKeyPermissions = errors.New("profile: key file is accessible to other users")
)

// Open opens the profile in dir and the client on it.
func Open(ctx context.Context, dir string, o Options) (*client.Client, error) {
	var key *client.StoreKey
	var err error
	if o.Create {
		key, err = create(dir, o.Passphrase)
	} else {
		key, err = load(dir, o.Passphrase)
	}
	if err != nil {
		return nil, err
	}
	db, err := sqlite.Open(ctx, filepath.Join(dir, DBFile))
	if err != nil {
		return nil, err
	}
	co := o.Client
	co.Storage, co.Key = db, key
	c, err := client.Open(ctx, co)
	if err != nil {
		db.Close()
		return nil, err
	}
	return c, nil
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

func create(dir string, passphrase []byte) (*client.StoreKey, error) {
	for _, f := range []string{DBFile, KeyFile, SaltFile} {
		if exists(filepath.Join(dir, f)) {
			return nil, fmt.Errorf("%w: %s", ErrExists, dir)
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("profile: %w", err)
	}
	// SQLite gives its -wal and -shm files the database file's mode.
	if err := writeNew(filepath.Join(dir, DBFile), nil); err != nil {
		return nil, err
	}
	if passphrase != nil {
		salt := make([]byte, client.SaltSize)
		rand.Read(salt)
		if err := writeNew(filepath.Join(dir, SaltFile), salt); err != nil {
			return nil, err
		}
		return client.PassphraseKey(passphrase, salt)
	}
	key := client.NewStoreKey()
	b := key.Bytes()
	defer clear(b)
	return key, writeNew(filepath.Join(dir, KeyFile), b)
}

// writeNew writes a file that must not exist yet, readable by its owner
// only.
func writeNew(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("profile: %w", err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	return errors.Join(err, f.Close())
}

func load(dir string, passphrase []byte) (*client.StoreKey, error) {
	if !exists(filepath.Join(dir, DBFile)) {
		return nil, ErrNoProfile
	}
	salt, err := os.ReadFile(filepath.Join(dir, SaltFile))
	switch {
	case err == nil:
		if passphrase == nil {
			return nil, ErrPassphrase
		}
		return client.PassphraseKey(passphrase, salt)
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("profile: %w", err)
	}
	path := filepath.Join(dir, KeyFile)
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("profile: key file: %w", err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %04o; make it 0600 (chmod 600 %s)", ErrKeyPermissions, path, fi.Mode().Perm(), path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("profile: key file: %w", err)
	}
	defer clear(b)
	return client.ParseStoreKey(b)
}
