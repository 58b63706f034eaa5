package idb_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"

	"github.com/hush-chat/hush/client"
	"github.com/hush-chat/hush/web/idb"
)

// disk is a Persister in memory, as IndexedDB would keep the rows.
type disk struct {
	rows map[string][]byte
	fail error
	n    int
}

func (d *disk) Persist(_ context.Context, puts []idb.Row, dels []string) error {
	if d.fail != nil {
		return d.fail
	}
	d.n++
	for _, r := range puts {
		d.rows[r.ID] = slices.Clone(r.Value)
	}
	for _, id := range dels {
		delete(d.rows, id)
	}
	return nil
}

func (d *disk) load() []idb.Row {
	var out []idb.Row
	for _, id := range slices.Sorted(maps.Keys(d.rows)) {
		out = append(out, idb.Row{ID: id, Value: d.rows[id]})
	}
	return out
}

func open(t *testing.T, d *disk) *idb.Store {
	t.Helper()
	s, err := idb.New(d.load(), d)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func put(t *testing.T, s *idb.Store, kv ...string) {
	t.Helper()
	tx, err := s.Begin(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(kv); i += 2 {
		if err := tx.Put("t", kv[i], []byte(kv[i+1])); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

func scan(t *testing.T, tx client.StorageTx, prefix string) []string {
	t.Helper()
	var out []string
	err := tx.Scan("t", prefix, func(k string, v []byte) error {
		out = append(out, k+"="+string(v))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestTransactions(t *testing.T) {
	ctx := context.Background()
	d := &disk{rows: map[string][]byte{}}
	s := open(t, d)
	put(t, s, "b/2", "x", "a/1", "y", "b/1", "z", "c", "w")

	tx, _ := s.Begin(ctx, true)
	tx.Put("t", "b/0", []byte("new"))
	tx.Delete("t", "b/2")
	tx.Put("other", "b/9", []byte("elsewhere"))
	if got, want := scan(t, tx, "b/"), []string{"b/0=new", "b/1=z"}; !slices.Equal(got, want) {
		t.Errorf("scan in the writer = %q, want %q", got, want)
	}
	// A reader does not see what is not committed.
	r, _ := s.Begin(ctx, false)
	if got, want := scan(t, r, "b/"), []string{"b/1=z", "b/2=x"}; !slices.Equal(got, want) {
		t.Errorf("scan in a reader = %q, want %q", got, want)
	}
	r.Rollback()
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if v, ok, _ := mustBegin(t, s, false).Get("t", "b/0"); !ok || string(v) != "new" {
		t.Errorf("after commit: b/0 = %q, %v", v, ok)
	}

	// Reopened from the persisted rows, everything is there.
	s2 := open(t, d)
	r2 := mustBegin(t, s2, false)
	if got, want := scan(t, r2, ""), []string{"a/1=y", "b/0=new", "b/1=z", "c=w"}; !slices.Equal(got, want) {
		t.Errorf("reopened: %q, want %q", got, want)
	}
	if v, ok, _ := r2.Get("other", "b/9"); !ok || string(v) != "elsewhere" {
		t.Errorf("reopened: other/b/9 = %q, %v", v, ok)
	}
}

func mustBegin(t *testing.T, s *idb.Store, w bool) client.StorageTx {
	t.Helper()
	tx, err := s.Begin(context.Background(), w)
	if err != nil {
		t.Fatal(err)
	}
	return tx
}

// TestFailedCommit checks that a transaction IndexedDB refused leaves
// nothing behind, and that the next writer can go on.
func TestFailedCommit(t *testing.T) {
	d := &disk{rows: map[string][]byte{}}
	s := open(t, d)
	put(t, s, "k", "old")
	d.fail = errors.New("quota exceeded")
	tx := mustBegin(t, s, true)
	tx.Put("t", "k", []byte("new"))
	if err := tx.Commit(); err == nil {
		t.Fatal("commit succeeded")
	}
	d.fail = nil
	if v, _, _ := mustBegin(t, s, false).Get("t", "k"); string(v) != "old" {
		t.Errorf("after a failed commit k = %q", v)
	}
	put(t, s, "k", "newer")
	if string(d.rows[idb.RowID("t", "k")]) != "newer" {
		t.Errorf("disk holds %q", d.rows[idb.RowID("t", "k")])
	}
}

// TestWritersTakeTurns checks that a second writer waits for the first,
// or for its context.
func TestWritersTakeTurns(t *testing.T) {
	d := &disk{rows: map[string][]byte{}}
	s := open(t, d)
	w1 := mustBegin(t, s, true)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Begin(ctx, true); !errors.Is(err, context.Canceled) {
		t.Fatalf("second writer: %v, want context.Canceled", err)
	}
	done := make(chan error)
	go func() {
		w2, err := s.Begin(context.Background(), true)
		if err == nil {
			err = w2.Rollback()
		}
		done <- err
	}()
	w1.Rollback()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// A commit with nothing to write does not reach the disk.
	tx := mustBegin(t, s, true)
	if err := tx.Commit(); err != nil || d.n != 0 {
		t.Fatalf("empty commit: %v, %d writes", err, d.n)
	}
}

// TestClientState runs the client core's own store on this Storage: a
// reopened store proves its key, and refuses another one.
func TestClientState(t *testing.T) {
	ctx := context.Background()
	d := &disk{rows: map[string][]byte{}}
	key := client.NewStoreKey()
	c, err := client.Open(ctx, client.Options{Storage: open(t, d), Key: key})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Account(); !errors.Is(err, client.ErrNoAccount) {
		t.Fatalf("Account on a new store: %v", err)
	}
	c.Close()
	if len(d.rows) == 0 {
		t.Fatal("nothing persisted")
	}
	for id, v := range d.rows {
		if slices.Contains([]string{"hush local store v1"}, string(v)) {
			t.Errorf("row %q holds plaintext", id)
		}
	}
	if _, err := client.Open(ctx, client.Options{Storage: open(t, d), Key: client.NewStoreKey()}); !errors.Is(err, client.ErrWrongKey) {
		t.Fatalf("open with another key: %v, want ErrWrongKey", err)
	}
	c, err = client.Open(ctx, client.Options{Storage: open(t, d), Key: key})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}

func ExampleRowID() {
	fmt.Printf("%q\n", idb.RowID("msgs", "ab12/cd34"))
	// Output: "msgs\x00ab12/cd34"
}
