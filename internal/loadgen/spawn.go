package loadgen

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// SpawnConfig describes server nodes for the bench to start itself.
type SpawnConfig struct {
	// Binary is the hush executable; Nodes how many `hush serve` to start.
	Binary string
	Nodes  int
	// Store is "sqlite" (each node its own file; one node only), or a
	// postgres:// URL, in which the nodes get a fresh schema, dropped
	// afterwards.
	Store string
	// Bus is "local" (one node only) or a nats:// URL.
	Bus string
	// Pprof starts each node with --pprof on a free loopback port.
	Pprof bool
	// Dir holds the nodes' data directories and logs.
	Dir string
	// Args are extra flags for every node.
	Args []string
}

// Node is a spawned server.
type Node struct {
	URL   string
	PID   int
	Pprof string // base URL of its profiler, if on
	Log   string // file with its stderr
	cmd   *exec.Cmd
	exit  chan error
}

// Spawned is a set of nodes started by Spawn.
type Spawned struct {
	Nodes  []*Node
	schema string
	admin  string
}

// Spawn starts the nodes and waits until each answers its health check.
func Spawn(ctx context.Context, sc SpawnConfig) (s *Spawned, err error) {
	if sc.Nodes < 1 {
		return nil, errors.New("spawn: at least one node")
	}
	if sc.Bus == "" {
		sc.Bus = "local"
	}
	if sc.Store == "" {
		sc.Store = "sqlite"
	}
	if sc.Nodes > 1 && (sc.Bus == "local" || !strings.HasPrefix(sc.Store, "postgres")) {
		return nil, errors.New("spawn: several nodes need a postgres:// store and a nats:// bus")
	}
	s = &Spawned{}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	store := sc.Store
	if strings.HasPrefix(store, "postgres") {
		s.admin = store
		s.schema = "hush_bench_" + hex.EncodeToString(randomBytes(5))
		if err := s.pg(ctx, "CREATE SCHEMA "+s.schema); err != nil {
			return s, err
		}
		sep := "?"
		if strings.Contains(store, "?") {
			sep = "&"
		}
		store += sep + "search_path=" + s.schema
	}
	for i := range sc.Nodes {
		port, err := freePort()
		if err != nil {
			return s, err
		}
		dir := filepath.Join(sc.Dir, fmt.Sprintf("node%d", i+1))
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return s, err
		}
		n := &Node{URL: fmt.Sprintf("http://127.0.0.1:%d", port), Log: filepath.Join(sc.Dir, fmt.Sprintf("node%d.log", i+1)), exit: make(chan error, 1)}
		args := []string{"serve", "--addr", fmt.Sprintf("127.0.0.1:%d", port), "--data", dir,
			"--store", store, "--bus", sc.Bus, "--device-rate", "-1", "--ip-rate", "-1", "--log-level", "warn"}
		if sc.Pprof {
			pp, err := freePort()
			if err != nil {
				return s, err
			}
			n.Pprof = fmt.Sprintf("http://127.0.0.1:%d", pp)
			args = append(args, "--pprof", fmt.Sprintf("127.0.0.1:%d", pp))
		}
		args = append(args, sc.Args...)
		logf, err := os.Create(n.Log)
		if err != nil {
			return s, err
		}
		n.cmd = exec.Command(sc.Binary, args...)
		n.cmd.Stdout, n.cmd.Stderr = logf, logf
		n.cmd.Env = cleanEnv()
		if err := n.cmd.Start(); err != nil {
			logf.Close()
			return s, err
		}
		n.PID = n.cmd.Process.Pid
		go func() { n.exit <- n.cmd.Wait(); logf.Close() }()
		s.Nodes = append(s.Nodes, n)
	}
	for _, n := range s.Nodes {
		if err := waitHealthy(ctx, n); err != nil {
			return s, err
		}
	}
	return s, nil
}

// cleanEnv is the environment without HUSH_* settings, so that only the
// flags configure the spawned nodes.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HUSH_") {
			env = append(env, kv)
		}
	}
	return env
}

func (s *Spawned) pg(ctx context.Context, sql string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, s.admin)
	if err != nil {
		return fmt.Errorf("spawn: postgres: %w", err)
	}
	defer c.Close(ctx)
	_, err = c.Exec(ctx, sql)
	return err
}

func waitHealthy(ctx context.Context, n *Node) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-n.exit:
			n.exit <- err
			log, _ := os.ReadFile(n.Log)
			return fmt.Errorf("spawn: node %s exited: %v\n%s", n.URL, err, log)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		resp, err := http.Get(n.URL + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
	}
	return fmt.Errorf("spawn: node %s not healthy within 60s (log: %s)", n.URL, n.Log)
}

// URLs returns the nodes' base URLs.
func (s *Spawned) URLs() []string {
	var out []string
	for _, n := range s.Nodes {
		out = append(out, n.URL)
	}
	return out
}

// PIDs returns the nodes' process ids.
func (s *Spawned) PIDs() []int {
	var out []int
	for _, n := range s.Nodes {
		out = append(out, n.PID)
	}
	return out
}

// Close stops the nodes (SIGTERM, then SIGKILL after 30 s) and drops the
// schema.
func (s *Spawned) Close() error {
	var errs []error
	for _, n := range s.Nodes {
		n.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, n := range s.Nodes {
		select {
		case <-n.exit:
		case <-time.After(30 * time.Second):
			n.cmd.Process.Kill()
			<-n.exit
			errs = append(errs, fmt.Errorf("node %s did not stop within 30s", n.URL))
		}
	}
	if s.schema != "" {
		errs = append(errs, s.pg(context.Background(), "DROP SCHEMA "+s.schema+" CASCADE"))
	}
	return errors.Join(errs...)
}

// Profile saves one of the node's profiles (profile?seconds=N, heap, ...)
// to file.
func (n *Node) Profile(ctx context.Context, what, file string) error {
	if n.Pprof == "" {
		return errors.New("profile: node started without --pprof")
	}
	req, err := http.NewRequestWithContext(ctx, "GET", n.Pprof+"/debug/pprof/"+what, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("profile %s: status %d", what, resp.StatusCode)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// ParseInts parses a comma-separated list of integers.
func ParseInts(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("%q is not a number", f)
		}
		out = append(out, n)
	}
	return out, nil
}
