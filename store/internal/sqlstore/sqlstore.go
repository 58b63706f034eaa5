// Package sqlstore implements store.Store over database/sql with the SQL that
// SQLite and PostgreSQL share. The backends supply the connections, the way
// writes are run (SQLite: group commit on one writer connection; Postgres:
// one transaction per call) and the few dialect differences; they may
// override methods, as both do for AppendMessage and Ack, which they
// group-commit (AppendBatch, AckBatch: a few statements for a whole batch;
// AppendOne, AckOne: one write alone, their fallback).
//
// Conventions of the schema: ids and opaque data are BLOB/BYTEA; times are
// BIGINT Unix microseconds (UTC); sequence numbers and epochs are BIGINT
// (uint64 values above MaxInt64 are rejected); booleans are compared with
// TRUE/FALSE, which both dialects understand. Placeholders are $1, $2, ...,
// which modernc.org/sqlite binds by number.
package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/hush-chat/hush/store"
)

// Tx is the part of *sql.Tx that the queries use, so that a backend can
// pass a transaction that reuses prepared statements.
type Tx interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// WriteFunc runs fn in a write transaction and returns its error; fn's
// writes are durable when it returns nil, and undone when fn fails. fn
// must use the ctx it is given, which may differ from the caller's, and
// may be run more than once (so it must not have effects outside tx).
type WriteFunc func(ctx context.Context, fn func(ctx context.Context, tx Tx) error) error

// Dialect holds what differs between the backends' SQL.
type Dialect struct {
	// ClaimLock ends the sub-select that picks a KeyPackage to claim:
	// "FOR UPDATE SKIP LOCKED" on Postgres, so that concurrent claims take
	// different rows; empty on SQLite, where writes are serialized.
	ClaimLock string
	// LockRows ends the query with which AppendBatch reads the groups'
	// heads: "FOR UPDATE" on Postgres, so that nobody else appends to
	// them until the batch's transaction ends; empty on SQLite.
	LockRows string
	// Typed: parameters in VALUES lists need a cast to their type
	// (Postgres). Untyped (SQLite), batched statements number their
	// parameters by position (?) instead of $N; see batchSQL.
	Typed bool
}

// Store implements store.Store except Close, which the backends provide.
type Store struct {
	read     *sql.DB
	write    WriteFunc
	claimSQL string

	fetchGroup prepared // FetchGroup's query, run for every push
	// Fetch's and Device's, run at every push connection's periodic poll.
	fetchDirect, fetchGroups, device prepared
}

// New returns a Store that reads from read and writes through write.
func New(read *sql.DB, write WriteFunc, d Dialect) *Store {
	return &Store{
		read:  read,
		write: write,
		claimSQL: `DELETE FROM key_packages WHERE id = (
			SELECT id FROM key_packages WHERE device_id = $1 AND NOT last_resort
			ORDER BY id LIMIT 1 ` + d.ClaimLock + `) RETURNING ref, data`,
	}
}

// Users

func (s *Store) CreateUser(ctx context.Context, username string, identityKey []byte) (store.User, error) {
	name, err := store.NormalizeUsername(username)
	if err != nil {
		return store.User{}, err
	}
	u := store.User{ID: store.NewUserID(), Username: name, IdentityKey: identityKey, CreatedAt: now()}
	err = s.write(ctx, func(ctx context.Context, tx Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO users (id, username, identity_key, created_at)
			VALUES ($1, $2, $3, $4) ON CONFLICT (username) DO NOTHING`,
			u.ID[:], u.Username, nonNil(identityKey), micros(u.CreatedAt))
		if err != nil {
			return dbErr("create user", err)
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return cmpErr(err, store.ErrDuplicateUsername)
		}
		return nil
	})
	if err != nil {
		return store.User{}, err
	}
	return u, nil
}

const userColumns = `id, username, identity_key, created_at`

func scanUser(row *sql.Row) (store.User, error) {
	var u store.User
	var created int64
	err := row.Scan(id16(&u.ID), &u.Username, &u.IdentityKey, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return u, fmt.Errorf("user: %w", store.ErrNotFound)
	}
	if err != nil {
		return u, dbErr("read user", err)
	}
	u.CreatedAt = fromMicros(created)
	return u, nil
}

func (s *Store) User(ctx context.Context, id store.UserID) (store.User, error) {
	return scanUser(s.read.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE id = $1`, id[:]))
}

