package client_test

import (
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestImports checks that the client core builds for WebAssembly and keeps
// its I/O behind its interfaces: no SQLite, no processes, no terminal.
func TestImports(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	cmd := exec.Command("go", "list", "-deps", "github.com/hush-chat/hush/client")
	cmd.Env = append(os.Environ(), "GOOS=js", "GOARCH=wasm")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the client core does not build for js/wasm: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	for _, banned := range []string{"os/exec", "modernc.org/sqlite", "github.com/hush-chat/hush/client/sqlite", "golang.org/x/term", "github.com/mattn/go-isatty", "github.com/hush-chat/hush/server", "github.com/hush-chat/hush/store"} {
		if slices.Contains(deps, banned) {
			t.Errorf("package client imports %s", banned)
		}
	}
}
