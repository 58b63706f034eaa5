package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/hush-chat/hush/server"
)

func TestShortDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		5 * time.Second: "5s", 90 * time.Second: "90s", time.Minute: "1m", 8 * time.Hour: "8h",
		24 * time.Hour: "24h", 7 * 24 * time.Hour: "7d", 90 * 24 * time.Hour: "90d",
	} {
		if got := shortDuration(d); got != want {
			t.Errorf("shortDuration(%v) = %q, want %q", d, got, want)
		}
	}
	for d, want := range map[time.Duration]string{
		-time.Second: "0s", 4400 * time.Millisecond: "4s", 59*time.Minute + 12*time.Second: "59m 12s",
		23*time.Hour + 5*time.Minute + 9*time.Second: "23h 5m", 6*24*time.Hour + 23*time.Hour: "6d 23h",
	} {
		if got := remaining(d); got != want {
			t.Errorf("remaining(%v) = %q, want %q", d, got, want)
		}
	}
}

// TestTimerCommand sets a conversation's timer through the command line:
// bad timers are refused and change nothing; read shows the time a
// message has left, and a read after the expiry shows it no more.
func TestTimerCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for a 5-second timer")
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := server.New(ctx, server.Options{Addr: "127.0.0.1:0", DataDir: t.TempDir(), DeviceRate: -1, IPRate: -1, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	data := t.TempDir()
	t.Setenv("XDG_DATA_HOME", data)
	t.Setenv("HOME", data)
	hush := func(want int, args ...string) string {
		t.Helper()
		var stdout, stderr bytes.Buffer
		if code := run(ctx, &stdout, &stderr, args); code != want {
			t.Fatalf("hush %s: exit %d, want %d\n%s%s", strings.Join(args, " "), code, want, &stdout, &stderr)
		}
		return stdout.String() + stderr.String()
	}
	contains := func(out string, want ...string) {
		t.Helper()
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("output lacks %q:\n%s", w, out)
			}
		}
	}
	hush(0, "register", "--server", srv.URL(), "alice")
	hush(0, "register", "--server", srv.URL(), "--profile", "bob", "bob")
	hush(0, "group", "create", "weekend", "bob")

	contains(hush(0, "timer", "--help"), "presets: 5s 30s 1m 5m 1h 8h 24h 7d 90d")
	for _, bad := range []string{"0s", "4s", "91d", "garbage"} {
		contains(hush(1, "timer", "weekend", bad), "invalid disappearing-message timer")
	}
	contains(hush(1, "timer", "weekend", "--", "-5s"), "invalid disappearing-message timer: -5s is negative")
	contains(hush(0, "timer", "weekend"), "weekend: disappearing messages off")
	contains(hush(0, "timer", "weekend", "5s"), "weekend: messages disappear after 5 seconds")
	contains(hush(0, "groups", "--profile", "bob"), "messages disappear after 5 seconds")
	hush(0, "send", "weekend", "vanishing", "words")

	// bob reads: the message's timer starts, and the time it has left shows.
	contains(hush(0, "read", "--profile", "bob", "weekend"), "alice: vanishing words", "disappears in ")
	var m messageJSON
	if err := json.Unmarshal([]byte(hush(0, "read", "--profile", "bob", "--json", "weekend")), &m); err != nil {
		t.Fatal(err)
	}
	if m.TimerSeconds != 5 || time.Until(m.Expires) > 5*time.Second || time.Until(m.Expires) < 3*time.Second {
		t.Fatalf("read --json: timer %ds, expires in %v", m.TimerSeconds, time.Until(m.Expires))
	}
	time.Sleep(time.Until(m.Expires) + 100*time.Millisecond)
	if out := hush(0, "read", "--profile", "bob", "weekend"); strings.Contains(out, "vanishing") {
		t.Errorf("the message is still shown after its expiry:\n%s", out)
	}
}
