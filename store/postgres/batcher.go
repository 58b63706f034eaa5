package postgres

import (
	"context"
	"sync"

	"github.com/hush-chat/hush/store"
	"github.com/hush-chat/hush/store/internal/sqlstore"
)

// batcher group-commits one kind of write: each of its goroutines takes
// everything queued so far and hands it to flush, which writes it in one
// transaction and sets each request's outcome; callers are answered once
// flush has returned, that is once the transaction has committed.
type batcher[R any] struct {
	flush   func(reqs []*R)
	reqs    chan *batchReq[R]
	quit    chan struct{} // closed by close
	stopped chan struct{} // closed when every goroutine has returned
}

type batchReq[R any] struct {
	ctx  context.Context
	r    *R
	err  error         // set instead of running r: the caller gave up
	done chan struct{} // closed when r's outcome is set
}

// maxAckBatch bounds the acks written in one transaction.
const maxAckBatch = 512

func newBatcher[R any](workers, max int, flush func(reqs []*R)) *batcher[R] {
	b := &batcher[R]{
		flush:   flush,
		reqs:    make(chan *batchReq[R], max),
		quit:    make(chan struct{}),
		stopped: make(chan struct{}),
	}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() { b.run(max) })
	}
	go func() {
		wg.Wait()
		close(b.stopped)
	}()
	return b
}

// do queues r and waits for its batch. If ctx ends first, do returns
// ctx.Err() and r's outcome is unknown (it may still be written).
func (b *batcher[R]) do(ctx context.Context, r *R) error {
	q := &batchReq[R]{ctx: ctx, r: r, done: make(chan struct{})}
	select {
	case b.reqs <- q:
	case <-b.quit:
		return store.ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-q.done:
		return q.err
	case <-ctx.Done():
		return ctx.Err()
	case <-b.stopped:
		select {
		case <-q.done:
			return q.err
		default:
			return store.ErrClosed
		}
	}
}

func (b *batcher[R]) run(max int) {
	for {
		var batch []*batchReq[R]
		select {
		case q := <-b.reqs:
			batch = append(batch, q)
		case <-b.quit:
			return
		}
	fill:
		for len(batch) < max {
			select {
			case q := <-b.reqs:
				batch = append(batch, q)
			default:
				break fill
			}
		}
		live := make([]*R, 0, len(batch))
		for _, q := range batch {
			if q.err = q.ctx.Err(); q.err == nil {
				live = append(live, q.r)
			}
		}
		if len(live) > 0 {
			b.flush(live)
		}
		for _, q := range batch {
			close(q.done)
		}
	}
}

// close stops the goroutines after their batches under way; requests
// still queued fail with store.ErrClosed.
func (b *batcher[R]) close() {
	close(b.quit)
	<-b.stopped
}

// flushAcks writes a batch of acks in one transaction (sqlstore.AckBatch:
// one query for the cursors, one UPDATE, one DELETE of delivered
// disappearing messages). If that transaction fails for good, each ack is
// retried in a transaction of its own, so that one cannot fail the others.
func (s *Store) flushAcks(reqs []*sqlstore.AckReq) {
	ctx, cancel := context.WithTimeout(context.Background(), batchTimeout)
	defer cancel()
	err := s.write(ctx, func(ctx context.Context, tx sqlstore.Tx) error {
		return s.dialect.AckBatch(ctx, tx, reqs)
	})
	if err == nil {
		return
	}
	for _, r := range reqs {
		r.Err = s.write(ctx, func(ctx context.Context, tx sqlstore.Tx) error {
			return sqlstore.AckOne(ctx, tx, r.Device, r.Group, r.Seq)
		})
	}
}

// Ack queues the ack for the ack batcher.
func (s *Store) Ack(ctx context.Context, device store.DeviceID, group store.GroupID, seq uint64) error {
	sq, err := sqlstore.CheckSeq(seq)
	if err != nil {
		return err
	}
	r := &sqlstore.AckReq{Device: device, Group: group, Seq: sq}
	if err := s.acks.do(ctx, r); err != nil {
		return err
	}
	return r.Err
}
