// Package bustest is the behaviour suite for bus.Bus implementations:
//
//	bustest.Run(t, func(t *testing.T) (pub, sub bus.Bus) { ... })
//
// newPair returns two buses joined together (two connections to one NATS
// server, say; or the same in-process bus twice), closed at the end of the
// test. Events published on pub must reach subscribers on sub.
package bustest

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hush-chat/hush/bus"
	"github.com/hush-chat/hush/store"
)

// wait is how long the suite waits for an event that should arrive, and
// quiet how long it waits to be sure one does not.
const (
	wait  = 5 * time.Second
	quiet = 200 * time.Millisecond
)

// Run runs the suite.
func Run(t *testing.T, newPair func(t *testing.T) (pub, sub bus.Bus)) {
	t.Run("Deliver", func(t *testing.T) { testDeliver(t, newPair) })
	t.Run("Unsubscribe", func(t *testing.T) { testUnsubscribe(t, newPair) })
	t.Run("Closed", func(t *testing.T) { testClosed(t, newPair) })
}

// recorder collects events on a channel.
type recorder chan bus.Event

func (r recorder) fn(ev bus.Event) { r <- ev }

func (r recorder) want(t *testing.T, want bus.Event) {
	t.Helper()
	select {
	case got := <-r:
		if got.Kind != want.Kind || got.Seq != want.Seq || !bytes.Equal(got.Group, want.Group) {
			t.Fatalf("got %+v, want %+v", got, want)
		}
	case <-time.After(wait):
		t.Fatalf("no event; want %+v", want)
	}
}

func (r recorder) none(t *testing.T) {
	t.Helper()
	select {
	case got := <-r:
		t.Fatalf("unexpected event %+v", got)
	case <-time.After(quiet):
	}
}

func subscribe(t *testing.T, b bus.Bus, d store.DeviceID) (recorder, func()) {
	t.Helper()
	r := make(recorder, 16)
	unsub, err := b.Subscribe(t.Context(), d, r.fn)
	if err != nil {
		t.Fatal(err)
	}
	return r, unsub
}

func publish(t *testing.T, b bus.Bus, d store.DeviceID, ev bus.Event) {
	t.Helper()
	if err := b.Publish(t.Context(), d, ev); err != nil {
		t.Fatal(err)
	}
}

func testDeliver(t *testing.T, newPair func(t *testing.T) (pub, sub bus.Bus)) {
	pub, sub := newPair(t)
	alice, bob := store.NewDeviceID(), store.NewDeviceID()
	ra1, _ := subscribe(t, sub, alice)
	ra2, _ := subscribe(t, sub, alice) // a device connected twice
	rb, _ := subscribe(t, sub, bob)

	group := bus.Event{Kind: bus.KindGroup, Group: store.GroupID{1, 2, 3}, Seq: 42}
	publish(t, pub, alice, group)
	ra1.want(t, group)
	ra2.want(t, group)
	direct := bus.Event{Kind: bus.KindDirect, Seq: 7}
	publish(t, pub, bob, direct)
	rb.want(t, direct)
	// Events go only to the device they name.
	ra1.none(t)
	ra2.none(t)
	rb.none(t)
}

func testUnsubscribe(t *testing.T, newPair func(t *testing.T) (pub, sub bus.Bus)) {
	pub, sub := newPair(t)
	d := store.NewDeviceID()
	r1, unsub1 := subscribe(t, sub, d)
	r2, unsub2 := subscribe(t, sub, d)
	ev := bus.Event{Kind: bus.KindDirect, Seq: 1}
	publish(t, pub, d, ev)
	r1.want(t, ev)
	r2.want(t, ev)
	unsub1()
	unsub1() // idempotent
	ev.Seq = 2
	publish(t, pub, d, ev)
	r2.want(t, ev)
	r1.none(t)
	unsub2()
	publish(t, pub, d, ev)
	r2.none(t)
}

func testClosed(t *testing.T, newPair func(t *testing.T) (pub, sub bus.Bus)) {
	pub, sub := newPair(t)
	d := store.NewDeviceID()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := pub.Publish(ctx, d, bus.Event{Kind: bus.KindDirect}); err == nil {
		t.Fatal("Publish with a cancelled context succeeded")
	}
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := sub.Subscribe(t.Context(), d, func(bus.Event) {}); !errors.Is(err, bus.ErrClosed) {
		t.Fatalf("Subscribe after Close: %v, want bus.ErrClosed", err)
	}
	if err := sub.Publish(t.Context(), d, bus.Event{Kind: bus.KindDirect}); !errors.Is(err, bus.ErrClosed) {
		t.Fatalf("Publish after Close: %v, want bus.ErrClosed", err)
	}
}
