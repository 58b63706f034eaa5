package postgres

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hush-chat/hush/store"
	"github.com/hush-chat/hush/store/internal/sqlstore"
)

const (
	// maxBatch bounds the messages sent in one batch.
	maxBatch = 256
	// batchTimeout bounds one batch's round trip, so that a stuck
	// connection cannot stall an appender for ever.
	batchTimeout = time.Minute
)

// appendSQL appends one message in a single statement, so that a batch of
// them is one round trip. It never fails for a reason of the caller's
// making (a failure would abort the whole batch); instead it reports what
// happened:
//
//   - prior_seq, prior_sent: the idempotency key was used before;
//   - new_seq: the message was appended;
//   - is_member, group_exists: why it was not.
//
// The group's row lock, taken by the UPDATE, orders appends within the
// group. The membership check reads the snapshot taken when the statement
// began, before any wait for that lock; a commit that changed the roster in
// the meantime also changed the epoch, so the UPDATE's epoch condition
// (which is re-checked against the latest row after a lock wait) then
// fails and nothing is appended. new_seq is NULL although the sender was a
// member: the caller retries with a fresh snapshot.
const appendSQL = `WITH prior AS (
	SELECT seq, sent_at FROM messages WHERE sender = $2 AND client_msg_id = $3
), member AS (
	SELECT g.epoch FROM groups g
	JOIN members mb ON mb.group_id = g.id AND mb.device_id = $2
	WHERE g.id = $1
), bump AS (
	UPDATE groups SET last_seq = last_seq + 1
	WHERE id = $1 AND epoch = (SELECT epoch FROM member) AND NOT EXISTS (SELECT 1 FROM prior)
	RETURNING last_seq
), ins AS (
	INSERT INTO messages (group_id, seq, sender, client_msg_id, kind, epoch, payload, sent_at, expires_at)
	SELECT $1, last_seq, $2, $3, $4::integer, $5::bigint, $6::bytea, $7::bigint, $8::bigint FROM bump
	RETURNING seq
)
SELECT (SELECT seq FROM prior), (SELECT sent_at FROM prior), (SELECT seq FROM ins),
	EXISTS (SELECT 1 FROM member), EXISTS (SELECT 1 FROM groups WHERE id = $1)`

// appender group-commits appends: each of its goroutines takes everything
// queued, sends it as one batch, and answers the callers once PostgreSQL
// has committed the batch.
type appender struct {
	pool    *pgxpool.Pool
	reqs    chan *appendReq
	quit    chan struct{} // closed by close
	stopped chan struct{} // closed when every goroutine has returned
}

type appendReq struct {
	ctx   context.Context
	m     store.Message
	epoch int64
	res   store.Appended
	err   error
	done  chan struct{} // closed when res and err are set
}

func newAppender(pool *pgxpool.Pool, workers int) *appender {
	a := &appender{
		pool:    pool,
		reqs:    make(chan *appendReq, maxBatch),
		quit:    make(chan struct{}),
		stopped: make(chan struct{}),
	}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(a.run)
	}
	go func() {
		wg.Wait()
		close(a.stopped)
	}()
	return a
}

func (a *appender) append(ctx context.Context, m store.Message) (store.Appended, error) {
	epoch, err := sqlstore.CheckMessage(m)
	if err != nil {
		return store.Appended{}, err
	}
	r := &appendReq{ctx: ctx, m: m, epoch: epoch, done: make(chan struct{})}
	select {
	case a.reqs <- r:
	case <-a.quit:
		return store.Appended{}, store.ErrClosed
	case <-ctx.Done():
		return store.Appended{}, ctx.Err()
	}
	select {
	case <-r.done:
		return r.res, r.err
	case <-ctx.Done():
		return store.Appended{}, ctx.Err()
	case <-a.stopped:
		// Every request taken was answered; one still queued never ran.
		select {
		case <-r.done:
			return r.res, r.err
		default:
			return store.Appended{}, store.ErrClosed
		}
	}
}

