package sqlstore

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/hush-chat/hush/store"
)

func (s *Store) CreateGroup(ctx context.Context, id store.GroupID, creator store.DeviceID, epoch uint64, roster []store.DeviceID) error {
	if err := checkGroupID(id); err != nil {
		return err
	}
	ep, err := toDB(epoch)
	if err != nil {
		return err
	}
	members := dedupe(append([]store.DeviceID{creator}, roster...))
	return s.write(ctx, func(ctx context.Context, tx Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO groups (id, epoch, last_seq, created_at)
			VALUES ($1, $2, 0, $3) ON CONFLICT (id) DO NOTHING`, []byte(id), ep, micros(now()))
		if err != nil {
			return dbErr("create group", err)
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return cmpErr(err, fmt.Errorf("group %s: %w", id, store.ErrExists))
		}
		return addMembers(ctx, tx, id, members, 0)
	})
}

// addMembers puts live devices on a group's roster with their cursors at
// seq.
func addMembers(ctx context.Context, tx Tx, group store.GroupID, devices []store.DeviceID, seq int64) error {
	if len(devices) == 0 {
		return nil
	}
	args := make([]any, len(devices))
	for i, d := range devices {
		args[i] = d[:]
	}
	var n int
	err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM devices WHERE NOT revoked AND id IN (`+placeholders(1, len(devices))+`)`, args...).Scan(&n)
	if err != nil {
		return dbErr("add members", err)
	}
	if n != len(devices) {
		return fmt.Errorf("roster device: %w", store.ErrNotFound)
	}
	for _, d := range devices {
		if _, err := tx.ExecContext(ctx, `INSERT INTO members (group_id, device_id, acked) VALUES ($1, $2, $3)`,
			[]byte(group), d[:], seq); err != nil {
			return dbErr("add members", err)
		}
	}
	return nil
}

func (s *Store) Group(ctx context.Context, id store.GroupID) (store.Group, error) {
	// One statement, so that epoch and roster come from one snapshot.
	rows, err := s.read.QueryContext(ctx, `SELECT g.epoch, g.last_seq, mb.device_id
		FROM groups g LEFT JOIN members mb ON mb.group_id = g.id
		WHERE g.id = $1 ORDER BY mb.device_id`, []byte(id))
	if err != nil {
		return store.Group{}, dbErr("read group", err)
	}
	defer rows.Close()
	g := store.Group{ID: id}
	found := false
	for rows.Next() {
		var epoch, last int64
		var dev []byte
		if err := rows.Scan(&epoch, &last, &dev); err != nil {
			return store.Group{}, dbErr("read group", err)
		}
		found = true
		g.Epoch, g.LastSeq = uint64(epoch), uint64(last)
		if dev != nil {
			g.Roster = append(g.Roster, store.DeviceID(dev))
		}
	}
	if err := rows.Err(); err != nil {
		return store.Group{}, dbErr("read group", err)
	}
	if !found {
		return store.Group{}, fmt.Errorf("group %s: %w", id, store.ErrNotFound)
	}
	return g, nil
}

// AppendMessage appends in one write transaction. The SQLite backend uses
// it as is; Postgres overrides it with batched appends. It is nonetheless
// correct with concurrent writers: the UPDATE's row lock orders appends to
// a group, and the membership check comes after it, so that it sees the
// latest roster.
func (s *Store) AppendMessage(ctx context.Context, m store.Message) (store.Appended, error) {
	epoch, err := CheckMessage(m)
	if err != nil {
		return store.Appended{}, err
	}
	var a store.Appended
	err = s.write(ctx, func(ctx context.Context, tx Tx) (err error) {
		a, err = AppendOne(ctx, tx, m, epoch)
		return err
	})
	return a, err
}

// AppendOne appends m, whose epoch CheckMessage returned, in tx: the
// statements of AppendMessage, for a backend that batches appends and
// falls back to one at a time.
func AppendOne(ctx context.Context, tx Tx, m store.Message, epoch int64) (a store.Appended, err error) {
	if a, err = priorMessage(ctx, tx, m); err != nil || a.Duplicate {
		return a, err
	}
	var seq int64
	err = tx.QueryRowContext(ctx, `UPDATE groups SET last_seq = last_seq + 1 WHERE id = $1 RETURNING last_seq`,
		[]byte(m.GroupID)).Scan(&seq)
	if errors.Is(err, sql.ErrNoRows) {
		return a, fmt.Errorf("group %s: %w", m.GroupID, store.ErrNotFound)
	}
	if err != nil {
		return a, dbErr("append", err)
	}
	if err := requireMember(ctx, tx, m.GroupID, m.Sender); err != nil {
		return a, err
	}
	return insertMessage(ctx, tx, m, seq, epoch)
}

func (s *Store) AppendCommit(ctx context.Context, m store.Message, expectedEpoch uint64, newRoster []store.DeviceID) (store.Appended, error) {
	epoch, err := CheckMessage(m)
	if err != nil {
		return store.Appended{}, err
	}
	expected, err := toDB(expectedEpoch)
	if err != nil {
		return store.Appended{}, err
	}
	roster := dedupe(newRoster)
	var a store.Appended
	err = s.write(ctx, func(ctx context.Context, tx Tx) (err error) {
		if a, err = priorMessage(ctx, tx, m); err != nil || a.Duplicate {
			return err
		}
		// The conditional UPDATE is the commit's compare-and-swap: it
		// locks the group row (Postgres) and matches only at the expected
		// epoch, so of competing commits exactly one advances the epoch.
		var seq int64
		err = tx.QueryRowContext(ctx, `UPDATE groups SET epoch = epoch + 1, last_seq = last_seq + 1
			WHERE id = $1 AND epoch = $2 RETURNING last_seq`, []byte(m.GroupID), expected).Scan(&seq)
		if errors.Is(err, sql.ErrNoRows) {
			return epochConflict(ctx, tx, m)
		}
		if err != nil {
			return dbErr("append commit", err)
		}
		if err := requireMember(ctx, tx, m.GroupID, m.Sender); err != nil {
			return err
		}
		if a, err = insertMessage(ctx, tx, m, seq, epoch); err != nil {
			return err
		}
		return replaceRoster(ctx, tx, m.GroupID, roster, seq)
	})
	return a, err
}

// epochConflict explains why a commit's UPDATE matched no row.
func epochConflict(ctx context.Context, tx Tx, m store.Message) error {
	var current int64
	err := tx.QueryRowContext(ctx, `SELECT epoch FROM groups WHERE id = $1`, []byte(m.GroupID)).Scan(&current)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("group %s: %w", m.GroupID, store.ErrNotFound)
	}
	if err != nil {
		return dbErr("append commit", err)
	}
	// Tell outsiders nothing about the group's epoch.
	if err := requireMember(ctx, tx, m.GroupID, m.Sender); err != nil {
		return err
	}
	return &store.EpochConflictError{Current: uint64(current)}
}

