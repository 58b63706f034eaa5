package delivery

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/hush-chat/hush/bus"
	"github.com/hush-chat/hush/proto"
	"github.com/hush-chat/hush/server/metrics"
	"github.com/hush-chat/hush/store"
	"github.com/hush-chat/hush/store/sqlite"
)

// newService returns a Service over a fresh SQLite store and a local bus,
// and a device in it.
func newService(t *testing.T, poll time.Duration) (*Service, store.Store, store.DeviceID) {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "hush.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	b := bus.NewLocal()
	t.Cleanup(func() { b.Close() })
	u, err := st.CreateUser(ctx, "alice", make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	d, err := st.CreateDevice(ctx, u.ID, make([]byte, 32), []byte("credential"))
	if err != nil {
		t.Fatal(err)
	}
	return New(st, b, Options{PollInterval: poll, Metrics: metrics.New()}), st, d.ID
}

// A Feed has no goroutine of its own: it calls back, and Next returns
// what the callback announced.
func TestFeedCallsBack(t *testing.T) {
	ctx := context.Background()
	s, _, dev := newService(t, time.Hour)
	woken := make(chan struct{}, 100)
	f, err := s.Follow(ctx, dev, func() { woken <- struct{}{} })
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// The first Next reads everything pending: nothing yet.
	if p, err := f.Next(ctx); err != nil || len(p.Messages)+len(p.Typing) != 0 {
		t.Fatalf("first Next: %+v, %v", p, err)
	}
	// A bus notification wakes the Feed.
	if err := s.bus.Publish(ctx, dev, bus.Event{}); err != nil {
		t.Fatal(err)
	}
	<-woken
	if _, err := f.Next(ctx); err != nil {
		t.Fatal(err)
	}
	// So do a rescan and an acknowledgement.
	s.Rescan()
	<-woken
	f.Acked()
	<-woken
	// Typing signals queue up to typingQueue, then are dropped.
	s.hub.each(dev, func(f *Feed) {
		for range typingQueue + 5 {
			f.relayTyping(protoTyping())
		}
	})
	p, err := f.Next(ctx)
	if err != nil || len(p.Typing) != typingQueue {
		t.Fatalf("Next after %d typing signals: %d returned, %v", typingQueue+5, len(p.Typing), err)
	}
	if p, _ := f.Next(ctx); len(p.Typing) != 0 {
		t.Fatal("typing signals returned twice")
	}
	// A revocation through this node: the callback, then ErrRevoked.
	for len(woken) > 0 {
		<-woken
	}
	if err := s.Revoke(ctx, dev); err != nil {
		t.Fatal(err)
	}
	<-woken
	if _, err := f.Next(ctx); !errors.Is(err, ErrRevoked) {
		t.Fatalf("Next after Revoke: %v, want ErrRevoked", err)
	}
}

// The hub's poll wheel wakes every Feed once per PollInterval, and a
// poll finds a revocation made elsewhere (straight in the store here).
func TestFeedPolls(t *testing.T) {
	ctx := context.Background()
	s, st, dev := newService(t, 16*time.Millisecond)
	woken := make(chan struct{}, 1)
	f, err := s.Follow(ctx, dev, func() {
		select {
		case woken <- struct{}{}:
		default:
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Next(ctx); err != nil {
		t.Fatal(err)
	}
	if err := st.RevokeDevice(ctx, dev); err != nil {
		t.Fatal(err)
	}
	for {
		<-woken // only the wheel wakes this Feed
		if _, err := f.Next(ctx); errors.Is(err, ErrRevoked) {
			return
		} else if err != nil {
			t.Fatal(err)
		}
	}
}

func protoTyping() proto.Typing { return proto.Typing{GroupID: []byte{1}, Payload: []byte{2}} }

// A send-only Feed (FollowSendOnly) takes nothing to push and calls back
// only for a revocation: through this node at once, through another at a
// poll.
func TestFeedSendOnly(t *testing.T) {
	ctx := context.Background()
	s, st, dev := newService(t, 16*time.Millisecond)
	woken := make(chan struct{}, 100)
	f := s.FollowSendOnly(dev, func() { woken <- struct{}{} })
	defer f.Close()
	// What wakes a pushing Feed (see TestFeedCallsBack) is ignored; these
	// calls are synchronous, so a callback would be queued by now.
	s.Rescan()
	f.Acked()
	s.hub.each(dev, func(f *Feed) {
		f.offer(store.GroupID{1}, 1, []byte(`{"type":"message"}`), false)
		f.offer(store.GroupID{1}, 2, nil, true)
		f.event(bus.Event{Kind: bus.KindGroup, Group: store.GroupID{1}, Seq: 3})
		f.relayTyping(protoTyping())
	})
	if err := s.bus.Publish(ctx, dev, bus.Event{}); err != nil {
		t.Fatal(err)
	}
	for len(woken) > 0 {
		<-woken // polls of the wheel (every 16 ms)
	}
	if p, err := f.Next(ctx); err != nil || len(p.Messages)+len(p.Typing) != 0 {
		t.Fatalf("Next of a send-only Feed: %+v, %v", p, err)
	}
	f.mu.Lock()
	kept := len(f.offers) + len(f.groups) + len(f.typing)
	f.mu.Unlock()
	if kept != 0 {
		t.Fatalf("a send-only Feed kept %d offers, announcements or typing signals", kept)
	}
	// A revocation made elsewhere (straight in the store) is found at a
	// poll.
	if err := st.RevokeDevice(ctx, dev); err != nil {
		t.Fatal(err)
	}
	for {
		<-woken
		if _, err := f.Next(ctx); errors.Is(err, ErrRevoked) {
			return
		} else if err != nil {
			t.Fatal(err)
		}
	}
}