func (a *appender) run() {
	for {
		var batch []*appendReq
		select {
		case r := <-a.reqs:
			batch = append(batch, r)
		case <-a.quit:
			return
		}
	fill:
		for len(batch) < maxBatch {
			select {
			case r := <-a.reqs:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		a.flush(batch)
	}
}

// flush appends a batch in one implicit transaction and answers it.
func (a *appender) flush(batch []*appendReq) {
	live := make([]*appendReq, 0, len(batch))
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.err = err // the caller has given up; do not write
			close(r.done)
			continue
		}
		live = append(live, r)
	}
	if len(live) == 0 {
		return
	}
	// Every batch, on every node, locks groups in the same order, so that
	// concurrent batches wait for each other instead of deadlocking.
	slices.SortStableFunc(live, func(x, y *appendReq) int { return bytes.Compare(x.m.GroupID, y.m.GroupID) })

	ctx, cancel := context.WithTimeout(context.Background(), batchTimeout)
	defer cancel()
	sentAt := now()
	b := &pgx.Batch{}
	for _, r := range live {
		b.Queue(appendSQL, args(r, sentAt)...)
	}
	outs := make([]outcome, len(live))
	br := a.pool.SendBatch(ctx, b)
	var err error
	for i := range outs {
		if err = outs[i].scan(br.QueryRow()); err != nil {
			break
		}
	}
	if cerr := br.Close(); err == nil {
		err = cerr // the commit's outcome
	}
	for i, r := range live {
		retry := true
		if err == nil {
			r.res, r.err, retry = outs[i].result(r.m, sentAt)
		}
		// If the batch failed as a whole, perhaps because another node
		// stored one of its idempotency keys first, each message is
		// retried alone; any that did commit come back as duplicates.
		if retry {
			r.res, r.err = a.appendOne(r)
		}
		close(r.done)
	}
}

// appendOne appends a single message in a transaction of its own.
func (a *appender) appendOne(r *appendReq) (store.Appended, error) {
	var err error
	for range maxAttempts {
		sentAt := now()
		var o outcome
		if err = o.scan(a.pool.QueryRow(r.ctx, appendSQL, args(r, sentAt)...)); err != nil {
			if retryable(err) {
				continue
			}
			return store.Appended{}, fmt.Errorf("store: append: %w", err)
		}
		res, err, retry := o.result(r.m, sentAt)
		if !retry {
			return res, err
		}
	}
	return store.Appended{}, fmt.Errorf("store: append: gave up after %d attempts under contention: %w", maxAttempts, err)
}

func args(r *appendReq, sentAt time.Time) []any {
	var expires any
	if r.m.ExpiresAt != nil {
		expires = r.m.ExpiresAt.UnixMicro()
	}
	payload := r.m.Payload
	if payload == nil {
		payload = []byte{}
	}
	return []any{[]byte(r.m.GroupID), r.m.Sender[:], r.m.ClientMsgID, int32(r.m.Kind), r.epoch,
		payload, sentAt.UnixMicro(), expires}
}

// outcome is appendSQL's result row.
type outcome struct {
	priorSeq, priorSent, newSeq *int64
	member, groupExists         bool
}

func (o *outcome) scan(row pgx.Row) error {
	return row.Scan(&o.priorSeq, &o.priorSent, &o.newSeq, &o.member, &o.groupExists)
}

// result interprets the outcome; retry is set if a concurrent commit got
// in the way.
func (o *outcome) result(m store.Message, sentAt time.Time) (res store.Appended, err error, retry bool) {
	switch {
	case o.priorSeq != nil:
		return store.Appended{Seq: uint64(*o.priorSeq), SentAt: time.UnixMicro(*o.priorSent).UTC(), Duplicate: true}, nil, false
	case o.newSeq != nil:
		return store.Appended{Seq: uint64(*o.newSeq), SentAt: sentAt}, nil, false
	case !o.groupExists:
		return res, fmt.Errorf("group %s: %w", m.GroupID, store.ErrNotFound), false
	case !o.member:
		return res, fmt.Errorf("device %s, group %s: %w", m.Sender, m.GroupID, store.ErrNotMember), false
	}
	return res, nil, true
}

// close stops the appenders after their batches under way; appends still
// queued fail with store.ErrClosed.
func (a *appender) close() {
	close(a.quit)
	<-a.stopped
}

// now is the store's clock, at the precision of the schema.
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }
