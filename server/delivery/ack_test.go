package delivery

import (
	"crypto/rand"
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/hush-chat/hush/bus"
	"github.com/hush-chat/hush/proto"
	"github.com/hush-chat/hush/store"
	"github.com/hush-chat/hush/store/sqlite"
)

// TestAckItems: the items of one Ack are applied together; a failing item
// does not keep the others from moving their cursors, and the error
// returned is that of the first failing item.
func TestAckItems(t *testing.T) {
	ctx := t.Context()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "hush.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	dev := func() store.DeviceID {
		u, err := st.CreateUser(ctx, "u"+rand.Text()[:10], nil)
		if err != nil {
			t.Fatal(err)
		}
		d, err := st.CreateDevice(ctx, u.ID, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		return d.ID
	}
	alice, bob := dev(), dev()
	var groups []store.GroupID
	for range 3 {
		g := make([]byte, 32)
		rand.Read(g)
		groups = append(groups, g)
		if err := st.CreateGroup(ctx, g, alice, 0, []store.DeviceID{bob}); err != nil {
			t.Fatal(err)
		}
		for i := range 5 {
			m := store.Message{GroupID: g, Sender: alice, ClientMsgID: fmt.Sprint(len(groups), "/", i), Kind: store.KindApplication, Payload: []byte("x")}
			if _, err := st.AppendMessage(ctx, m); err != nil {
				t.Fatal(err)
			}
		}
	}
	unknown := make([]byte, 32)
	rand.Read(unknown)
	svc := New(st, bus.NewLocal(), Options{})

	err = svc.Ack(ctx, bob, []proto.AckItem{
		{GroupID: groups[0], Seq: 3},
		{GroupID: unknown, Seq: 1},    // first failure
		{GroupID: groups[1], Seq: 99}, // past the end
		{GroupID: groups[1], Seq: 2},
		{GroupID: groups[2], Seq: 5},
	})
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Ack = %v, want the first failing item's ErrNotFound", err)
	}
	for i, want := range []uint64{4, 3, 0} { // first pending seq per group; 0: none
		ms, err := st.FetchGroup(ctx, bob, groups[i], 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case want == 0 && len(ms) != 0, want != 0 && (len(ms) == 0 || ms[0].Seq != want):
			t.Fatalf("group %d: pending %d messages from %v, want from seq %d", i, len(ms), ms, want)
		}
	}
	// Alone, the bad item's own error.
	err = svc.Ack(ctx, bob, []proto.AckItem{{GroupID: groups[1], Seq: 99}})
	if !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("Ack past the end = %v, want ErrInvalid", err)
	}
}
