// Package sqlite keeps a Hush client's local state in an SQLite file,
// through modernc.org/sqlite (pure Go, no cgo). It implements
// [client.Storage]: one table of sealed rows, (tbl, key) → value.
//
// The rows it stores are sealed by package client before they arrive
// here; this package adds no cryptography of its own. It configures the
// file so that what is deleted does not linger:
//
//   - secure_delete on: deleted and overwritten rows are zeroed where
//     they lie, and Close checkpoints and truncates the write-ahead log,
//     which holds earlier images of the pages until then; after the client
//     deletes disappearing messages, Scrub also rebuilds the database, so
//     that no stale copy of them survives anywhere in the files;
//   - WAL journal with synchronous=FULL, so a committed transaction
//     survives a crash or power loss, and readers do not block the writer;
//   - writable transactions begin IMMEDIATE, so two processes on one
//     profile (say `hush watch` and `hush send`) take turns, and
//     busy_timeout makes the second wait rather than fail.
//
// # Security considerations
//
// Row keys and value sizes are visible to anyone who can read the file;
// package client chooses row keys that reveal nothing secret. The file
// should live in a directory only its owner can read (package
// client/profile creates it 0700).
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/hush-chat/hush/client"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// DB is a client.Storage in one SQLite file.
type DB struct {
	w, r *sql.DB
}

var (
	_ client.Storage  = (*DB)(nil)
	_ client.Scrubber = (*DB)(nil)
)

const schema = `CREATE TABLE IF NOT EXISTS kv (
	tbl   TEXT NOT NULL,
	key   TEXT NOT NULL,
	value BLOB NOT NULL,
	PRIMARY KEY (tbl, key)
) WITHOUT ROWID`

// Open opens, creating it if needed, the database at path.
func Open(ctx context.Context, path string) (*DB, error) {
	if strings.ContainsRune(path, '?') {
		return nil, errors.New("client/sqlite: path must not contain '?'")
	}
	common := path + "?_pragma=busy_timeout(10000)&_pragma=secure_delete(1)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)"
	w, err := sql.Open("sqlite", common+"&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("client/sqlite: %w", err)
	}
	w.SetMaxOpenConns(1)
	r, err := sql.Open("sqlite", common+"&_pragma=query_only(1)")
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("client/sqlite: %w", err)
	}
	r.SetMaxOpenConns(4)
	if _, err := w.ExecContext(ctx, schema); err != nil {
		w.Close()
		r.Close()
		return nil, fmt.Errorf("client/sqlite: open %s: %w", path, err)
	}
	return &DB{w: w, r: r}, nil
}

// Begin starts a transaction; see client.Storage.
func (db *DB) Begin(ctx context.Context, writable bool) (client.StorageTx, error) {
	pool := db.r
	if writable {
		pool = db.w
	}
	t, err := pool.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("client/sqlite: begin: %w", err)
	}
	return &tx{t: t}, nil
}

// Scrub leaves no copy of a row deleted before it anywhere in the files.
// secure_delete zeroes a deleted row where it lies, but SQLite leaves
// stale copies of rows in the unused space of pages it rebuilt when it
// balanced the tree, and the write-ahead log holds earlier images of
// pages. So Scrub rebuilds the database from its live rows (VACUUM), then
// checkpoints the log into the database and truncates it, waiting (up to
// the busy timeout) for readers of older pages to finish. Its cost grows
// with the size of the database. It fails if a reader kept the log from
// being truncated.
func (db *DB) Scrub(ctx context.Context) error {
	if _, err := db.w.ExecContext(ctx, "VACUUM"); err != nil {
		return fmt.Errorf("client/sqlite: vacuum: %w", err)
	}
	var busy, frames, done int
	if err := db.w.QueryRowContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &frames, &done); err != nil {
		return fmt.Errorf("client/sqlite: checkpoint: %w", err)
	}
	if busy != 0 {
		return errors.New("client/sqlite: checkpoint: the write-ahead log is still in use")
	}
	return nil
}

// Close checkpoints the write-ahead log into the database, truncates it,
// and closes the file.
func (db *DB) Close() error {
	_, cerr := db.w.Exec("PRAGMA wal_checkpoint(TRUNCATE)")
	rerr := db.r.Close()
	werr := db.w.Close()
	return errors.Join(cerr, rerr, werr)
}

type tx struct{ t *sql.Tx }

func (t *tx) Get(table, key string) ([]byte, bool, error) {
	var v []byte
	err := t.t.QueryRow(`SELECT value FROM kv WHERE tbl = ? AND key = ?`, table, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("client/sqlite: get %s: %w", table, err)
	}
	return v, true, nil
}

func (t *tx) Put(table, key string, value []byte) error {
	_, err := t.t.Exec(`INSERT INTO kv (tbl, key, value) VALUES (?, ?, ?)
		ON CONFLICT (tbl, key) DO UPDATE SET value = excluded.value`, table, key, value)
	if err != nil {
		return fmt.Errorf("client/sqlite: put %s: %w", table, err)
	}
	return nil
}

func (t *tx) Delete(table, key string) error {
	if _, err := t.t.Exec(`DELETE FROM kv WHERE tbl = ? AND key = ?`, table, key); err != nil {
		return fmt.Errorf("client/sqlite: delete %s: %w", table, err)
	}
	return nil
}

func (t *tx) Scan(table, prefix string, fn func(key string, value []byte) error) error {
	q, args := `SELECT key, value FROM kv WHERE tbl = ? AND key >= ?`, []any{table, prefix}
	if end, ok := prefixEnd(prefix); ok {
		q += ` AND key < ?`
		args = append(args, end)
	}
	rows, err := t.t.Query(q+` ORDER BY key`, args...)
	if err != nil {
		return fmt.Errorf("client/sqlite: scan %s: %w", table, err)
	}
	defer rows.Close()
	for rows.Next() {
		var k string
		var v []byte
		if err := rows.Scan(&k, &v); err != nil {
			return fmt.Errorf("client/sqlite: scan %s: %w", table, err)
		}
		if err := fn(k, v); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("client/sqlite: scan %s: %w", table, err)
	}
	return nil
}

// prefixEnd returns the least string greater than every string with the
// prefix; ok is false when there is none (an empty prefix, or all 0xff).
func prefixEnd(prefix string) (string, bool) {
	b := []byte(prefix)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0xff {
			b[i]++
			return string(b[:i+1]), true
		}
	}
	return "", false
}

func (t *tx) Commit() error {
	if err := t.t.Commit(); err != nil {
		return fmt.Errorf("client/sqlite: commit: %w", err)
	}
	return nil
}

func (t *tx) Rollback() error {
	if err := t.t.Rollback(); err != nil && !errors.Is(err, sql.ErrTxDone) {
		return fmt.Errorf("client/sqlite: rollback: %w", err)
	}
	return nil
}
