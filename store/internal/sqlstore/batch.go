package sqlstore

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/hush-chat/hush/store"
)

// Batched writes: many appends (or acks), from any number of senders and
// groups, in a few statements inside the caller's transaction, instead of
// several statements each. The backends gather what their callers queued
// and call AppendBatch or AckBatch once per transaction.
//
// AppendBatch assigns sequence numbers in memory: it reads each group's
// head once, numbers the batch's messages in order, inserts them all and
// writes each head back once. That is correct only while nobody else can
// append to those groups before the transaction ends; the head query
// guarantees it with Dialect.LockRows (Postgres: FOR UPDATE, taken in
// group order so that concurrent batches cannot deadlock), and SQLite has
// a single writer. Reads after the lock see the latest roster, since a
// commit changes the roster only while holding the group's row.
//
// Statements carry at most maxChunk rows; a larger batch is cut into
// chunks whose sizes are powers of two, so that each statement's text is
// one of a few, which the backends prepare once.

// AppendReq is one queued AppendMessage. AppendBatch sets Res or Err.
type AppendReq struct {
	M     store.Message
	Epoch int64 // as CheckMessage returned
	Res   store.Appended
	Err   error
}

// AckReq is one queued Ack. AckBatch sets Err.
type AckReq struct {
	Device store.DeviceID
	Group  store.GroupID
	Seq    int64
	Err    error
}

// maxChunk is the most rows one batched statement carries.
const maxChunk = 64

// chunks calls fn for consecutive ranges of [0, n) whose lengths are
// powers of two, at most maxChunk, largest first.
func chunks(n int, fn func(lo, hi int) error) error {
	for lo := 0; lo < n; {
		size := maxChunk
		for size > n-lo {
			size /= 2
		}
		if err := fn(lo, lo+size); err != nil {
			return err
		}
		lo += size
	}
	return nil
}

// sqlCache holds the batched statements' texts by shape and row count.
var sqlCache sync.Map // sqlKey -> string

type sqlKey struct {
	shape string
	d     Dialect // the texts differ by dialect
	rows  int
}

// batchSQL returns prefix + rows tuples of len(types) parameters +
// suffix. On a typed dialect each parameter is cast to its type, since
// PostgreSQL cannot infer the types of parameters in a VALUES list. On an
// untyped one (SQLite) the parameters are anonymous (?), bound in order:
// SQLite finds a numbered parameter's name ($N) by a walk of the
// statement's list of names at each bind, which made binding a statement
// of hundreds of parameters quadratic (a tenth of the server's CPU time
// with 32 senders).
func (d Dialect) batchSQL(shape, prefix, suffix string, types []string, rows int) string {
	k := sqlKey{shape, d, rows}
	if q, ok := sqlCache.Load(k); ok {
		return q.(string)
	}
	var b strings.Builder
	b.WriteString(prefix)
	n := 1
	for r := range rows {
		if r > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('(')
		for c, t := range types {
			if c > 0 {
				b.WriteString(", ")
			}
			switch {
			case !d.Typed:
				b.WriteByte('?')
			case t != "":
				b.WriteString("$" + strconv.Itoa(n) + "::" + t)
			default:
				b.WriteString("$" + strconv.Itoa(n))
			}
			n++
		}
		b.WriteByte(')')
	}
	b.WriteString(suffix)
	q := b.String()
	sqlCache.Store(k, q)
	return q
}

type groupDevice struct {
	group  string
	device store.DeviceID
}

type senderKey struct {
	sender store.DeviceID
	id     string
}

