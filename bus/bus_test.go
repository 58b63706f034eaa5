package bus_test

import (
	"testing"

	"github.com/hush-chat/hush/bus"
	"github.com/hush-chat/hush/bus/bustest"
	"github.com/hush-chat/hush/store"
)

func TestLocal(t *testing.T) {
	bustest.Run(t, func(t *testing.T) (bus.Bus, bus.Bus) {
		b := bus.NewLocal()
		t.Cleanup(func() { b.Close() })
		return b, b
	})
}

// A handler may unsubscribe itself without deadlocking.
func TestLocalUnsubscribeFromHandler(t *testing.T) {
	b := bus.NewLocal()
	d := store.NewDeviceID()
	calls := 0
	var unsub func()
	unsub, err := b.Subscribe(t.Context(), d, func(bus.Event) { calls++; unsub() })
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := b.Publish(t.Context(), d, bus.Event{Kind: bus.KindDirect}); err != nil {
			t.Fatal(err)
		}
	}
	if calls != 1 {
		t.Fatalf("handler called %d times, want 1", calls)
	}
}
