package sqlstore

import (
	"context"
	"time"

	"github.com/hush-chat/hush/store"
)

// Disappearing messages: the expiry of their blobs, and the frequent purge
// of what they leave behind.

func (s *Store) ExpireBlobs(ctx context.Context, uploader store.DeviceID, clientMsgID string, ids []store.BlobID, expiresAt time.Time) error {
	if err := checkClientMsgID(clientMsgID); err != nil {
		return err
	}
	if len(ids) == 0 {
		return nil
	}
	args := []any{uploader[:], clientMsgID, micros(expiresAt)}
	for _, id := range ids {
		args = append(args, id[:])
	}
	return s.write(ctx, func(ctx context.Context, tx Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE blobs SET client_msg_id = $2,
			expires_at = CASE WHEN expires_at IS NULL OR expires_at > $3 THEN $3 ELSE expires_at END
			WHERE uploader = $1 AND id IN (`+placeholders(4, len(ids))+`)`, args...)
		return dbErr("expire blobs", err)
	})
}

func (s *Store) PurgeExpired(ctx context.Context, at time.Time) (store.PurgeResult, error) {
	nowUS := micros(at)
	var r store.PurgeResult
	err := s.write(ctx, func(ctx context.Context, tx Tx) error {
		r = store.PurgeResult{}
		res, err := tx.ExecContext(ctx, `DELETE FROM messages WHERE expires_at <= $1`, nowUS)
		if err != nil {
			return dbErr("purge expired messages", err)
		}
		if r.Messages, err = res.RowsAffected(); err != nil {
			return dbErr("purge expired messages", err)
		}
		res, err = tx.ExecContext(ctx, `DELETE FROM direct WHERE expires_at <= $1`, nowUS)
		if err != nil {
			return dbErr("purge expired direct mail", err)
		}
		if r.Direct, err = res.RowsAffected(); err != nil {
			return dbErr("purge expired direct mail", err)
		}
		if r.Blobs, err = deleteBlobs(ctx, tx, nil, `DELETE FROM blobs WHERE expires_at <= $1 RETURNING id`, nowUS); err != nil {
			return err
		}
		// The blobs of disappearing messages that are gone: acknowledged
		// by every recipient (Ack deleted them), or expired just above.
		r.Blobs, err = deleteBlobs(ctx, tx, r.Blobs, `DELETE FROM blobs WHERE client_msg_id IS NOT NULL
			AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.sender = blobs.uploader AND m.client_msg_id = blobs.client_msg_id)
			RETURNING id`)
		return err
	})
	return r, err
}

// deleteBlobs runs a DELETE … RETURNING id of blobs and appends the ids
// to out.
func deleteBlobs(ctx context.Context, tx Tx, out []store.BlobID, query string, args ...any) ([]store.BlobID, error) {
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return out, dbErr("purge expired blobs", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id store.BlobID
		if err := rows.Scan(id16(&id)); err != nil {
			return out, dbErr("purge expired blobs", err)
		}
		out = append(out, id)
	}
	return out, dbErr("purge expired blobs", rows.Err())
}