func (s *Store) UserByName(ctx context.Context, username string) (store.User, error) {
	name, err := store.NormalizeUsername(username)
	if err != nil {
		return store.User{}, fmt.Errorf("user: %w", store.ErrNotFound)
	}
	return scanUser(s.read.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE username = $1`, name))
}

// Devices

func (s *Store) CreateDevice(ctx context.Context, user store.UserID, authHash, credential []byte) (store.Device, error) {
	t := now()
	d := store.Device{ID: store.NewDeviceID(), UserID: user, AuthHash: authHash, Credential: credential, CreatedAt: t, LastSeen: t}
	err := s.write(ctx, func(ctx context.Context, tx Tx) error {
		var one int
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM users WHERE id = $1`, user[:]).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("user: %w", store.ErrNotFound)
		}
		if err != nil {
			return dbErr("create device", err)
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO devices (id, user_id, auth_hash, credential, created_at, last_seen)
			VALUES ($1, $2, $3, $4, $5, $5)`, d.ID[:], user[:], nonNil(authHash), nonNil(credential), micros(t))
		return dbErr("create device", err)
	})
	if err != nil {
		return store.Device{}, err
	}
	return d, nil
}

const deviceColumns = `id, user_id, auth_hash, credential, created_at, last_seen, revoked`

func scanDevice(sc interface{ Scan(...any) error }) (store.Device, error) {
	var d store.Device
	var created, seen int64
	if err := sc.Scan(id16(&d.ID), id16(&d.UserID), &d.AuthHash, &d.Credential, &created, &seen, &d.Revoked); err != nil {
		return d, err
	}
	d.CreatedAt, d.LastSeen = fromMicros(created), fromMicros(seen)
	return d, nil
}

func (s *Store) Device(ctx context.Context, id store.DeviceID) (store.Device, error) {
	st, err := s.device.get(ctx, s.read, `SELECT `+deviceColumns+` FROM devices WHERE id = $1`)
	if err != nil {
		return store.Device{}, dbErr("read device", err)
	}
	d, err := scanDevice(st.QueryRowContext(ctx, id[:]))
	if errors.Is(err, sql.ErrNoRows) {
		return d, fmt.Errorf("device %s: %w", id, store.ErrNotFound)
	}
	return d, dbErr("read device", err)
}

func (s *Store) UserDevices(ctx context.Context, user store.UserID) ([]store.Device, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT `+deviceColumns+` FROM devices WHERE user_id = $1 ORDER BY created_at, id`, user[:])
	if err != nil {
		return nil, dbErr("list devices", err)
	}
	defer rows.Close()
	var ds []store.Device
	for rows.Next() {
		d, err := scanDevice(rows)
		if err != nil {
			return nil, dbErr("list devices", err)
		}
		ds = append(ds, d)
	}
	return ds, dbErr("list devices", rows.Err())
}

func (s *Store) TouchDevice(ctx context.Context, id store.DeviceID, at time.Time) error {
	return s.write(ctx, func(ctx context.Context, tx Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE devices SET last_seen = $2 WHERE id = $1`, id[:], micros(at))
		if err != nil {
			return dbErr("touch device", err)
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return cmpErr(err, fmt.Errorf("device %s: %w", id, store.ErrNotFound))
		}
		return nil
	})
}

func (s *Store) RevokeDevice(ctx context.Context, id store.DeviceID) error {
	return s.write(ctx, func(ctx context.Context, tx Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE devices SET revoked = TRUE WHERE id = $1`, id[:])
		if err != nil {
			return dbErr("revoke device", err)
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return cmpErr(err, fmt.Errorf("device %s: %w", id, store.ErrNotFound))
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM key_packages WHERE device_id = $1`, id[:])
		return dbErr("revoke device", err)
	})
}

// liveDevice checks that the device exists and is not revoked.
func liveDevice(ctx context.Context, tx Tx, id store.DeviceID) error {
	var one int
	err := tx.QueryRowContext(ctx, `SELECT 1 FROM devices WHERE id = $1 AND NOT revoked`, id[:]).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("device %s: %w", id, store.ErrNotFound)
	}
	return dbErr("read device", err)
}

// KeyPackages

func (s *Store) UploadKeyPackages(ctx context.Context, device store.DeviceID, kps []store.KeyPackage) error {
	for _, kp := range kps {
		if len(kp.Ref) == 0 || len(kp.Data) == 0 {
			return fmt.Errorf("%w: KeyPackage needs a ref and data", store.ErrInvalid)
		}
	}
	return s.write(ctx, func(ctx context.Context, tx Tx) error {
		if err := liveDevice(ctx, tx, device); err != nil {
			return err
		}
		for _, kp := range kps {
			if kp.LastResort {
				if _, err := tx.ExecContext(ctx, `DELETE FROM key_packages WHERE device_id = $1 AND last_resort`, device[:]); err != nil {
					return dbErr("upload KeyPackages", err)
				}
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO key_packages (device_id, ref, data, last_resort)
				VALUES ($1, $2, $3, $4) ON CONFLICT (ref) DO NOTHING`, device[:], kp.Ref, kp.Data, kp.LastResort); err != nil {
				return dbErr("upload KeyPackages", err)
			}
		}
		return nil
	})
}