// replaceRoster makes the group's roster exactly roster. Devices that stay
// keep their cursors; new ones start at seq, the commit that added them.
func replaceRoster(ctx context.Context, tx Tx, group store.GroupID, roster []store.DeviceID, seq int64) error {
	rows, err := tx.QueryContext(ctx, `SELECT device_id FROM members WHERE group_id = $1`, []byte(group))
	if err != nil {
		return dbErr("replace roster", err)
	}
	current := make(map[store.DeviceID]bool)
	for rows.Next() {
		var d store.DeviceID
		if err := rows.Scan(id16(&d)); err != nil {
			rows.Close()
			return dbErr("replace roster", err)
		}
		current[d] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return dbErr("replace roster", err)
	}
	var added []store.DeviceID
	for _, d := range roster {
		if current[d] {
			delete(current, d)
		} else {
			added = append(added, d)
		}
	}
	for d := range current { // no longer on the roster
		if _, err := tx.ExecContext(ctx, `DELETE FROM members WHERE group_id = $1 AND device_id = $2`, []byte(group), d[:]); err != nil {
			return dbErr("replace roster", err)
		}
	}
	return addMembers(ctx, tx, group, added, seq)
}

// priorMessage looks for an earlier message with m's idempotency key.
func priorMessage(ctx context.Context, tx Tx, m store.Message) (store.Appended, error) {
	var seq, sent int64
	err := tx.QueryRowContext(ctx, `SELECT seq, sent_at FROM messages WHERE sender = $1 AND client_msg_id = $2`,
		m.Sender[:], m.ClientMsgID).Scan(&seq, &sent)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Appended{}, nil
	}
	if err != nil {
		return store.Appended{}, dbErr("append", err)
	}
	return store.Appended{Seq: uint64(seq), SentAt: fromMicros(sent), Duplicate: true}, nil
}

