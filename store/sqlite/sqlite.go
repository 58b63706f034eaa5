// Package sqlite is the single-node store.Store backend: one SQLite file,
// through modernc.org/sqlite (pure Go, no cgo).
//
// Open configures the database for durability and speed:
//
//   - WAL journal with synchronous=FULL, so a write that has returned
//     survives power loss, and readers never block the writer;
//   - one writer connection that commits queued writes together (group
//     commit, see below) and a pool of query-only reader connections;
//   - temp_store=MEMORY, so that the savepoints in a batch keep their
//     undo records in memory instead of spilling them to a temporary
//     file (with the default, a batch of appends created, wrote and
//     deleted one: a quarter of the writer's time in a profile);
//   - busy_timeout, so that other processes opening the file wait their
//     turn instead of failing;
//   - foreign keys on;
//   - secure_delete on: deleted rows are overwritten with zeros, and Purge
//     checkpoints and truncates the WAL afterwards, so purged messages do
//     not linger in the file.
//
// # Group commit
//
// Every write (appends and acks above all, but also everything else that
// writes) is queued to a single goroutine that runs all the writes queued so
// far in one transaction, each in its own savepoint, commits, and only then
// answers each caller. Appends and acks, the writes that come in volume,
// are not run one by one: all the appends of a batch, to any number of
// groups, take a few statements together (each group's head read once,
// sequence numbers assigned in memory, one multi-row INSERT, each head
// written once; sqlstore.AppendBatch), and so do its acks
// (sqlstore.AckBatch). A write is durable when its method returns, except
// QueueMessage (store.OrderedAppender), which returns once the append is
// queued and hands back a wait for its durability: the queue is first in,
// first out and a batch numbers its appends in queue order, so appends
// queued one after another are appended in that order. One
// commit costs one fsync whether it carries one write or hundreds, so
// throughput grows with the number of concurrent writers (see
// store/BENCHMARKS.md). A caller whose context ends while its write is
// queued gets ctx.Err() and its write is skipped; once the write has
// started, the outcome is unknown to the caller, which is why appends are
// idempotent.
//
// Migrations run at Open inside one BEGIN IMMEDIATE transaction, so several
// processes opening the same file at once migrate it exactly once.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/hush-chat/hush/store"
	"github.com/hush-chat/hush/store/internal/sqlstore"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

//go:embed migrations/*.sql
var migrations embed.FS

// Store is a store.Store backed by an SQLite file.
type Store struct {
	*sqlstore.Store
	wdb, rdb  *sql.DB
	w         *writer
	closeOnce sync.Once
}

var (
	_ store.Store           = (*Store)(nil)
	_ store.OrderedAppender = (*Store)(nil)
)

// Open opens (creating if needed) the database at path and brings its
// schema up to date.
func Open(ctx context.Context, path string) (*Store, error) {
	if strings.ContainsRune(path, '?') {
		return nil, fmt.Errorf("store/sqlite: path must not contain '?'")
	}
	common := "_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)&_pragma=secure_delete(1)"
	wdb, err := sql.Open("sqlite", path+"?"+common+
		"&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=temp_store(MEMORY)&_txlock=immediate")
	if err != nil {
		return nil, err
	}
	wdb.SetMaxOpenConns(1)
	wdb.SetMaxIdleConns(1)
	wdb.SetConnMaxIdleTime(0)
	wdb.SetConnMaxLifetime(0)
	if err := migrate(ctx, wdb); err != nil {
		wdb.Close()
		return nil, err
	}
	// Readers are opened after the writer has switched the file to WAL.
	rdb, err := sql.Open("sqlite", path+"?"+common+"&_pragma=query_only(1)")
	if err != nil {
		wdb.Close()
		return nil, err
	}
	readers := max(4, runtime.GOMAXPROCS(0))
	rdb.SetMaxOpenConns(readers)
	rdb.SetMaxIdleConns(readers)
	rdb.SetConnMaxIdleTime(5 * time.Minute)

	conn, err := wdb.Conn(ctx)
	if err != nil {
		wdb.Close()
		rdb.Close()
		return nil, err
	}
	s := &Store{wdb: wdb, rdb: rdb, w: newWriter(conn)}
	s.Store = sqlstore.New(rdb, func(ctx context.Context, fn func(context.Context, sqlstore.Tx) error) error {
		return s.w.do(ctx, func(ctx context.Context, tx *connTx) error { return fn(ctx, tx) })
	}, sqlstore.Dialect{})
	return s, nil
}

