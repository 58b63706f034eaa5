package server

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func configure(t *testing.T, args []string, env map[string]string) (Options, error) {
	t.Helper()
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return Configure(fs, args, func(k string) string { return env[k] })
}

func TestConfigPrecedence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "hush.conf")
	os.WriteFile(file, []byte("# comment\naddr = 127.0.0.1:1\ndata = \"/from/file\"\nretention = 7d\nbus = local\n"), 0o600)
	o, err := configure(t, []string{"--config", file, "--addr", "127.0.0.1:3", "--insecure-public"},
		map[string]string{"HUSH_ADDR": "127.0.0.1:2", "HUSH_DATA": "/from/env"})
	if err != nil {
		t.Fatal(err)
	}
	if o.Addr != "127.0.0.1:3" || o.DataDir != "/from/env" || o.Retention != 7*24*time.Hour || o.Bus != "local" || !o.InsecurePublic {
		t.Fatalf("flags over env over file: %+v", o)
	}
	// HUSH_CONFIG names the file too.
	o, err = configure(t, nil, map[string]string{"HUSH_CONFIG": file})
	if err != nil || o.Addr != "127.0.0.1:1" {
		t.Fatalf("HUSH_CONFIG: %+v %v", o, err)
	}
}

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.conf")
	os.WriteFile(bad, []byte("colour = blue\n"), 0o600)
	for name, args := range map[string][]string{
		"unknown key":  {"--config", bad},
		"missing file": {"--config", filepath.Join(dir, "none")},
		"bad duration": {"--retention", "forever"},
		"bad number":   {"--device-rate", "many"},
		"stray arg":    {"extra"},
	} {
		if _, err := configure(t, args, nil); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// TestSampleConfig: the checked-in sample parses, and gives the defaults.
func TestSampleConfig(t *testing.T) {
	o, err := configure(t, []string{"--config", "../docs/hush.sample.conf"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	d := Options{}.withDefaults()
	if o.Addr != d.Addr || o.Retention != d.Retention || o.DeviceRate != d.DeviceRate || o.IPBurst != d.IPBurst {
		t.Fatalf("sample config %+v differs from the defaults %+v", o, d)
	}
}

func TestRefusals(t *testing.T) {
	ctx := t.Context()
	// Plain HTTP on a public address needs --insecure-public.
	_, err := New(ctx, Options{Addr: "0.0.0.0:0", DataDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "insecure-public") {
		t.Fatalf("public plain HTTP: %v", err)
	}
	// A TLS key readable by others is refused.
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(cert, []byte("x"), 0o644)
	os.WriteFile(key, []byte("x"), 0o644)
	_, err = New(ctx, Options{Addr: "127.0.0.1:0", DataDir: t.TempDir(), TLSCert: cert, TLSKey: key})
	if err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("loose key file: %v", err)
	}
	if _, err := New(ctx, Options{Addr: "127.0.0.1:0", DataDir: t.TempDir(), Store: "mysql://x"}); err == nil {
		t.Fatal("unknown store accepted")
	}
}