func (s *Store) ClaimKeyPackages(ctx context.Context, devices []store.DeviceID) ([]store.ClaimedKeyPackage, error) {
	var out []store.ClaimedKeyPackage
	err := s.write(ctx, func(ctx context.Context, tx Tx) (err error) {
		out, err = s.claim(ctx, tx, devices)
		return err
	})
	return out, err
}

func (s *Store) ClaimUserKeyPackages(ctx context.Context, user store.UserID) ([]store.ClaimedKeyPackage, error) {
	var out []store.ClaimedKeyPackage
	err := s.write(ctx, func(ctx context.Context, tx Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT id FROM devices WHERE user_id = $1 AND NOT revoked ORDER BY created_at, id`, user[:])
		if err != nil {
			return dbErr("claim KeyPackages", err)
		}
		var devices []store.DeviceID
		for rows.Next() {
			var d store.DeviceID
			if err := rows.Scan(id16(&d)); err != nil {
				rows.Close()
				return dbErr("claim KeyPackages", err)
			}
			devices = append(devices, d)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return dbErr("claim KeyPackages", err)
		}
		out, err = s.claim(ctx, tx, devices)
		return err
	})
	return out, err
}

func (s *Store) claim(ctx context.Context, tx Tx, devices []store.DeviceID) ([]store.ClaimedKeyPackage, error) {
	var out []store.ClaimedKeyPackage
	seen := make(map[store.DeviceID]bool, len(devices))
	for _, d := range devices {
		if seen[d] {
			continue
		}
		seen[d] = true
		c := store.ClaimedKeyPackage{Device: d}
		err := tx.QueryRowContext(ctx, s.claimSQL, d[:]).Scan(&c.Ref, &c.Data)
		if errors.Is(err, sql.ErrNoRows) {
			c.LastResort = true
			err = tx.QueryRowContext(ctx, `SELECT ref, data FROM key_packages WHERE device_id = $1 AND last_resort`, d[:]).Scan(&c.Ref, &c.Data)
			if errors.Is(err, sql.ErrNoRows) {
				continue
			}
		}
		if err != nil {
			return nil, dbErr("claim KeyPackages", err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, store.ErrNoKeyPackage
	}
	return out, nil
}

func (s *Store) CountKeyPackages(ctx context.Context, device store.DeviceID) (int, error) {
	var n int
	err := s.read.QueryRowContext(ctx, `SELECT COUNT(*) FROM key_packages WHERE device_id = $1 AND NOT last_resort`, device[:]).Scan(&n)
	return n, dbErr("count KeyPackages", err)
}

// Blobs

func (s *Store) CreateBlob(ctx context.Context, b store.Blob) (store.Blob, error) {
	if b.Size < 0 {
		return store.Blob{}, fmt.Errorf("%w: negative blob size", store.ErrInvalid)
	}
	b.CreatedAt = now()
	err := s.write(ctx, func(ctx context.Context, tx Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO blobs (id, uploader, size, digest, created_at, expires_at)
			VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING`,
			b.ID[:], b.Uploader[:], b.Size, b.Digest, micros(b.CreatedAt), nullMicros(b.ExpiresAt))
		if err != nil {
			return dbErr("create blob", err)
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return cmpErr(err, fmt.Errorf("blob %s: %w", b.ID, store.ErrExists))
		}
		return nil
	})
	if err != nil {
		return store.Blob{}, err
	}
	return b, nil
}

