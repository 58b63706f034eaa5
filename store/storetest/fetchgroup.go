package storetest

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/hush-chat/hush/store"
)

// testFetchGroup: FetchGroup reads one group's log after a position, as
// Fetch would show it to the device.
func testFetchGroup(t *testing.T, s store.Store) {
	alice, bob, carol := device(t, s), device(t, s), device(t, s)
	g := group(t, s, alice, bob)
	other := group(t, s, alice, bob)
	for i := range 6 {
		mustAppend(t, s, msg(g, alice, fmt.Sprint(i)))
	}
	mustAppend(t, s, msg(g, bob, "own"))
	mustAppend(t, s, msg(other, alice, "elsewhere"))
	gone := time.Now().Add(-time.Second)
	expired := msg(g, alice, "expired")
	expired.ExpiresAt = &gone
	mustAppend(t, s, expired)
	mustAck(t, s, bob, g, 2)

	get := func(d store.DeviceID, after uint64, limit int) []string {
		t.Helper()
		ms, err := s.FetchGroup(ctx(t), d, g, after, limit)
		if err != nil {
			t.Fatalf("FetchGroup: %v", err)
		}
		var out []string
		for i, m := range ms {
			if !slices.Equal(m.GroupID, g) || m.Sender != alice || (i > 0 && m.Seq <= ms[i-1].Seq) {
				t.Fatalf("FetchGroup returned %+v", m)
			}
			out = append(out, string(m.Payload))
		}
		return out
	}
	// From the cursor (after below it), past a position, with a limit.
	if got := get(bob, 0, 0); !slices.Equal(got, []string{"2", "3", "4", "5"}) {
		t.Fatalf("after 0: %v", got)
	}
	if got := get(bob, 4, 0); !slices.Equal(got, []string{"4", "5"}) {
		t.Fatalf("after 4: %v", got)
	}
	if got := get(bob, 0, 2); !slices.Equal(got, []string{"2", "3"}) {
		t.Fatalf("limit 2: %v", got)
	}
	if got := get(bob, 100, 0); len(got) != 0 {
		t.Fatalf("after the end: %v", got)
	}
	// Not on the roster: nothing, and no error.
	if got := get(carol, 0, 0); len(got) != 0 {
		t.Fatalf("non-member: %v", got)
	}
	// Unknown group: nothing.
	if ms, err := s.FetchGroup(ctx(t), bob, store.GroupID(randBytes(32)), 0, 0); err != nil || len(ms) != 0 {
		t.Fatalf("unknown group: %v %v", ms, err)
	}
}
