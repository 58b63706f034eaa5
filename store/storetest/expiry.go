package storetest

import (
	"slices"
	"testing"
	"time"

	"github.com/hush-chat/hush/store"
)

// testPurgeExpired: PurgeExpired deletes expired messages and the blobs
// of disappearing messages, as soon as their message is gone (every
// recipient acknowledged it) or expired, and nothing else.
func testPurgeExpired(t *testing.T, s store.Store) {
	alice, bob, carol := device(t, s), device(t, s), device(t, s)
	g := group(t, s, alice, bob, carol)
	now := time.Now().UTC().Truncate(time.Microsecond)
	blob := func(up store.DeviceID) store.BlobID {
		t.Helper()
		b, err := s.CreateBlob(ctx(t), store.Blob{ID: store.NewBlobID(), Uploader: up, Size: 10})
		if err != nil {
			t.Fatal(err)
		}
		return b.ID
	}
	disappearing := func(payload string, expires time.Time, blobs ...store.BlobID) store.Appended {
		t.Helper()
		m := msg(g, alice, payload)
		m.ExpiresAt = &expires
		a := mustAppend(t, s, m)
		if err := s.ExpireBlobs(ctx(t), alice, m.ClientMsgID, blobs, expires); err != nil {
			t.Fatal(err)
		}
		return a
	}
	purge := func(at time.Time) store.PurgeResult {
		t.Helper()
		r, err := s.PurgeExpired(ctx(t), at)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}

	acked, expiring, ordinary, bobs := blob(alice), blob(alice), blob(alice), blob(bob)
	mustAppend(t, s, msg(g, alice, "ordinary"))
	a := disappearing("acked", now.Add(time.Hour), acked, bobs) // bob's blob is not alice's to tie
	disappearing("expiring", now.Add(time.Minute), expiring)
	if r := purge(now); r.Messages+r.Direct != 0 || len(r.Blobs) != 0 {
		t.Fatalf("PurgeExpired before anything is due = %+v", r)
	}
	if b, err := s.Blob(ctx(t), expiring); err != nil || b.ExpiresAt == nil || !b.ExpiresAt.Equal(now.Add(time.Minute)) {
		t.Fatalf("tied blob = %+v, %v; want it to expire with its message", b, err)
	}
	if b, err := s.Blob(ctx(t), bobs); err != nil || b.ExpiresAt != nil {
		t.Fatalf("another uploader's blob = %+v, %v; want it untouched", b, err)
	}

	// Every recipient acknowledges the first: Ack deletes the message,
	// PurgeExpired its blob.
	mustAck(t, s, bob, g, a.Seq)
	mustAck(t, s, carol, g, a.Seq)
	if r := purge(now); r.Messages != 0 || !slices.Equal(r.Blobs, []store.BlobID{acked}) {
		t.Fatalf("PurgeExpired after the acks = %+v, want only blob %s", r, acked)
	}
	// The second expires, with its blob.
	if r := purge(now.Add(2 * time.Minute)); r.Messages != 1 || !slices.Equal(r.Blobs, []store.BlobID{expiring}) {
		t.Fatalf("PurgeExpired after the expiry = %+v, want 1 message and blob %s", r, expiring)
	}
	// Ordinary messages and blobs are Purge's, never PurgeExpired's.
	if r := purge(now.Add(store.DefaultRetention * 2)); r.Messages != 0 || len(r.Blobs) != 0 {
		t.Fatalf("PurgeExpired long after = %+v, want nothing", r)
	}
	for _, id := range []store.BlobID{ordinary, bobs} {
		if _, err := s.Blob(ctx(t), id); err != nil {
			t.Fatalf("blob %s: %v", id, err)
		}
	}
	for _, id := range []store.BlobID{acked, expiring} {
		_, err := s.Blob(ctx(t), id)
		wantErr(t, err, store.ErrNotFound)
	}

	// A blob's own earlier expiry is kept.
	soon := now.Add(time.Second)
	early, err := s.CreateBlob(ctx(t), store.Blob{ID: store.NewBlobID(), Uploader: alice, Size: 1, ExpiresAt: &soon})
	if err != nil {
		t.Fatal(err)
	}
	disappearing("later", now.Add(time.Hour), early.ID)
	if b, err := s.Blob(ctx(t), early.ID); err != nil || !b.ExpiresAt.Equal(soon) {
		t.Fatalf("blob = %+v, %v; want its own earlier expiry", b, err)
	}
	wantErr(t, s.ExpireBlobs(ctx(t), alice, "", []store.BlobID{early.ID}, soon), store.ErrInvalid)
}
