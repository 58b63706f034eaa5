package sqlstore

import (
	"context"
	"database/sql"
	"strconv"
	"sync"

	"github.com/hush-chat/hush/store"
)

// fetchGroupSQL: the members row both checks the roster and gives the
// cursor; the log is read by its (group_id, seq) index from the larger
// bound on. Parameters that can change SQLite's query plan make it
// re-prepare the statement at each call, so the expiry check and the limit
// are applied in Go: the rows stream in order, and reading stops at the
// limit.
var fetchGroupSQL = `SELECT m.seq, m.sender, m.client_msg_id, m.kind, m.epoch, m.payload, m.sent_at, m.expires_at
	FROM members mb JOIN messages m ON m.group_id = mb.group_id AND m.seq > mb.acked AND m.seq > $3
	WHERE mb.group_id = $2 AND mb.device_id = $1 AND m.sender <> $1
	ORDER BY m.seq LIMIT ` + strconv.Itoa(store.MaxFetchLimit)

// prepared is a statement prepared on first use; database/sql then keeps
// it prepared on each connection of the pool, which spares SQLite from
// parsing the query at every call.
type prepared struct {
	mu sync.Mutex
	st *sql.Stmt
}

func (p *prepared) get(ctx context.Context, db *sql.DB, query string) (*sql.Stmt, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.st == nil {
		st, err := db.PrepareContext(ctx, query)
		if err != nil {
			return nil, err
		}
		p.st = st
	}
	return p.st, nil
}

func (s *Store) FetchGroup(ctx context.Context, device store.DeviceID, group store.GroupID, after uint64, limit int) ([]store.Message, error) {
	if limit <= 0 {
		limit = store.DefaultFetchLimit
	}
	limit = min(limit, store.MaxFetchLimit)
	from, err := toDB(after)
	if err != nil {
		return nil, err
	}
	st, err := s.fetchGroup.get(ctx, s.read, fetchGroupSQL)
	if err != nil {
		return nil, dbErr("fetch group", err)
	}
	t := now()
	rows, err := st.QueryContext(ctx, device[:], []byte(group), from)
	if err != nil {
		return nil, dbErr("fetch group", err)
	}
	defer rows.Close()
	var out []store.Message
	for len(out) < limit && rows.Next() {
		m := store.Message{GroupID: group}
		var seq, kind, epoch, sent int64
		var expires sql.NullInt64
		if err := rows.Scan(&seq, id16(&m.Sender), &m.ClientMsgID, &kind, &epoch, &m.Payload, &sent, &expires); err != nil {
			return nil, dbErr("fetch group", err)
		}
		m.Seq, m.Kind, m.Epoch, m.SentAt, m.ExpiresAt = uint64(seq), store.Kind(kind), uint64(epoch), fromMicros(sent), fromNullMicros(expires)
		if m.ExpiresAt != nil && !m.ExpiresAt.After(t) {
			continue // expired, awaiting the purge
		}
		out = append(out, m)
	}
	return out, dbErr("fetch group", rows.Err())
}