func requireMember(ctx context.Context, tx Tx, group store.GroupID, dev store.DeviceID) error {
	var one int
	err := tx.QueryRowContext(ctx, `SELECT 1 FROM members WHERE group_id = $1 AND device_id = $2`, []byte(group), dev[:]).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("device %s, group %s: %w", dev, group, store.ErrNotMember)
	}
	return dbErr("check membership", err)
}

func insertMessage(ctx context.Context, tx Tx, m store.Message, seq, epoch int64) (store.Appended, error) {
	a := store.Appended{Seq: uint64(seq), SentAt: now()}
	_, err := tx.ExecContext(ctx, `INSERT INTO messages
		(group_id, seq, sender, client_msg_id, kind, epoch, payload, sent_at, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		[]byte(m.GroupID), seq, m.Sender[:], m.ClientMsgID, int64(m.Kind), epoch, nonNil(m.Payload),
		micros(a.SentAt), nullMicros(m.ExpiresAt))
	return a, dbErr("append", err)
}

func (s *Store) AppendDirect(ctx context.Context, d store.Direct) (store.Appended, error) {
	if err := checkClientMsgID(d.ClientMsgID); err != nil {
		return store.Appended{}, err
	}
	var a store.Appended
	err := s.write(ctx, func(ctx context.Context, tx Tx) error {
		var seq, sent int64
		err := tx.QueryRowContext(ctx, `SELECT seq, sent_at FROM direct WHERE device_id = $1 AND sender = $2 AND client_msg_id = $3`,
			d.To[:], d.Sender[:], d.ClientMsgID).Scan(&seq, &sent)
		if err == nil {
			a = store.Appended{Seq: uint64(seq), SentAt: fromMicros(sent), Duplicate: true}
			return nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return dbErr("append direct", err)
		}
		err = tx.QueryRowContext(ctx, `UPDATE devices SET inbox_seq = inbox_seq + 1 WHERE id = $1 AND NOT revoked RETURNING inbox_seq`,
			d.To[:]).Scan(&seq)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("device %s: %w", d.To, store.ErrNotFound)
		}
		if err != nil {
			return dbErr("append direct", err)
		}
		a = store.Appended{Seq: uint64(seq), SentAt: now()}
		var group []byte // NULL when there is no group
		if len(d.GroupID) > 0 {
			group = d.GroupID
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO direct
			(device_id, seq, sender, client_msg_id, group_id, kind, payload, sent_at, expires_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
			d.To[:], seq, d.Sender[:], d.ClientMsgID, group, int64(d.Kind), nonNil(d.Payload),
			micros(a.SentAt), nullMicros(d.ExpiresAt))
		return dbErr("append direct", err)
	})
	return a, err
}

func (s *Store) Fetch(ctx context.Context, device store.DeviceID, limit int) (store.Pending, error) {
	if limit <= 0 {
		limit = store.DefaultFetchLimit
	}
	limit = min(limit, store.MaxFetchLimit)
	t := now()
	var p store.Pending
	st, err := s.fetchDirect.get(ctx, s.read, fetchDirectSQL)
	if err != nil {
		return p, dbErr("fetch", err)
	}
	rows, err := st.QueryContext(ctx, device[:])
	if err != nil {
		return p, dbErr("fetch", err)
	}
	defer rows.Close()
	for len(p.Direct) < limit && rows.Next() {
		d := store.Direct{To: device}
		var seq, kind, sent int64
		var expires sql.NullInt64
		if err := rows.Scan(&seq, id16(&d.Sender), &d.ClientMsgID, (*[]byte)(&d.GroupID), &kind, &d.Payload, &sent, &expires); err != nil {
			return p, dbErr("fetch", err)
		}
		d.Seq, d.Kind, d.SentAt, d.ExpiresAt = uint64(seq), store.Kind(kind), fromMicros(sent), fromNullMicros(expires)
		if d.ExpiresAt != nil && !d.ExpiresAt.After(t) {
			continue // expired, awaiting the purge
		}
		p.Direct = append(p.Direct, d)
	}
	if err := rows.Err(); err != nil {
		return p, dbErr("fetch", err)
	}
	rows.Close()
	rest := limit - len(p.Direct)
	if rest == 0 {
		return p, nil
	}
	st, err = s.fetchGroups.get(ctx, s.read, fetchGroupsSQL)
	if err != nil {
		return p, dbErr("fetch", err)
	}
	rows, err = st.QueryContext(ctx, device[:])
	if err != nil {
		return p, dbErr("fetch", err)
	}
	defer rows.Close()
	for len(p.Messages) < rest && rows.Next() {
		var m store.Message
		var seq, kind, epoch, sent int64
		var expires sql.NullInt64
		if err := rows.Scan((*[]byte)(&m.GroupID), &seq, id16(&m.Sender), &m.ClientMsgID, &kind, &epoch, &m.Payload, &sent, &expires); err != nil {
			return p, dbErr("fetch", err)
		}
		m.Seq, m.Kind, m.Epoch, m.SentAt, m.ExpiresAt = uint64(seq), store.Kind(kind), uint64(epoch), fromMicros(sent), fromNullMicros(expires)
		if m.ExpiresAt != nil && !m.ExpiresAt.After(t) {
			continue // expired, awaiting the purge
		}
		p.Messages = append(p.Messages, m)
	}
	return p, dbErr("fetch", rows.Err())
}

// Fetch's queries, prepared once (every push connection runs them at its
// periodic poll). As in fetchGroupSQL, the expiry check and the limit are
// applied in Go, so that no parameter can change SQLite's plan and make it
// prepare the statement again; the rows stream in order and reading stops
// at the limit.
var (
	fetchDirectSQL = `SELECT seq, sender, client_msg_id, group_id, kind, payload, sent_at, expires_at
		FROM direct WHERE device_id = $1
		ORDER BY seq LIMIT ` + strconv.Itoa(store.MaxFetchLimit)
	// Walks the device's memberships in group order and each group's log
	// by index from the cursor on, so stopping at the limit stops the scan.
	fetchGroupsSQL = `SELECT m.group_id, m.seq, m.sender, m.client_msg_id, m.kind, m.epoch, m.payload, m.sent_at, m.expires_at
		FROM members mb JOIN messages m ON m.group_id = mb.group_id AND m.seq > mb.acked
		WHERE mb.device_id = $1 AND m.sender <> $1
		ORDER BY mb.group_id, m.seq LIMIT ` + strconv.Itoa(store.MaxFetchLimit)
)

func (s *Store) Ack(ctx context.Context, device store.DeviceID, group store.GroupID, seq uint64) error {
	sq, err := toDB(seq)
	if err != nil {
		return err
	}
	return s.write(ctx, func(ctx context.Context, tx Tx) error {
		return AckOne(ctx, tx, device, group, sq)
	})
}

// AckOne is Ack's statements in tx, for a backend that batches acks and
// falls back to one at a time.
func AckOne(ctx context.Context, tx Tx, device store.DeviceID, group store.GroupID, sq int64) error {
	res, err := tx.ExecContext(ctx, `UPDATE members SET acked = $3
		WHERE group_id = $1 AND device_id = $2 AND acked < $3
		  AND $3 <= (SELECT last_seq FROM groups WHERE id = $1)`, []byte(group), device[:], sq)
	if err != nil {
		return dbErr("ack", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return dbErr("ack", err)
	}
	if n == 0 {
		return explainNoAck(ctx, tx, device, group, sq)
	}
	// Disappearing messages go as soon as every recipient has them.
	_, err = tx.ExecContext(ctx, `DELETE FROM messages
		WHERE group_id = $1 AND expires_at IS NOT NULL AND seq <= $2
		  AND NOT EXISTS (SELECT 1 FROM members mb
		                  WHERE mb.group_id = messages.group_id AND mb.acked < messages.seq
		                    AND mb.device_id <> messages.sender)`, []byte(group), sq)
	return dbErr("ack", err)
}

// explainNoAck tells an ack that changed nothing because the cursor is
// already past seq (no error) from one that is not allowed.
func explainNoAck(ctx context.Context, tx Tx, device store.DeviceID, group store.GroupID, seq int64) error {
	var last int64
	var acked sql.NullInt64
	err := tx.QueryRowContext(ctx, `SELECT g.last_seq, mb.acked FROM groups g
		LEFT JOIN members mb ON mb.group_id = g.id AND mb.device_id = $2
		WHERE g.id = $1`, []byte(group), device[:]).Scan(&last, &acked)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("group %s: %w", group, store.ErrNotFound)
	case err != nil:
		return dbErr("ack", err)
	case !acked.Valid:
		return fmt.Errorf("device %s, group %s: %w", device, group, store.ErrNotMember)
	case seq > last:
		return fmt.Errorf("%w: ack of seq %d beyond the end of the log (%d)", store.ErrInvalid, seq, last)
	}
	return nil
}

func (s *Store) AckDirect(ctx context.Context, device store.DeviceID, seq uint64) error {
	sq, err := toDB(seq)
	if err != nil {
		return err
	}
	return s.write(ctx, func(ctx context.Context, tx Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM direct WHERE device_id = $1 AND seq <= $2`, device[:], sq)
		return dbErr("ack direct", err)
	})
}