// AppendBatch appends reqs in tx, in their order, and sets each one's
// outcome: Res, or Err for ErrNotFound and ErrNotMember. A repeated
// idempotency key, stored before or earlier in the batch, gives the
// original's Res with Duplicate set. It returns an error, with the
// requests' outcomes undefined, only if a statement failed; the caller
// must then undo the batch's writes (roll back to a savepoint) or the
// whole transaction.
func (d Dialect) AppendBatch(ctx context.Context, tx Tx, reqs []*AppendReq) error {
	if len(reqs) == 0 {
		return nil
	}
	// Earlier messages with the same idempotency keys.
	prior := make(map[senderKey]store.Appended)
	err := chunks(len(reqs), func(lo, hi int) error {
		q := d.batchSQL("prior", `WITH v(s, c) AS (VALUES `,
			`) SELECT m.sender, m.client_msg_id, m.seq, m.sent_at FROM v
			JOIN messages m ON m.sender = v.s AND m.client_msg_id = v.c`,
			[]string{"bytea", "text"}, hi-lo)
		args := make([]any, 0, 2*(hi-lo))
		for _, r := range reqs[lo:hi] {
			args = append(args, r.M.Sender[:], r.M.ClientMsgID)
		}
		return scanRows(ctx, tx, q, args, func(rows *sql.Rows) error {
			var k senderKey
			var seq, sent int64
			if err := rows.Scan(id16(&k.sender), &k.id, &seq, &sent); err != nil {
				return err
			}
			prior[k] = store.Appended{Seq: uint64(seq), SentAt: fromMicros(sent), Duplicate: true}
			return nil
		})
	})
	if err != nil {
		return dbErr("append", err)
	}

	// The groups' heads, locked in group order.
	var groups [][]byte
	for _, r := range reqs {
		groups = append(groups, r.M.GroupID)
	}
	slices.SortFunc(groups, bytes.Compare)
	groups = slices.CompactFunc(groups, bytes.Equal)
	heads := make(map[string]int64, len(groups))
	err = chunks(len(groups), func(lo, hi int) error {
		q := d.batchSQL("heads", `SELECT id, last_seq FROM groups WHERE id IN (`,
			`) ORDER BY id `+d.LockRows, []string{"bytea"}, hi-lo)
		args := make([]any, hi-lo)
		for i, g := range groups[lo:hi] {
			args[i] = g
		}
		return scanRows(ctx, tx, q, args, func(rows *sql.Rows) error {
			var id []byte
			var last int64
			if err := rows.Scan(&id, &last); err != nil {
				return err
			}
			heads[string(id)] = last
			return nil
		})
	})
	if err != nil {
		return dbErr("append", err)
	}

	// Which senders are on their groups' rosters, read after the lock.
	member := make(map[groupDevice]bool)
	err = chunks(len(reqs), func(lo, hi int) error {
		q := d.batchSQL("member", `WITH v(g, d) AS (VALUES `,
			`) SELECT mb.group_id, mb.device_id FROM v
			JOIN members mb ON mb.group_id = v.g AND mb.device_id = v.d`,
			[]string{"bytea", "bytea"}, hi-lo)
		args := make([]any, 0, 2*(hi-lo))
		for _, r := range reqs[lo:hi] {
			args = append(args, []byte(r.M.GroupID), r.M.Sender[:])
		}
		return scanRows(ctx, tx, q, args, func(rows *sql.Rows) error {
			var g []byte
			var dev store.DeviceID
			if err := rows.Scan(&g, id16(&dev)); err != nil {
				return err
			}
			member[groupDevice{string(g), dev}] = true
			return nil
		})
	})
	if err != nil {
		return dbErr("append", err)
	}

	// Number the batch in order.
	sentAt := now()
	var fresh []*AppendReq
	for _, r := range reqs {
		k := senderKey{r.M.Sender, r.M.ClientMsgID}
		if a, ok := prior[k]; ok {
			r.Res, r.Err = a, nil
			continue
		}
		g := string(r.M.GroupID)
		last, ok := heads[g]
		switch {
		case !ok:
			r.Err = fmt.Errorf("group %s: %w", r.M.GroupID, store.ErrNotFound)
		case !member[groupDevice{g, r.M.Sender}]:
			r.Err = fmt.Errorf("device %s, group %s: %w", r.M.Sender, r.M.GroupID, store.ErrNotMember)
		default:
			heads[g] = last + 1
			r.Res, r.Err = store.Appended{Seq: uint64(last + 1), SentAt: sentAt}, nil
			prior[k] = store.Appended{Seq: r.Res.Seq, SentAt: sentAt, Duplicate: true}
			fresh = append(fresh, r)
		}
	}
	if len(fresh) == 0 {
		return nil
	}

	err = chunks(len(fresh), func(lo, hi int) error {
		q := d.batchSQL("insert", `INSERT INTO messages
			(group_id, seq, sender, client_msg_id, kind, epoch, payload, sent_at, expires_at) VALUES `, ``,
			[]string{"bytea", "bigint", "bytea", "text", "integer", "bigint", "bytea", "bigint", "bigint"}, hi-lo)
		args := make([]any, 0, 9*(hi-lo))
		for _, r := range fresh[lo:hi] {
			args = append(args, []byte(r.M.GroupID), int64(r.Res.Seq), r.M.Sender[:], r.M.ClientMsgID,
				int64(r.M.Kind), r.Epoch, nonNil(r.M.Payload), micros(sentAt), nullMicros(r.M.ExpiresAt))
		}
		_, err := tx.ExecContext(ctx, q, args...)
		return err
	})
	if err != nil {
		return dbErr("append", err)
	}

	// Each group's head, once.
	var moved [][]byte
	for _, g := range groups {
		if _, ok := heads[string(g)]; ok {
			moved = append(moved, g)
		}
	}
	err = chunks(len(moved), func(lo, hi int) error {
		q := d.batchSQL("bump", `WITH v(id, s) AS (VALUES `,
			`) UPDATE groups SET last_seq = v.s FROM v WHERE groups.id = v.id AND groups.last_seq < v.s`,
			[]string{"bytea", "bigint"}, hi-lo)
		args := make([]any, 0, 2*(hi-lo))
		for _, g := range moved[lo:hi] {
			args = append(args, g, heads[string(g)])
		}
		res, err := tx.ExecContext(ctx, q, args...)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n != int64(hi-lo) {
			return cmpErr(err, fmt.Errorf("%d of %d groups' heads moved", n, hi-lo))
		}
		return nil
	})
	return dbErr("append", err)
}

