package client

import (
	"context"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/chacha20poly1305"
)

// The local store keeps a device's state in a [Storage]: tables of
// key–value rows with transactions. Every value is sealed before it
// reaches the Storage, with XChaCha20-Poly1305 under a key derived from
// the [StoreKey], a random nonce, and the table and row key as associated
// data, so that a sealed value cannot be moved to another row. Row keys
// are not secret: they are random ids (messages, groups, KeyPackage
// references), fixed names, or a keyed hash of what would be secret
// (a contact's username).

// Storage is the raw storage under a [Client]'s local state. It only ever
// sees sealed values. The SQLite implementation is package
// client/sqlite; a browser build can keep the same rows in IndexedDB.
type Storage interface {
	// Begin starts a transaction. A writable transaction excludes every
	// other writer, in this process and in others, until it ends, so
	// that a read-modify-write inside it is atomic.
	Begin(ctx context.Context, writable bool) (StorageTx, error)
	Close() error
}

// StorageTx is one transaction of a [Storage]. Nothing it writes is
// visible to others, or durable, before Commit returns.
type StorageTx interface {
	// Get returns the value of a row; ok is false if there is none.
	Get(table, key string) (value []byte, ok bool, err error)
	Put(table, key string, value []byte) error
	Delete(table, key string) error
	// Scan calls fn for every row of table whose key starts with
	// prefix, in ascending byte order of the keys.
	Scan(table, prefix string, fn func(key string, value []byte) error) error
	Commit() error
	// Rollback ends the transaction without writing anything; after
	// Commit it does nothing.
	Rollback() error
}

// StoreKey is the key that seals the local store. It is secret.
type StoreKey struct {
	_ [0]func() // not comparable
	k [32]byte
}

// StoreKeySize is the size of a [StoreKey] in bytes.
const StoreKeySize = 32

// NewStoreKey returns a random store key.
func NewStoreKey() *StoreKey {
	k := new(StoreKey)
	rand.Read(k.k[:])
	return k
}

// ParseStoreKey restores a key saved with [StoreKey.Bytes].
func ParseStoreKey(b []byte) (*StoreKey, error) {
	if len(b) != StoreKeySize {
		return nil, errors.New("client: store key must be 32 bytes")
	}
	k := new(StoreKey)
	copy(k.k[:], b)
	return k, nil
}

// Argon2id parameters for passphrase keys: the second recommended option
// of RFC 9106 §4 (t=3, 64 MiB, 4 lanes).
const (
	argonTime    = 3
	argonMemory  = 64 << 10 // KiB
	argonThreads = 4
	// SaltSize is the size of the salt of a passphrase key.
	SaltSize = 16
)

// PassphraseKey derives a store key from a passphrase and a random salt
// (SaltSize bytes, kept beside the store) with Argon2id.
func PassphraseKey(passphrase, salt []byte) (*StoreKey, error) {
	if len(passphrase) == 0 {
		return nil, errors.New("client: empty passphrase")
	}
	if len(salt) != SaltSize {
		return nil, errors.New("client: passphrase salt must be 16 bytes")
	}
	k := new(StoreKey)
	d := argon2.IDKey(passphrase, salt, argonTime, argonMemory, argonThreads, StoreKeySize)
	copy(k.k[:], d)
	clear(d)
	return k, nil
}

// Bytes returns the key, for writing it to a key file.
func (k *StoreKey) Bytes() []byte { return append([]byte(nil), k.k[:]...) }

// String never reveals the key.
func (*StoreKey) String() string { return "client.StoreKey(redacted)" }

// ErrWrongKey is returned when the store was sealed with another key:
// a wrong passphrase, or the key file of another profile.
var ErrWrongKey = errors.New("client: wrong passphrase or store key")

// errCorrupt is returned for a sealed value that fails to open although
// the key is right: the row was altered or moved.
var errCorrupt = errors.New("client: local store is corrupt (a sealed value failed to open)")

// Tables of the local store.
const (
	tableMeta        = "meta"        // "check", "account"
	tableContacts    = "contacts"    // blind index of the username → contact
	tableConvs       = "convs"       // group id (hex) → conversation
	tableGroups      = "groups"      // group id (hex) → MLS group state
	tableMessages    = "msgs"        // group id (hex) "/" message id → message
	tableMessageConv = "msgconv"     // message id → group id (hex)
	tableKeyPackages = "keypackages" // KeyPackageRef (hex) → KeyPackagePrivate
	tableCursors     = "cursors"     // group id (hex), or "inbox" → last processed seq
	tableOutbox      = "outbox"      // client message id → a send to retry
	tableExpiry      = "expiry"      // expiry "/" group id "/" message id → true (expiry.go)
	tableFiles       = "files"       // message id "/" chunk → a disappearing attachment's blob (files.go)
	tableFetch       = "fetch"       // message id → group id: attachments to download (files.go)
)

// checkValue is sealed in meta/check when a store is created; opening it
// proves the key.
const checkValue = "hush local store v1"

// sealer seals the values of the local store.
type sealer struct {
	aead  cipher.AEAD
	index []byte // HMAC key of blind indexes
}

