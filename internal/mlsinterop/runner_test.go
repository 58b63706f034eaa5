package mlsinterop

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/hush-chat/hush/internal/mlsinterop/pb"
)

// The harness's configurations (interop/configs of mlswg/mls-implementations)
// are in testdata/configs, byte for byte. Every script of every
// configuration runs for every cipher suite of RFC 9420 and both handshake
// modes, its actors alternating between two servers so that every join,
// commit and message crosses from one "implementation" to the other.
// Suites 4 and 6 (X448/Ed448, absent from the Go standard library) are
// skipped by name and counted.

// startServers starts n MLSClient services on loopback and returns a
// client of each.
func startServers(t testing.TB, n int) []*Client {
	t.Helper()
	clients := make([]*Client, n)
	for i := range clients {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- Serve(ctx, lis) }()
		t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("serve: %v", err)
			}
		})
		clients[i] = dial(t, lis.Addr().String())
	}
	return clients
}

// dial connects to an MLSClient service.
func dial(t testing.TB, addr string) *Client {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := NewClient(ctx, pb.NewMLSClientClient(conn))
	if err != nil {
		t.Fatalf("%s: %v", addr, err)
	}
	return c
}

// allSuites are the cipher suites of RFC 9420 §17.1.
var allSuites = []uint32{1, 2, 3, 4, 5, 6, 7}

// x448Suites need X448 and Ed448.
var x448Suites = []uint32{4, 6}

// Under the race detector, which looks for data races in the service and
// the runner rather than for cryptographic mistakes, and makes the
// signatures of the NIST curves many times slower (a play in suite 5,
// P-521, costs about ten in suite 1), every suite plays, but fewer times:
// suites 1 and 2 play every script in both handshake modes, as without
// -race, and each of raceOnce plays one script of each configuration in
// one mode: the configuration's k-th script (in name order) in
// raceOnce[k], with handshakes encrypted for even k. Without -race every
// suite plays every script in both modes.
var raceOnce = []uint32{3, 5, 7}

// racePlays says whether script k of a configuration plays in suite with
// handshakes encrypted or not under the race detector.
func racePlays(suite uint32, encrypt bool, k int) bool {
	if suite == 1 || suite == 2 {
		return true
	}
	return k < len(raceOnce) && raceOnce[k] == suite && encrypt == (k%2 == 0)
}

// counts tallies the plays of one configuration and reports them.
type counts struct {
	mu                      sync.Mutex
	passed, failed, skipped int
}

func newCounts(t *testing.T, config string) *counts {
	c := &counts{}
	t.Cleanup(func() {
		why := "cipher suites 4 and 6 need X448/Ed448"
		if raceDetector {
			why += "; under -race suites 3, 5 and 7 play one script each"
		}
		t.Logf("interop %s: %d plays passed, %d failed, %d skipped (%s)", config, c.passed, c.failed, c.skipped, why)
	})
	return c
}

func (c *counts) record(t *testing.T) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case t.Skipped():
		c.skipped++
	case t.Failed():
		c.failed++
	default:
		c.passed++
	}
}

// playAll plays a script, the k-th of its configuration, for every suite
// and handshake mode; steps, if not nil, limits each play.
func playAll(t *testing.T, clients []*Client, tally *counts, script Script, k int, steps func(suite uint32, encrypt bool) int) {
	for si, suite := range allSuites {
		for _, encrypt := range []bool{false, true} {
			name := fmt.Sprintf("suite%d/public", suite)
			offset := si
			if encrypt {
				name = fmt.Sprintf("suite%d/private", suite)
				offset++
			}
			t.Run(name, func(t *testing.T) {
				defer tally.record(t)
				if slices.Contains(x448Suites, suite) {
					t.Skipf("cipher suite %d needs X448/Ed448, which the Go standard library lacks", suite)
				}
				if raceDetector && !racePlays(suite, encrypt, k) {
					t.Skipf("under the race detector cipher suite %d plays one script of each configuration; go test without -race plays them all", suite)
				}
				run := Run{Suite: suite, EncryptHandshake: encrypt, Clients: clients, Offset: offset}
				if steps != nil {
					if run.Steps = steps(suite, encrypt); run.Steps > 0 && run.Steps < len(script) {
						t.Logf("playing the first %d of %d steps", run.Steps, len(script))
					}
				}
				if err := run.Play(context.Background(), script); err != nil {
					t.Fatal(err)
				}
			})
		}
	}
}

