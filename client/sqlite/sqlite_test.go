package sqlite

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hush-chat/hush/client"
)

func TestStorage(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := db.Begin(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"b/2", "a/1", "b/1", "b\xff", "c"} {
		if err := tx.Put("t", k, []byte("v"+k)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Put("t", "c", []byte("replaced")); err != nil {
		t.Fatal(err)
	}
	if err := tx.Put("other", "b/3", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}

	// A rolled-back transaction writes nothing.
	tx, _ = db.Begin(ctx, true)
	tx.Put("t", "b/9", []byte("lost"))
	tx.Delete("t", "a/1")
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}

	tx, err = db.Begin(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	var keys []string
	if err := tx.Scan("t", "b/", func(k string, v []byte) error {
		keys = append(keys, k+"="+string(v))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(keys, " "); got != "b/1=vb/1 b/2=vb/2" {
		t.Errorf("scan b/ = %s", got)
	}
	keys = nil
	tx.Scan("t", "", func(k string, _ []byte) error { keys = append(keys, k); return nil })
	if got := strings.Join(keys, " "); got != "a/1 b/1 b/2 b\xff c" {
		t.Errorf("scan all = %q", got)
	}
	if v, ok, err := tx.Get("t", "c"); err != nil || !ok || string(v) != "replaced" {
		t.Errorf("get c = %q, %v, %v", v, ok, err)
	}
	if _, ok, err := tx.Get("t", "b/9"); err != nil || ok {
		t.Errorf("a rolled-back row is there: %v, %v", ok, err)
	}
	stop := errors.New("stop")
	if err := tx.Scan("t", "", func(string, []byte) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("scan does not return fn's error: %v", err)
	}
	tx.Rollback()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	var mode string
	db, err = Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.w.QueryRow("PRAGMA secure_delete").Scan(&mode); err != nil || mode != "1" {
		t.Errorf("secure_delete = %q, %v", mode, err)
	}
}

func TestPrefixEnd(t *testing.T) {
	for in, want := range map[string]string{"a": "b", "ab": "ac", "a\xff": "b", "": "", "\xff\xff": ""} {
		got, ok := prefixEnd(in)
		if got != want || ok != (want != "") {
			t.Errorf("prefixEnd(%q) = %q, %v", in, got, ok)
		}
	}
}

// TestScrub: after Scrub, nothing of a deleted row is left in the files,
// not even the stale copies SQLite leaves in pages it rebalanced, while
// the other rows are intact; the database stays open and usable.
func TestScrub(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	write := func(fn func(tx client.StorageTx) error) {
		t.Helper()
		tx, err := db.Begin(ctx, true)
		if err != nil {
			t.Fatal(err)
		}
		if err := fn(tx); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	key := func(i int) string { return fmt.Sprintf("msg-%04d", i) }
	// Rows of changing sizes, rewritten, so that SQLite splits and
	// rebalances pages many times over.
	for round := range 4 {
		write(func(tx client.StorageTx) error {
			for i := range 400 {
				if err := tx.Put("t", key(i), bytes.Repeat([]byte{byte('a' + round)}, 50+(i*37+round*101)%400)); err != nil {
					return err
				}
			}
			return nil
		})
	}
	write(func(tx client.StorageTx) error {
		for i := 0; i < 400; i += 2 {
			if err := tx.Delete("t", key(i)); err != nil {
				return err
			}
		}
		return nil
	})
	if err := db.Scrub(ctx); err != nil {
		t.Fatal(err)
	}
	var raw []byte
	for _, suffix := range []string{"", "-wal", "-shm"} {
		b, err := os.ReadFile(path + suffix)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		raw = append(raw, b...)
	}
	for i := range 400 {
		if found := bytes.Contains(raw, []byte(key(i))); found != (i%2 == 1) {
			t.Fatalf("row %s in the files: %v, want %v", key(i), found, i%2 == 1)
		}
	}
	write(func(tx client.StorageTx) error { return tx.Put("t", "after", []byte("scrub")) })
}
