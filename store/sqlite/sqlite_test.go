package sqlite_test

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hush-chat/hush/store"
	"github.com/hush-chat/hush/store/sqlite"
	"github.com/hush-chat/hush/store/storetest"
)

// open opens a store in a fresh temporary directory, on disk (not tmpfs),
// and closes it at the end of the test.
func open(tb testing.TB) store.Store {
	s, err := sqlite.Open(tb.Context(), filepath.Join(tb.TempDir(), "hush.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return open(t) })
}

func BenchmarkAppend(b *testing.B) {
	storetest.BenchmarkAppend(b, func(b *testing.B) store.Store { return open(b) })
}

func BenchmarkFanout(b *testing.B) {
	storetest.BenchmarkFanout(b, func(b *testing.B) store.Store { return open(b) })
}

// TestSecureDelete: once purged (and checkpointed, which Purge does), a
// message's bytes are in neither the database file nor its WAL.
func TestSecureDelete(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "hush.db")
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	u, _ := s.CreateUser(ctx, "alice", nil)
	alice, _ := s.CreateDevice(ctx, u.ID, nil, nil)
	u, _ = s.CreateUser(ctx, "bob", nil)
	bob, _ := s.CreateDevice(ctx, u.ID, nil, nil)
	g := store.GroupID("group")
	if err := s.CreateGroup(ctx, g, alice.ID, 0, []store.DeviceID{bob.ID}); err != nil {
		t.Fatal(err)
	}
	small := []byte("MARKER-small-7f3a9c")
	large := bytes.Repeat([]byte("MARKER-large-51d0e2|"), 1000) // overflow pages
	soon := time.Now().Add(time.Minute)
	for i, p := range [][]byte{small, large} {
		m := store.Message{GroupID: g, Sender: alice.ID, ClientMsgID: fmt.Sprint(i), Kind: store.KindApplication, Payload: p, ExpiresAt: &soon}
		if _, err := s.AppendMessage(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.AppendDirect(ctx, store.Direct{To: bob.ID, Sender: alice.ID, ClientMsgID: "w", Payload: []byte("MARKER-welcome-0c44e1")}); err != nil {
		t.Fatal(err)
	}
	markers := [][]byte{small, large[:20], []byte("MARKER-welcome-0c44e1")}
	if !found(t, path, markers[0]) {
		t.Fatal("marker not found before purging: the test would prove nothing")
	}
	if err := s.AckDirect(ctx, bob.ID, 1); err != nil {
		t.Fatal(err)
	}
	r, err := s.Purge(ctx, soon.Add(time.Second), store.DefaultRetention)
	if err != nil {
		t.Fatal(err)
	}
	if r.Messages != 2 {
		t.Fatalf("Purge = %+v", r)
	}
	for _, m := range markers {
		if found(t, path, m) {
			t.Errorf("%.20q still in the database files after Purge", m)
		}
	}
}

// found reports whether b occurs in the database file or its WAL.
func found(t *testing.T, path string, b []byte) bool {
	t.Helper()
	for _, p := range []string{path, path + "-wal"} {
		data, err := os.ReadFile(p)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
		if bytes.Contains(data, b) {
			return true
		}
	}
	return false
}

// TestConcurrentOpen: processes (here, stores) opening a new file at once
// migrate it once and can all use it.
func TestConcurrentOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hush.db")
	const n = 4
	stores := make([]*sqlite.Store, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { stores[i], errs[i] = sqlite.Open(t.Context(), path) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		defer stores[i].Close()
	}
	for i, s := range stores {
		if _, err := s.CreateUser(t.Context(), fmt.Sprint("user", i), nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := stores[0].UserByName(t.Context(), "user3"); err != nil {
		t.Fatal(err)
	}
}

// TestReopen: data survives closing and reopening, and migrations are not
// applied twice.
func TestReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hush.db")
	s, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	u, err := s.CreateUser(t.Context(), "persistent", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got, err := s.User(t.Context(), u.ID); err != nil || got.Username != "persistent" {
		t.Fatalf("after reopening: %+v, %v", got, err)
	}
}