// AckBatch applies reqs in tx and sets each one's outcome, as Ack would:
// ErrNotFound, ErrNotMember, ErrInvalid past the end of the log, nil
// otherwise (an ack behind the cursor changes nothing). Acks of one
// device in one group become a single update to the highest. Cursors move
// only forward, by the update's own condition, so concurrent batches on
// other nodes cannot move one back. It returns an error only if a
// statement failed, as AppendBatch does.
func (d Dialect) AckBatch(ctx context.Context, tx Tx, reqs []*AckReq) error {
	if len(reqs) == 0 {
		return nil
	}
	pairs := make([]groupDevice, 0, len(reqs))
	for _, r := range reqs {
		pairs = append(pairs, groupDevice{string(r.Group), r.Device})
	}
	slices.SortFunc(pairs, func(a, b groupDevice) int {
		if c := strings.Compare(a.group, b.group); c != 0 {
			return c
		}
		return bytes.Compare(a.device[:], b.device[:])
	})
	pairs = slices.Compact(pairs)

	type cursor struct {
		last, acked int64
		member      bool
	}
	cur := make(map[groupDevice]cursor, len(pairs))
	err := chunks(len(pairs), func(lo, hi int) error {
		q := d.batchSQL("acked", `WITH v(g, d) AS (VALUES `,
			`) SELECT v.g, v.d, g.last_seq, mb.acked FROM v
			JOIN groups g ON g.id = v.g
			LEFT JOIN members mb ON mb.group_id = v.g AND mb.device_id = v.d`,
			[]string{"bytea", "bytea"}, hi-lo)
		args := make([]any, 0, 2*(hi-lo))
		for _, p := range pairs[lo:hi] {
			args = append(args, []byte(p.group), p.device[:])
		}
		return scanRows(ctx, tx, q, args, func(rows *sql.Rows) error {
			var g []byte
			var dev store.DeviceID
			var last int64
			var acked sql.NullInt64
			if err := rows.Scan(&g, id16(&dev), &last, &acked); err != nil {
				return err
			}
			cur[groupDevice{string(g), dev}] = cursor{last: last, acked: acked.Int64, member: acked.Valid}
			return nil
		})
	})
	if err != nil {
		return dbErr("ack", err)
	}

	to := make(map[groupDevice]int64)
	for _, r := range reqs {
		p := groupDevice{string(r.Group), r.Device}
		c, ok := cur[p]
		switch {
		case !ok:
			r.Err = fmt.Errorf("group %s: %w", r.Group, store.ErrNotFound)
		case !c.member:
			r.Err = fmt.Errorf("device %s, group %s: %w", r.Device, r.Group, store.ErrNotMember)
		case r.Seq > c.last:
			r.Err = fmt.Errorf("%w: ack of seq %d beyond the end of the log (%d)", store.ErrInvalid, r.Seq, c.last)
		default:
			r.Err = nil
			if r.Seq > c.acked && r.Seq > to[p] {
				to[p] = r.Seq
			}
		}
	}
	var moves []groupDevice
	for _, p := range pairs {
		if _, ok := to[p]; ok {
			moves = append(moves, p)
		}
	}
	if len(moves) == 0 {
		return nil
	}
	err = chunks(len(moves), func(lo, hi int) error {
		q := d.batchSQL("ack", `WITH v(g, d, s) AS (VALUES `,
			`) UPDATE members SET acked = v.s FROM v
			WHERE members.group_id = v.g AND members.device_id = v.d AND members.acked < v.s`,
			[]string{"bytea", "bytea", "bigint"}, hi-lo)
		args := make([]any, 0, 3*(hi-lo))
		for _, p := range moves[lo:hi] {
			args = append(args, []byte(p.group), p.device[:], to[p])
		}
		_, err := tx.ExecContext(ctx, q, args...)
		return err
	})
	if err != nil {
		return dbErr("ack", err)
	}

	// Disappearing messages go as soon as every recipient has them. The
	// partial index messages_disappearing makes this nearly free for
	// groups without any.
	var groups []string
	for _, p := range moves {
		groups = append(groups, p.group)
	}
	groups = slices.Compact(groups) // moves is sorted by group
	err = chunks(len(groups), func(lo, hi int) error {
		q := d.batchSQL("vanish", `DELETE FROM messages WHERE group_id IN (`,
			`) AND expires_at IS NOT NULL
			  AND NOT EXISTS (SELECT 1 FROM members mb
			                  WHERE mb.group_id = messages.group_id AND mb.acked < messages.seq
			                    AND mb.device_id <> messages.sender)`,
			[]string{"bytea"}, hi-lo)
		args := make([]any, hi-lo)
		for i, g := range groups[lo:hi] {
			args[i] = []byte(g)
		}
		_, err := tx.ExecContext(ctx, q, args...)
		return err
	})
	return dbErr("ack", err)
}

// scanRows runs a query in tx and calls fn for each row.
func scanRows(ctx context.Context, tx Tx, q string, args []any, fn func(*sql.Rows) error) error {
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}