func configNames(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "configs", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no configurations in testdata/configs")
	}
	var names []string
	for _, f := range files {
		names = append(names, strings.TrimSuffix(filepath.Base(f), ".json"))
	}
	return names
}

func loadConfig(t *testing.T, name string) *Config {
	t.Helper()
	c, err := LoadConfig(filepath.Join("testdata", "configs", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Scripts) == 0 {
		t.Fatalf("%s has no scripts", name)
	}
	return c
}

func sortedScripts(c *Config) []string {
	names := make([]string, 0, len(c.Scripts))
	for n := range c.Scripts {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

var fullInterop = flag.Bool("interop.full", false, "play deep_random completely for every cipher suite and handshake mode (slow: P-521 alone takes many minutes)")

// deepRandomSteps says how much of deep_random's one long script (1670
// steps; up to 70 members; 90 commits of adds, removes and updates; 11
// external joins) a play runs: all of it once by default, with
// handshakes encrypted in suite 1, and a prefix elsewhere, as every member
// verifies every new member's KeyPackage and the P-256, P-384 and P-521
// signatures are slow. Prefixes end after a commit: 38 steps reach 23
// members over three commits with updates by reference; 111 steps reach
// 40 members over eight commits and an external join.
func deepRandomSteps(suite uint32, encrypt bool) int {
	switch {
	case *fullInterop:
		return 0
	case testing.Short(), raceDetector:
		return 38
	case suite == 1 && encrypt:
		return 0
	case suite <= 3:
		return 111
	}
	return 38
}

// TestInterop plays every script of every configuration against two
// servers over gRPC on loopback.
func TestInterop(t *testing.T) {
	for _, config := range configNames(t) {
		t.Run(config, func(t *testing.T) {
			t.Parallel()
			c := loadConfig(t, config)
			clients := startServers(t, 2)
			tally := newCounts(t, config)
			var steps func(uint32, bool) int
			if config == "deep_random" {
				steps = deepRandomSteps
			}
			for k, name := range sortedScripts(c) {
				t.Run(name, func(t *testing.T) {
					playAll(t, clients, tally, c.Scripts[name], k, steps)
				})
			}
		})
	}
}

// TestInteropBinary builds the hush command, runs two `hush mls-interop`
// processes and plays the welcome_join and external_join configurations
// against them.
func TestInteropBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the hush binary")
	}
	bin := filepath.Join(t.TempDir(), "hush")
	build := exec.Command("go", "build", "-o", bin, "github.com/hush-chat/hush/cmd/hush")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	clients := []*Client{startBinary(t, bin), startBinary(t, bin)}
	for _, config := range []string{"welcome_join", "external_join"} {
		c := loadConfig(t, config)
		t.Run(config, func(t *testing.T) {
			tally := newCounts(t, config+" (binary)")
			for k, name := range sortedScripts(c) {
				t.Run(name, func(t *testing.T) {
					playAll(t, clients, tally, c.Scripts[name], k, nil)
				})
			}
		})
	}
}

// startBinary runs `hush mls-interop --port 0` and connects to it. At
// cleanup it interrupts the process, which must stop cleanly.
func startBinary(t *testing.T, bin string) *Client {
	t.Helper()
	cmd := exec.Command(bin, "mls-interop", "--port", "0")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("hush mls-interop: %v", err)
			}
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			t.Error("hush mls-interop did not stop on interrupt")
		}
	})
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() {
		t.Fatalf("hush mls-interop printed nothing: %v", lines.Err())
	}
	go func() {
		io.Copy(io.Discard, stdout)
		exited <- cmd.Wait()
	}()
	addr, ok := strings.CutPrefix(lines.Text(), "mls-interop: listening on ")
	if !ok {
		t.Fatalf("unexpected first line %q", lines.Text())
	}
	return dial(t, addr)
}