func migrate(ctx context.Context, db *sql.DB) error {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return err
	}
	ms, err := sqlstore.LoadMigrations(sub)
	if err != nil {
		return err
	}
	tx, err := db.BeginTx(ctx, nil) // BEGIN IMMEDIATE: one migrator at a time
	if err != nil {
		return fmt.Errorf("store/sqlite: migrate: %w", err)
	}
	defer tx.Rollback()
	if err := sqlstore.Migrate(ctx, tx, ms); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store/sqlite: migrate: %w", err)
	}
	return nil
}

// Purge is sqlstore's Purge followed by a WAL checkpoint that truncates the
// WAL: secure_delete has zeroed the purged rows in the database pages, but
// the WAL still holds earlier images of those pages until then. If readers
// keep the checkpoint from finishing, the next Purge completes it.
func (s *Store) Purge(ctx context.Context, now time.Time, retention time.Duration) (store.PurgeResult, error) {
	r, err := s.Store.Purge(ctx, now, retention)
	if err != nil {
		return r, err
	}
	return r, s.checkpoint(ctx)
}

// AppendMessage queues m for the writer, which appends it together with
// the other appends of its batch (see writer.appends).
func (s *Store) AppendMessage(ctx context.Context, m store.Message) (store.Appended, error) {
	epoch, err := sqlstore.CheckMessage(m)
	if err != nil {
		return store.Appended{}, err
	}
	r := &sqlstore.AppendReq{M: m, Epoch: epoch}
	if err := s.w.append(ctx, r); err != nil {
		return store.Appended{}, err
	}
	return r.Res, nil
}

// QueueMessage implements store.OrderedAppender: it queues m for the
// writer and returns at once; wait returns once m's batch is committed.
// The writer's queue is first in, first out and sequence numbers are
// assigned in queue order, so messages queued one after another get
// increasing sequence numbers.
func (s *Store) QueueMessage(ctx context.Context, m store.Message) (func() (store.Appended, error), error) {
	epoch, err := sqlstore.CheckMessage(m)
	if err != nil {
		return nil, err
	}
	r := &sqlstore.AppendReq{M: m, Epoch: epoch}
	j := &job{ctx: ctx, app: r, done: make(chan error, 1)}
	if err := s.w.enqueue(ctx, j); err != nil {
		return nil, err
	}
	return func() (store.Appended, error) {
		if err := s.w.wait(j); err != nil {
			return store.Appended{}, err
		}
		return r.Res, nil
	}, nil
}

// Ack queues the ack for the writer, which applies it together with the
// other acks of its batch.
func (s *Store) Ack(ctx context.Context, device store.DeviceID, group store.GroupID, seq uint64) error {
	sq, err := sqlstore.CheckSeq(seq)
	if err != nil {
		return err
	}
	return s.w.ack(ctx, &sqlstore.AckReq{Device: device, Group: group, Seq: sq})
}

// checkpoint copies the WAL into the database and truncates it.
func (s *Store) checkpoint(ctx context.Context) error {
	err := s.w.doRaw(ctx, func(ctx context.Context, conn *sql.Conn) error {
		_, err := conn.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)")
		return err
	})
	if err != nil {
		return fmt.Errorf("store/sqlite: checkpoint: %w", err)
	}
	return nil
}

// Close finishes the batch of writes under way, fails those still queued
// with store.ErrClosed, and closes the database.
func (s *Store) Close() error {
	var err error
	s.closeOnce.Do(func() {
		s.w.close()
		err = errors.Join(s.w.conn.Close(), s.wdb.Close(), s.rdb.Close())
	})
	return err
}
