package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"runtime"

	"github.com/hush-chat/hush/store"
	"github.com/hush-chat/hush/store/internal/sqlstore"
)

// maxBatch bounds how many writes share one transaction, which bounds the
// latency a write can add to the others in its batch.
const maxBatch = 512

// maxStmts bounds the writer's cache of prepared statements; queries with a
// variable number of parameters could otherwise fill it. The batched
// statements take about 60 entries (8 shapes, 7 sizes each).
const maxStmts = 160

// writer performs group commit: callers queue writes, and one goroutine
// runs every queued write in a single transaction on the one writer
// connection, commits (one fsync), and only then answers each caller. Under
// load a batch is whatever queued up during the previous commit, so the cost
// of a sync is shared by all the writes that waited for it, with no timer
// and no added latency when idle.
//
// Each write runs inside a savepoint, so one that fails is undone without
// disturbing the rest of its batch. Writes run with the writer's own
// context, not their callers': interrupting an SQLite statement inside a
// transaction can roll the whole transaction back. Statements are prepared
// once on the connection and reused, since parsing SQL would otherwise cost
// more than running it.
type writer struct {
	conn    *sql.Conn            // owned by run
	stmts   map[string]*sql.Stmt // owned by run
	jobs    chan *job
	quit    chan struct{} // closed by close: stop taking jobs
	stopped chan struct{} // closed when run has returned
}

// A job is either a write to run in a batch's transaction (fn) or work to
// run on the connection outside any transaction (raw), such as a
// checkpoint.
//
// Appends and acks are jobs of their own (app, ack): rather than running
// each in a savepoint, commit runs all of a batch's appends together, in a
// few statements (sqlstore.AppendBatch), and then all its acks
// (sqlstore.AckBatch).
type job struct {
	ctx  context.Context // the caller's, checked before running the job
	fn   func(context.Context, *connTx) error
	raw  func(context.Context, *sql.Conn) error
	app  *sqlstore.AppendReq
	ack  *sqlstore.AckReq
	done chan error // buffered; receives the outcome once durable
}

func newWriter(conn *sql.Conn) *writer {
	w := &writer{
		conn:    conn,
		stmts:   make(map[string]*sql.Stmt),
		jobs:    make(chan *job, maxBatch),
		quit:    make(chan struct{}),
		stopped: make(chan struct{}),
	}
	go w.run()
	return w
}

// do runs fn in the next batch and returns once its effects are durable.
// If ctx ends before the writer reaches the job, the job is skipped and do
// returns ctx.Err(); once fn has started, do waits for its batch, so fn
// never runs after do has returned (its caller may read what fn wrote).
func (w *writer) do(ctx context.Context, fn func(context.Context, *connTx) error) error {
	return w.submit(ctx, &job{ctx: ctx, fn: fn, done: make(chan error, 1)})
}

// append appends r.M in the next batch; r.Res is set when it returns nil.
func (w *writer) append(ctx context.Context, r *sqlstore.AppendReq) error {
	return w.submit(ctx, &job{ctx: ctx, app: r, done: make(chan error, 1)})
}

// ack applies r in the next batch.
func (w *writer) ack(ctx context.Context, r *sqlstore.AckReq) error {
	return w.submit(ctx, &job{ctx: ctx, ack: r, done: make(chan error, 1)})
}

// doRaw runs fn on the writer's connection between batches.
func (w *writer) doRaw(ctx context.Context, fn func(context.Context, *sql.Conn) error) error {
	return w.submit(ctx, &job{ctx: ctx, raw: fn, done: make(chan error, 1)})
}

func (w *writer) submit(ctx context.Context, j *job) error {
	if err := w.enqueue(ctx, j); err != nil {
		return err
	}
	return w.wait(j)
}