func newSealer(k *StoreKey) (*sealer, error) {
	sealKey, err := hkdf.Key(sha256.New, k.k[:], nil, "hush local store v1 seal", chacha20poly1305.KeySize)
	if err != nil {
		return nil, err
	}
	defer clear(sealKey)
	aead, err := chacha20poly1305.NewX(sealKey)
	if err != nil {
		return nil, err
	}
	index, err := hkdf.Key(sha256.New, k.k[:], nil, "hush local store v1 index", 32)
	if err != nil {
		return nil, err
	}
	return &sealer{aead: aead, index: index}, nil
}

func sealAD(table, key string) []byte {
	return []byte("hush local v1\x00" + table + "\x00" + key)
}

func (s *sealer) seal(table, key string, plaintext []byte) []byte {
	out := make([]byte, chacha20poly1305.NonceSizeX, chacha20poly1305.NonceSizeX+len(plaintext)+s.aead.Overhead())
	rand.Read(out)
	return s.aead.Seal(out, out, plaintext, sealAD(table, key))
}

func (s *sealer) open(table, key string, sealed []byte) ([]byte, error) {
	if len(sealed) < chacha20poly1305.NonceSizeX+s.aead.Overhead() {
		return nil, errCorrupt
	}
	nonce, ct := sealed[:chacha20poly1305.NonceSizeX], sealed[chacha20poly1305.NonceSizeX:]
	pt, err := s.aead.Open(nil, nonce, ct, sealAD(table, key))
	if err != nil {
		return nil, errCorrupt
	}
	return pt, nil
}

// blindIndex is the row key for a value that would itself be secret.
func (s *sealer) blindIndex(kind, v string) string {
	m := hmac.New(sha256.New, s.index)
	m.Write([]byte(kind + "\x00" + v))
	return hex.EncodeToString(m.Sum(nil)[:16])
}

// store is the sealed local store.
type store struct {
	st Storage
	s  *sealer
}

// openStore checks the key against the store, or seals the check value
// into a new store.
func openStore(ctx context.Context, st Storage, key *StoreKey) (*store, error) {
	s, err := newSealer(key)
	if err != nil {
		return nil, err
	}
	db := &store{st: st, s: s}
	err = db.update(ctx, func(tx *tx) error {
		raw, ok, err := tx.raw.Get(tableMeta, "check")
		if err != nil {
			return err
		}
		if !ok {
			return tx.raw.Put(tableMeta, "check", s.seal(tableMeta, "check", []byte(checkValue)))
		}
		if pt, err := s.open(tableMeta, "check", raw); err != nil || string(pt) != checkValue {
			return ErrWrongKey
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return db, nil
}

// tx is a transaction of the sealed store. Values are JSON, sealed.
type tx struct {
	raw StorageTx
	s   *sealer
}

func (db *store) run(ctx context.Context, writable bool, fn func(*tx) error) error {
	raw, err := db.st.Begin(ctx, writable)
	if err != nil {
		return fmt.Errorf("client: local store: %w", err)
	}
	defer raw.Rollback()
	if err := fn(&tx{raw: raw, s: db.s}); err != nil {
		return err
	}
	if !writable {
		return nil
	}
	if err := raw.Commit(); err != nil {
		return fmt.Errorf("client: local store: commit: %w", err)
	}
	return nil
}

// update runs fn in a writable transaction and commits it if fn
// succeeds.
func (db *store) update(ctx context.Context, fn func(*tx) error) error {
	return db.run(ctx, true, fn)
}

// view runs fn in a read-only transaction.
func (db *store) view(ctx context.Context, fn func(*tx) error) error {
	return db.run(ctx, false, fn)
}

// get reads and unseals the row into v; ok is false if there is none.
func (t *tx) get(table, key string, v any) (bool, error) {
	raw, ok, err := t.raw.Get(table, key)
	if err != nil || !ok {
		return false, err
	}
	pt, err := t.s.open(table, key, raw)
	if err != nil {
		return false, err
	}
	defer clear(pt)
	if err := json.Unmarshal(pt, v); err != nil {
		return false, errCorrupt
	}
	return true, nil
}

// put seals v into the row.
func (t *tx) put(table, key string, v any) error {
	pt, err := json.Marshal(v)
	if err != nil {
		return err
	}
	defer clear(pt)
	return t.raw.Put(table, key, t.s.seal(table, key, pt))
}

// putBytes seals b into the row as it is, for bytes that JSON would
// enlarge (blobs).
func (t *tx) putBytes(table, key string, b []byte) error {
	return t.raw.Put(table, key, t.s.seal(table, key, b))
}

// getBytes reads and unseals a row written by putBytes.
func (t *tx) getBytes(table, key string) ([]byte, bool, error) {
	raw, ok, err := t.raw.Get(table, key)
	if err != nil || !ok {
		return nil, false, err
	}
	b, err := t.s.open(table, key, raw)
	return b, err == nil, err
}

func (t *tx) delete(table, key string) error { return t.raw.Delete(table, key) }

// scan unseals every row of table under prefix, in key order, calling fn
// with a function that decodes the row's value.
func (t *tx) scan(table, prefix string, fn func(key string, decode func(v any) error) error) error {
	return t.raw.Scan(table, prefix, func(key string, raw []byte) error {
		return fn(key, func(v any) error {
			pt, err := t.s.open(table, key, raw)
			if err != nil {
				return err
			}
			defer clear(pt)
			if err := json.Unmarshal(pt, v); err != nil {
				return errCorrupt
			}
			return nil
		})
	})
}