func (s *Store) Blob(ctx context.Context, id store.BlobID) (store.Blob, error) {
	var b store.Blob
	var created int64
	var expires sql.NullInt64
	err := s.read.QueryRowContext(ctx, `SELECT id, uploader, size, digest, created_at, expires_at FROM blobs WHERE id = $1`, id[:]).
		Scan(id16(&b.ID), id16(&b.Uploader), &b.Size, &b.Digest, &created, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return b, fmt.Errorf("blob %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return b, dbErr("read blob", err)
	}
	b.CreatedAt, b.ExpiresAt = fromMicros(created), fromNullMicros(expires)
	return b, nil
}

// Purge

func (s *Store) Purge(ctx context.Context, at time.Time, retention time.Duration) (store.PurgeResult, error) {
	if retention <= 0 {
		retention = store.DefaultRetention
	}
	nowUS, cutoff := micros(at), micros(at.Add(-retention))
	var r store.PurgeResult
	err := s.write(ctx, func(ctx context.Context, tx Tx) error {
		r = store.PurgeResult{}
		// A message is delivered when every member other than its sender
		// has acknowledged it (senders do not fetch their own messages).
		res, err := tx.ExecContext(ctx, `DELETE FROM messages
			WHERE (expires_at IS NOT NULL AND expires_at <= $1) OR sent_at < $2
			   OR NOT EXISTS (SELECT 1 FROM members mb
			                  WHERE mb.group_id = messages.group_id AND mb.acked < messages.seq
			                    AND mb.device_id <> messages.sender)`, nowUS, cutoff)
		if err != nil {
			return dbErr("purge messages", err)
		}
		if r.Messages, err = res.RowsAffected(); err != nil {
			return dbErr("purge messages", err)
		}
		res, err = tx.ExecContext(ctx, `DELETE FROM direct
			WHERE (expires_at IS NOT NULL AND expires_at <= $1) OR sent_at < $2`, nowUS, cutoff)
		if err != nil {
			return dbErr("purge direct mail", err)
		}
		if r.Direct, err = res.RowsAffected(); err != nil {
			return dbErr("purge direct mail", err)
		}
		rows, err := tx.QueryContext(ctx, `DELETE FROM blobs
			WHERE (expires_at IS NOT NULL AND expires_at <= $1) OR created_at < $2 RETURNING id`, nowUS, cutoff)
		if err != nil {
			return dbErr("purge blobs", err)
		}
		defer rows.Close()
		for rows.Next() {
			var id store.BlobID
			if err := rows.Scan(id16(&id)); err != nil {
				return dbErr("purge blobs", err)
			}
			r.Blobs = append(r.Blobs, id)
		}
		return dbErr("purge blobs", rows.Err())
	})
	return r, err
}

// Helpers

// now is the store's clock, at the precision of the schema.
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

func micros(t time.Time) int64 { return t.UnixMicro() }

func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }

func nullMicros(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.UnixMicro()
}

func fromNullMicros(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := fromMicros(v.Int64)
	return &t
}

// nonNil turns a nil slice into an empty one for NOT NULL columns.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// toDB converts a sequence number or epoch for a BIGINT column.
func toDB(v uint64) (int64, error) {
	if v > math.MaxInt64 {
		return 0, fmt.Errorf("%w: %d is out of range", store.ErrInvalid, v)
	}
	return int64(v), nil
}

// dbErr wraps an unexpected database error with the operation's name; it
// returns nil for nil.
func dbErr(op string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("store: %s: %w", op, err)
}

// cmpErr returns err wrapped if RowsAffected failed, else otherwise.
func cmpErr(err, otherwise error) error {
	if err != nil {
		return dbErr("rows affected", err)
	}
	return otherwise
}

// id16 returns a sql.Scanner that fills a 16-byte id from a BLOB/BYTEA.
func id16[T ~[16]byte](p *T) sql.Scanner { return idScanner[T]{p} }

type idScanner[T ~[16]byte] struct{ p *T }

func (s idScanner[T]) Scan(src any) error {
	b, ok := src.([]byte)
	if !ok || len(b) != 16 {
		return fmt.Errorf("store: malformed id in database (%T of length %d)", src, len(b))
	}
	*s.p = T(b)
	return nil
}
