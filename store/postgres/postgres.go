// Package postgres is the store.Store backend for PostgreSQL, through
// pgx/v5 (pgxpool), for deployments with several server nodes sharing one
// database.
//
// Correctness across nodes comes from the database, never from in-memory
// locks: a commit advances the epoch with a conditional UPDATE (... WHERE
// epoch = expected), which row-locks the group so that of competing
// commits exactly one wins; appends take the same row lock to number the
// group's log; KeyPackages are claimed with FOR UPDATE SKIP LOCKED so that
// concurrent claims take different rows.
//
// Appends are group-committed: AppendMessage queues the message, and a few
// appender goroutines send everything queued so far as one pgx batch, one
// statement per message, which PostgreSQL runs as a single implicit
// transaction (one round trip, one WAL flush). (sqlstore.AppendBatch, a
// few statements for a whole batch as the SQLite backend runs them, was
// tried here too: its seven round trips per transaction used about 1.7
// times the CPU, client and database together, for no more throughput.) Acks are group-committed
// too: two ack goroutines each write everything queued in one transaction
// of three statements (sqlstore.AckBatch), however many devices and groups
// it covers, instead of a transaction per ack. Everything else runs in its
// own transaction.
//
// Open applies migrations inside a transaction holding
// pg_advisory_xact_lock, keyed by the current schema, so that nodes
// starting together migrate once. The schema is the first entry of the
// connection's search_path, which makes it easy to give each test, or each
// tenant, its own schema.
package postgres

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"sync"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/hush-chat/hush/store"
	"github.com/hush-chat/hush/store/internal/sqlstore"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Store is a store.Store backed by PostgreSQL.
type Store struct {
	*sqlstore.Store
	pool      *pgxpool.Pool
	db        *sql.DB // database/sql over pool, for the shared queries
	app       *appender
	acks      *batcher[sqlstore.AckReq]
	dialect   sqlstore.Dialect
	closeOnce sync.Once
}

var _ store.Store = (*Store)(nil)

// Open connects to the database named by dsn (a libpq URL or key=value
// string, as pgxpool.ParseConfig takes) and brings the schema up to date.
func Open(ctx context.Context, dsn string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("store/postgres: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("store/postgres: %w", err)
	}
	db := stdlib.OpenDBFromPool(pool)
	if err := migrate(ctx, db); err != nil {
		db.Close()
		pool.Close()
		return nil, err
	}
	s := &Store{pool: pool, db: db,
		dialect: sqlstore.Dialect{ClaimLock: "FOR UPDATE SKIP LOCKED", LockRows: "FOR UPDATE", Typed: true}}
	s.Store = sqlstore.New(db, s.write, s.dialect)
	// Leave half the pool to reads and other writes.
	s.app = newAppender(pool, max(1, min(4, int(cfg.MaxConns)/2)))
	s.acks = newBatcher(2, maxAckBatch, s.flushAcks)
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
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store/postgres: migrate: %w", err)
	}
	defer tx.Rollback()
	// Held until the transaction ends; other nodes wait here, then find
	// the migrations applied.
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtext('hush/store/migrate/' || current_schema()))`); err != nil {
		return fmt.Errorf("store/postgres: migration lock: %w", err)
	}
	if err := sqlstore.Migrate(ctx, tx, ms); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store/postgres: migrate: %w", err)
	}
	return nil
}

// maxAttempts bounds write retries; see retryable.
const maxAttempts = 3

// write runs fn in a transaction of its own, retrying when a concurrent
// transaction on another node got in the way.
func (s *Store) write(ctx context.Context, fn func(context.Context, sqlstore.Tx) error) error {
	for attempt := 1; ; attempt++ {
		err := s.tx(ctx, fn)
		if attempt == maxAttempts || !retryable(err) {
			return err
		}
	}
}

func (s *Store) tx(ctx context.Context, fn func(context.Context, sqlstore.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: begin: %w", err)
	}
	if err := fn(ctx, tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: commit: %w", err)
	}
	return nil
}

// retryable reports whether a transaction failed only because of another
// one: a unique violation (another node stored the same idempotency key
// first; the retry finds it and reports a duplicate), a deadlock or a
// serialization failure.
func retryable(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	switch pgErr.Code {
	case "23505", "40P01", "40001":
		return true
	}
	return false
}

// AppendMessage appends through the group-committing appender.
func (s *Store) AppendMessage(ctx context.Context, m store.Message) (store.Appended, error) {
	return s.app.append(ctx, m)
}

// Close stops the appenders, failing appends still queued with
// store.ErrClosed, and closes the connection pool.
func (s *Store) Close() error {
	var err error
	s.closeOnce.Do(func() {
		s.app.close()
		s.acks.close()
		err = s.db.Close()
		s.pool.Close()
	})
	return err
}