// enqueue queues j. The queue is first in, first out, and the writer runs
// the appends of a batch in queue order, so jobs enqueued one after
// another are run in that order: this is what makes Store.QueueMessage
// ordered.
func (w *writer) enqueue(ctx context.Context, j *job) error {
	select {
	case w.jobs <- j:
		return nil
	case <-w.quit:
		return store.ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// wait returns the outcome of a job that enqueue has queued.
func (w *writer) wait(j *job) error {
	// No case for ctx here: the writer skips a job whose ctx has ended
	// and answers it at the end of the batch, which bounds the wait.
	select {
	case err := <-j.done:
		return err
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
	defer func() {
		for _, st := range w.stmts {
			st.Close()
		}
	}()
	var batch, raw []*job
	for {
		select {
		case j := <-w.jobs:
			batch, raw = appendJob(batch[:0], raw[:0], j)
		case <-w.quit:
			return
		}
		// Let the callers answered by the last commit run first: most
		// queue their next write at once, and joining this batch saves
		// them a commit of their own (it made batches about half again
		// as large with 32 senders). With nothing else runnable, Gosched
		// returns at once.
		runtime.Gosched()
	fill:
		for len(batch)+len(raw) < maxBatch {
			select {
			case j := <-w.jobs:
				batch, raw = appendJob(batch, raw, j)
			default:
				break fill
			}
		}
		if len(batch) > 0 {
			w.commit(batch)
		}
		for _, j := range raw {
			if err := j.ctx.Err(); err != nil {
				j.done <- err
				continue
			}
			j.done <- j.raw(context.Background(), w.conn)
		}
		clear(batch) // drop references to finished jobs
		clear(raw)
	}
}

func appendJob(batch, raw []*job, j *job) ([]*job, []*job) {
	if j.raw != nil {
		return batch, append(raw, j)
	}
	return append(batch, j), raw
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
	if _, err := w.conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		answer(fmt.Errorf("store: begin: %w", err))
		return
	}
	tx := &connTx{w: w}
	// Everything in a batch was queued concurrently, so any order is one
	// its callers could have seen: other writes first (commits change
	// rosters), then the appends, then the acks.
	var apps, acks []int
	for i, j := range batch {
		if err := j.ctx.Err(); err != nil {
			errs[i] = err // the caller has given up; do not write
			continue
		}
		switch {
		case j.app != nil:
			apps = append(apps, i)
			continue
		case j.ack != nil:
			acks = append(acks, i)
			continue
		}
		var err error
		if errs[i], err = runJob(ctx, tx, j.fn); err != nil {
			w.conn.ExecContext(ctx, "ROLLBACK") // SQLite may have rolled back already
			answer(err)
			return
		}
	}
	if err := w.appends(ctx, tx, batch, apps, errs); err != nil {
		w.conn.ExecContext(ctx, "ROLLBACK")
		answer(err)
		return
	}
	if err := w.acks(ctx, tx, batch, acks, errs); err != nil {
		w.conn.ExecContext(ctx, "ROLLBACK")
		answer(err)
		return
	}
	if _, err := w.conn.ExecContext(ctx, "COMMIT"); err != nil {
		w.conn.ExecContext(ctx, "ROLLBACK")
		answer(fmt.Errorf("store: commit: %w", err))
		return
	}
	answer(nil)
}

// appends runs the batch's appends (batch[i] for i in idx) together and
// sets their outcomes in errs. If the batched statements fail, it undoes
// them and runs each append on its own, so that whatever one message
// does to the database cannot fail the others. It returns an error only
// if the transaction is broken.
func (w *writer) appends(ctx context.Context, tx *connTx, batch []*job, idx []int, errs []error) error {
	if len(idx) == 0 {
		return nil
	}
	reqs := make([]*sqlstore.AppendReq, len(idx))
	for k, i := range idx {
		reqs[k] = batch[i].app
	}
	ok, err := inSavepoint(ctx, tx, func() error { return sqlstore.Dialect{}.AppendBatch(ctx, tx, reqs) })
	if err != nil {
		return err
	}
	for k, i := range idx {
		r := reqs[k]
		if !ok {
			if errs[i], err = runJob(ctx, tx, func(ctx context.Context, tx *connTx) (err error) {
				r.Res, err = sqlstore.AppendOne(ctx, tx, r.M, r.Epoch)
				return err
			}); err != nil {
				return err
			}
			continue
		}
		errs[i] = r.Err
	}
	return nil
}

// acks is appends for acks.
func (w *writer) acks(ctx context.Context, tx *connTx, batch []*job, idx []int, errs []error) error {
	if len(idx) == 0 {
		return nil
	}
	reqs := make([]*sqlstore.AckReq, len(idx))
	for k, i := range idx {
		reqs[k] = batch[i].ack
	}
	ok, err := inSavepoint(ctx, tx, func() error { return sqlstore.Dialect{}.AckBatch(ctx, tx, reqs) })
	if err != nil {
		return err
	}
	for k, i := range idx {
		r := reqs[k]
		if !ok {
			if errs[i], err = runJob(ctx, tx, func(ctx context.Context, tx *connTx) error {
				return sqlstore.AckOne(ctx, tx, r.Device, r.Group, r.Seq)
			}); err != nil {
				return err
			}
			continue
		}
		errs[i] = r.Err
	}
	return nil
}

// inSavepoint runs fn in a savepoint and reports whether it succeeded;
// if not, fn's writes are undone. err is set only if the transaction is
// broken.
func inSavepoint(ctx context.Context, tx *connTx, fn func() error) (ok bool, err error) {
	jobErr, err := runJob(ctx, tx, func(context.Context, *connTx) error { return fn() })
	return jobErr == nil, err
}

// runJob runs fn in a savepoint. It returns fn's error, after undoing fn's
// writes, and a second error if the transaction itself is broken.
func runJob(ctx context.Context, tx *connTx, fn func(context.Context, *connTx) error) (jobErr, txErr error) {
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

// connTx runs statements on the writer's connection, inside the
// transaction that commit has begun there, through prepared statements. It
// implements sqlstore.Tx.
type connTx struct {
	w *writer
}

// stmt returns the prepared statement for query, or nil if the cache is
// full.
func (t *connTx) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	if st, ok := t.w.stmts[query]; ok {
		return st, nil
	}
	if len(t.w.stmts) >= maxStmts {
		return nil, nil
	}
	st, err := t.w.conn.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	t.w.stmts[query] = st
	return st, nil
}

func (t *connTx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	st, err := t.stmt(ctx, query)
	switch {
	case err != nil:
		return nil, err
	case st == nil:
		return t.w.conn.ExecContext(ctx, query, args...)
	}
	return st.ExecContext(ctx, args...)
}

func (t *connTx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	st, err := t.stmt(ctx, query)
	switch {
	case err != nil:
		return nil, err
	case st == nil:
		return t.w.conn.QueryContext(ctx, query, args...)
	}
	return st.QueryContext(ctx, args...)
}

// QueryRowContext reports a failure to prepare when the row is scanned, as
// *sql.Row does.
func (t *connTx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	st, err := t.stmt(ctx, query)
	if err != nil || st == nil {
		return t.w.conn.QueryRowContext(ctx, query, args...)
	}
	return st.QueryRowContext(ctx, args...)
}