// Validation

// CheckMessage validates m and returns its epoch for the database.
func CheckMessage(m store.Message) (int64, error) {
	if err := checkGroupID(m.GroupID); err != nil {
		return 0, err
	}
	if err := checkClientMsgID(m.ClientMsgID); err != nil {
		return 0, err
	}
	return toDB(m.Epoch)
}

// CheckSeq converts a sequence number for the database (ErrInvalid if
// it is out of range).
func CheckSeq(seq uint64) (int64, error) { return toDB(seq) }

func checkGroupID(id store.GroupID) error {
	if len(id) == 0 || len(id) > store.MaxGroupIDLen {
		return fmt.Errorf("%w: group id must be 1 to %d bytes", store.ErrInvalid, store.MaxGroupIDLen)
	}
	return nil
}

func checkClientMsgID(id string) error {
	if id == "" || len(id) > store.MaxClientMsgIDLen {
		return fmt.Errorf("%w: client message id must be 1 to %d bytes", store.ErrInvalid, store.MaxClientMsgIDLen)
	}
	return nil
}

func dedupe(ids []store.DeviceID) []store.DeviceID {
	out := slices.Clone(ids)
	slices.SortFunc(out, func(a, b store.DeviceID) int { return bytes.Compare(a[:], b[:]) })
	return slices.Compact(out)
}

// placeholders returns "$from, $from+1, ..." for n parameters.
func placeholders(from, n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("$" + strconv.Itoa(from+i))
	}
	return b.String()
}
