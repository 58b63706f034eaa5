package test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestCLI runs the real hush binary as a new user following the README
// would: register two accounts, send, read, and look around.
func TestCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the hush binary")
	}
	bin := filepath.Join(t.TempDir(), "hush")
	if runtime.GOOS == "windows" {
		bin += ".exe"
	}
	build := exec.Command("go", "build", "-o", bin, "github.com/hush-chat/hush/cmd/hush")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	s := startE2E(t)
	data := t.TempDir()
	hush := func(wantCode int, args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+data, "HOME="+data)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		code := 0
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			code = exit.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != wantCode {
			t.Fatalf("hush %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, wantCode, &stdout, &stderr)
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

	contains(hush(1, "whoami"), "no account on this device yet")
	contains(hush(0, "register", "--server", s.URL(), "alice"), "Registered alice on "+s.URL())
	contains(hush(0, "register", "bob", "--profile", "bob", "--server", s.URL()), "Registered bob")
	contains(hush(1, "register", "carol", "--profile", "bob", "--server", s.URL()), "already has an account")
	contains(hush(0, "whoami"), "alice on "+s.URL())

	// alice's profile remembers its server: no --server from here on.
	contains(hush(0, "send", "bob", "hello", "from", "the", "cli"), "sent ")
	out := hush(0, "read", "--profile", "bob")
	contains(out, "== @alice", "alice: hello from the cli")

	var msg struct {
		ID     string `json:"id"`
		Sender string `json:"sender"`
		Text   string `json:"text"`
	}
	jsonOut := hush(0, "read", "--profile", "bob", "--json", "alice")
	if err := json.Unmarshal([]byte(strings.TrimSpace(jsonOut)), &msg); err != nil || msg.Sender != "alice" || msg.Text != "hello from the cli" {
		t.Fatalf("read --json: %v\n%s", err, jsonOut)
	}
	contains(hush(0, "reply", "--profile", "bob", msg.ID[:8], "hi", "alice"), "sent ")
	contains(hush(0, "react", msg.ID[:8], "👍", "--profile", "bob"), "reacted to "+msg.ID[:8])
	out = hush(0, "read", "bob")
	contains(out, "you: hello from the cli", "bob: hi alice", "↪ replying to alice: hello from the cli", "👍 bob", "read by bob")

	// A group, a file, and the conversation list.
	contains(hush(0, "group", "create", "team", "bob"), "created team")
	file := filepath.Join(t.TempDir(), "notes.txt")
	if err := os.WriteFile(file, []byte("meeting at noon\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	contains(hush(0, "attach", "team", file, "-m", "the notes"), "sent ")
	out = hush(0, "read", "team", "--profile", "bob")
	contains(out, "== team", "[file notes.txt, 16 B, text/plain")
	id := strings.TrimPrefix(strings.Fields(out[strings.Index(out, "\n")+1:])[0], "[")
	id = strings.TrimSuffix(id, "]")
	dl := t.TempDir()
	contains(hush(0, "download", "--profile", "bob", id, dl), "digest checked")
	if got, err := os.ReadFile(filepath.Join(dl, "notes.txt")); err != nil || string(got) != "meeting at noon\n" {
		t.Errorf("downloaded %q, %v", got, err)
	}
	contains(hush(0, "groups", "--profile", "bob"), "team", "@alice")
	contains(hush(0, "members", "team"), "alice", "bob", "certified", "(this device)")
	out = hush(0, "verify", "bob")
	contains(out, "Safety number with bob", "█", "Not verified")
	contains(hush(0, "verify", "--confirm", "bob"), "bob is verified")
	contains(hush(0, "devices"), "certified")

	// Help and usage errors.
	contains(hush(0, "send", "--help"), "Usage: hush send", "-json", "-profile")
	contains(hush(2, "send", "bob"), "Usage: hush send")
	contains(hush(2, "nonsense"), "unknown command")
}
