package client

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestDeviceCertificate(t *testing.T) {
	id, err := NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	key := bytes.Repeat([]byte{7}, 32)
	c, err := id.Certify("alice", 1, key, time.Unix(1700000000, 0))
	if err != nil {
		t.Fatal(err)
	}
	data, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseDeviceCertificate(data)
	if err != nil {
		t.Fatal(err)
	}
	if err := got.Verify(id.Public(), "alice", key); err != nil {
		t.Fatalf("valid certificate rejected: %v", err)
	}
	other, _ := NewIdentity()
	for name, check := range map[string]error{
		"other identity": got.Verify(other.Public(), "alice", key),
		"other user":     got.Verify(id.Public(), "mallory", key),
		"other key":      got.Verify(id.Public(), "alice", bytes.Repeat([]byte{8}, 32)),
	} {
		if !errors.Is(check, ErrBadCertificate) {
			t.Errorf("%s: got %v, want ErrBadCertificate", name, check)
		}
	}
	for n := range len(data) {
		if _, err := ParseDeviceCertificate(data[:n]); err == nil {
			t.Fatalf("truncated certificate (%d bytes) parsed", n)
		}
	}
	tampered := bytes.Clone(data)
	tampered[len(tampered)-1] ^= 1
	if c2, err := ParseDeviceCertificate(tampered); err == nil && c2.Verify(id.Public(), "alice", key) == nil {
		t.Fatal("tampered certificate verified")
	}
}

func TestSafetyNumber(t *testing.T) {
	a, _ := NewIdentity()
	b, _ := NewIdentity()
	ab := SafetyNumber("alice", a.Public(), "bob", b.Public())
	ba := SafetyNumber("bob", b.Public(), "alice", a.Public())
	if ab != ba || len(ab) != 60 || strings.Trim(ab, "0123456789") != "" {
		t.Fatalf("safety numbers %q / %q", ab, ba)
	}
	c, _ := NewIdentity()
	if SafetyNumber("alice", a.Public(), "bob", c.Public()) == ab {
		t.Fatal("a changed identity key kept the safety number")
	}
	if f := FormatSafetyNumber(ab); strings.Count(f, "\n") != 2 || len(strings.Fields(f)) != 12 {
		t.Fatalf("format: %q", f)
	}
	restored, err := ParseIdentity(a.Seed())
	if err != nil || !bytes.Equal(restored.Public(), a.Public()) {
		t.Fatal("identity does not survive its seed")
	}
	if strings.Contains(a.String(), string(a.Seed())) || a.String() != "client.Identity(redacted)" {
		t.Fatal("identity prints itself")
	}
}
