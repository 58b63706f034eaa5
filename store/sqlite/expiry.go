package sqlite

import (
	"context"
	"time"

	"github.com/hush-chat/hush/store"
)

// PurgeExpired is sqlstore's PurgeExpired followed, when it deleted
// anything, by the checkpoint that Purge makes: the WAL keeps no earlier
// image of what was deleted.
func (s *Store) PurgeExpired(ctx context.Context, now time.Time) (store.PurgeResult, error) {
	r, err := s.Store.PurgeExpired(ctx, now)
	if err != nil || r.Messages+r.Direct == 0 && len(r.Blobs) == 0 {
		return r, err
	}
	return r, s.checkpoint(ctx)
}
