package store_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/hush-chat/hush/store"
)

func TestNormalizeUsername(t *testing.T) {
	for in, want := range map[string]string{"Alice": "alice", "a.b-c_9": "a.b-c_9", "ABC": "abc"} {
		if got, err := store.NormalizeUsername(in); err != nil || got != want {
			t.Errorf("NormalizeUsername(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "ab", "abcdefghijklmnopqrstuvwxyz0123456", "a b", "a/b", "\u212aelvin", "caf\u00e9"} {
		if _, err := store.NormalizeUsername(in); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("NormalizeUsername(%q): %v, want ErrInvalid", in, err)
		}
	}
}

func TestIDText(t *testing.T) {
	id := store.NewDeviceID()
	got, err := store.ParseDeviceID(id.String())
	if err != nil || got != id {
		t.Fatalf("ParseDeviceID(%s) = %s, %v", id, got, err)
	}
	if _, err := store.ParseDeviceID("xyz"); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("ParseDeviceID(bad) = %v", err)
	}
	if store.NewUserID() == store.NewUserID() {
		t.Fatal("two random ids are equal")
	}
}

func TestEpochConflictError(t *testing.T) {
	var err error = &store.EpochConflictError{Current: 3}
	var ec *store.EpochConflictError
	if !errors.Is(err, store.ErrEpochConflict) || !errors.As(err, &ec) || ec.Current != 3 {
		t.Fatal("EpochConflictError does not match ErrEpochConflict")
	}
}

func TestBlobDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "blobs")
	d, err := store.OpenBlobDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	id := store.NewBlobID()
	data := bytes.Repeat([]byte("encrypted attachment "), 10000)
	size, digest, err := d.Put(id, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if size != int64(len(data)) || digest != sha256.Sum256(data) {
		t.Fatalf("Put = %d, %x", size, digest)
	}
	f, err := d.Open(id)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(f)
	fi, _ := f.Stat()
	f.Close()
	if !bytes.Equal(got, data) || fi.Mode().Perm() != 0o600 {
		t.Fatalf("read back %d bytes, mode %v", len(got), fi.Mode())
	}
	// A failed write leaves neither the blob nor a temporary file.
	bad := store.NewBlobID()
	if _, _, err := d.Put(bad, io.MultiReader(bytes.NewReader(data), failingReader{})); err == nil {
		t.Fatal("Put of a failing reader succeeded")
	}
	if _, err := d.Open(bad); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Open after a failed Put: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("directory holds %d entries, want 1", len(entries))
	}
	for range 2 { // deleting twice is fine
		if err := d.Delete(id); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := d.Open(id); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Open after Delete: %v", err)
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("connection reset") }
