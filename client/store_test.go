package client_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/hush-chat/hush/client"
	"github.com/hush-chat/hush/client/sqlite"
)

// TestStoreSealed checks that the database files hold no plaintext: not a
// message, a group name, a file name, a contact's username, nor the store
// key.
func TestStoreSealed(t *testing.T) {
	ctx := context.Background()
	srv := newFakeServer()
	const marker = "MARKER-7c1e0f3b-plaintext"
	alice := register(t, srv, "alicewonderland")
	bob := register(t, srv, "bobthebuilder")
	cv, err := alice.CreateGroup(ctx, "group-"+marker, "bobthebuilder")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.SendText(ctx, cv.ID, "text-"+marker); err != nil {
		t.Fatal(err)
	}
	data := []byte("file-" + marker)
	if _, err := alice.SendAttachment(ctx, cv.ID, client.File{Name: "name-" + marker, Size: int64(len(data)), Body: bytes.NewReader(data)}, ""); err != nil {
		t.Fatal(err)
	}
	mustSync(t, bob)
	if msgs := texts(t, bob, cv.ID); len(msgs) != 2 {
		t.Fatalf("bob got %q", msgs)
	}
	for _, d := range []*device{alice, bob} {
		var raw []byte
		for _, suffix := range []string{"", "-wal", "-shm"} {
			b, err := os.ReadFile(d.path + suffix)
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				t.Fatal(err)
			}
			raw = append(raw, b...)
		}
		if len(raw) == 0 {
			t.Fatal("no database bytes")
		}
		for _, secret := range [][]byte{[]byte(marker), d.key.Bytes(), []byte("bobthebuilder"), []byte("alicewonderland")} {
			if bytes.Contains(raw, secret) {
				t.Errorf("%s: the database files contain %q", filepath.Base(d.path), secret)
			}
		}
	}
}

func TestStoreWrongKey(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	db, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.Open(ctx, client.Options{Storage: db, Key: client.NewStoreKey()})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	db, err = sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := client.Open(ctx, client.Options{Storage: db, Key: client.NewStoreKey()}); !errors.Is(err, client.ErrWrongKey) {
		t.Fatalf("open with another key = %v, want ErrWrongKey", err)
	}
}
