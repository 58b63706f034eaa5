package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/hush-chat/hush/store"
)

// maxBatch bounds how many writes share one transaction, which bounds the
// latency a write can add to the others in its batch.
const maxBatch = 512

// writer performs group commit: callers queue writes, and one goroutine
// runs every queued write in a single transaction on the single writer
// connection, commits (one fsync), and only then answers each caller. Under
// load a batch is whatever queued up during the previous commit, so the cost
// of a sync is shared by all the writes that waited for it, with no timer
// and no added latency when idle.
//
// Each write runs inside a savepoint, so one that fails is undone without
// disturbing the rest of its batch. Writes run with the writer's own
// context, not their callers': cancelling an SQLite statement inside a
// transaction can roll the whole transaction back.
type writer struct {
	db      *sql.DB // exactly one connection
	jobs    chan *job
	quit    chan struct{} // closed by close: stop taking jobs
	stopped chan struct{} // closed when run has returned
}

type job struct {
	ctx  context.Context // the caller's, checked before running fn
	fn   func(context.Context, *sql.Tx) error
	done chan error // buffered, receives fn's outcome once durable
}

func newWriter(db *sql.DB) *writer {
	w := &writer{
		db:      db,
		jobs:    make(chan *job, maxBatch),
		quit:    make(chan struct{}),
		stopped: make(chan struct{}),
	}
	go w.run()
	return w
}

// do runs fn in the next batch and returns once its effects are durable.
// If ctx ends first, do returns ctx.Err() and fn may or may not commit.
func (w *writer) do(ctx context.Context, fn func(context.Context, *sql.Tx) error) error {
	j := &job{ctx: ctx, fn: fn, done: make(chan error, 1)}
	select {
	case w.jobs <- j:
	case <-w.quit:
		return store.ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-j.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-w.stopped:
		// run answers every job it takes before it stops; a job still
		// queued was never run.
		select {
		case err := <-j.done:
			return err
		default:
			return store.ErrClosed
		}
	}
}

func (w *writer) run() {
	defer close(w.stopped)
	batch := make([]*job, 0, maxBatch)
	for {
		select {
		case j := <-w.jobs:
			batch = append(batch[:0], j)
		case <-w.quit:
			return
		}
	fill:
		for len(batch) < maxBatch {
			select {
			case j := <-w.jobs:
				batch = append(batch, j)
			default:
				break fill
			}
		}
		w.commit(batch)
		clear(batch) // drop references to finished jobs
	}
}

// commit runs a batch in one transaction and answers its jobs.
func (w *writer) commit(batch []*job) {
	ctx := context.Background()
	errs := make([]error, len(batch))
	answer := func(err error) {
		for i, j := range batch {
			if err != nil {
				errs[i] = err
			}
			j.done <- errs[i]
		}
	}
	tx, err := w.db.BeginTx(ctx, nil) // BEGIN IMMEDIATE, see the DSN
	if err != nil {
		answer(fmt.Errorf("store: begin: %w", err))
		return
	}
	for i, j := range batch {
		if err := j.ctx.Err(); err != nil {
			errs[i] = err // the caller has given up; do not write
			continue
		}
		if errs[i], err = runJob(ctx, tx, j.fn); err != nil {
			tx.Rollback()
			answer(err)
			return
		}
	}
	if err := tx.Commit(); err != nil {
		answer(fmt.Errorf("store: commit: %w", err))
		return
	}
	answer(nil)
}

// runJob runs fn in a savepoint. It returns fn's error, after undoing fn's
// writes, and a second error if the transaction itself is broken.
func runJob(ctx context.Context, tx *sql.Tx, fn func(context.Context, *sql.Tx) error) (jobErr, txErr error) {
	if _, err := tx.ExecContext(ctx, "SAVEPOINT job"); err != nil {
		return nil, fmt.Errorf("store: savepoint: %w", err)
	}
	if jobErr = fn(ctx, tx); jobErr != nil {
		if _, err := tx.ExecContext(ctx, "ROLLBACK TO job"); err != nil {
			return jobErr, errors.Join(jobErr, fmt.Errorf("store: rollback to savepoint: %w", err))
		}
	}
	if _, err := tx.ExecContext(ctx, "RELEASE job"); err != nil {
		return jobErr, fmt.Errorf("store: release savepoint: %w", err)
	}
	return jobErr, nil
}

// close stops the writer after the batch under way, if any; jobs still
// queued fail with store.ErrClosed.
func (w *writer) close() {
	close(w.quit)
	<-w.stopped
}
