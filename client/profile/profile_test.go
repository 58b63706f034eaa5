package profile_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/hush-chat/hush/client"
	"github.com/hush-chat/hush/client/profile"
)

func TestKeyFile(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "p")
	if _, err := profile.Open(ctx, dir, profile.Options{}); !errors.Is(err, profile.ErrNoProfile) {
		t.Fatalf("open of nothing = %v", err)
	}
	c, err := profile.Open(ctx, dir, profile.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	fi, err := os.Stat(filepath.Join(dir, profile.KeyFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, %v", fi, err)
	}
	if di, _ := os.Stat(dir); di.Mode().Perm() != 0o700 {
		t.Errorf("profile directory mode %o", di.Mode().Perm())
	}
	if fi, _ := os.Stat(filepath.Join(dir, profile.DBFile)); fi.Mode().Perm() != 0o600 {
		t.Errorf("database mode %o", fi.Mode().Perm())
	}
	if _, err := profile.Open(ctx, dir, profile.Options{Create: true}); !errors.Is(err, profile.ErrExists) {
		t.Errorf("create over a profile = %v", err)
	}
	c, err = profile.Open(ctx, dir, profile.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if err := os.Chmod(filepath.Join(dir, profile.KeyFile), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := profile.Open(ctx, dir, profile.Options{}); !errors.Is(err, profile.ErrKeyPermissions) {
		t.Fatalf("open with a world-readable key file = %v", err)
	}
}

func TestPassphrase(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "p")
	c, err := profile.Open(ctx, dir, profile.Options{Create: true, Passphrase: []byte("correct horse")})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if _, err := os.Stat(filepath.Join(dir, profile.KeyFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a passphrase profile has a key file: %v", err)
	}
	if _, err := profile.Open(ctx, dir, profile.Options{}); !errors.Is(err, profile.ErrPassphrase) {
		t.Errorf("open without the passphrase = %v", err)
	}
	_, err = profile.Open(ctx, dir, profile.Options{Passphrase: []byte("battery staple")})
	if !errors.Is(err, client.ErrWrongKey) || err.Error() != "client: wrong passphrase or store key" {
		t.Errorf("open with a wrong passphrase = %v", err)
	}
	c, err = profile.Open(ctx, dir, profile.Options{Passphrase: []byte("correct horse")})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}

func TestDir(t *testing.T) {
	t.Setenv("XDG_DATA_HOME", "/data")
	if d, err := profile.Dir(""); err != nil || d != "/data/hush/default" {
		t.Errorf("Dir(\"\") = %q, %v", d, err)
	}
	if d, err := profile.Dir("work"); err != nil || d != "/data/hush/work" {
		t.Errorf("Dir(work) = %q, %v", d, err)
	}
	for _, bad := range []string{"..", "a/b", "x y"} {
		if _, err := profile.Dir(bad); err == nil {
			t.Errorf("Dir(%q) accepted", bad)
		}
	}
}
