package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/hush-chat/hush/internal/loadgen"
)

func init() {
	commands["bench"] = command{
		summary: "load-test a node or a cluster: messages/s, latency, idle connections and memory",
		run:     runBench,
	}
}

const benchHelp = `Usage: hush bench [flags]

Drives simulated devices against one Hush node or a cluster and reports
messages/s accepted and delivered, send-to-receive latency (p50/p95/p99),
connections held and the server's resident memory per connection.

Traffic is real MLS: PrivateMessages of about 350 bytes made by real
mls.Group instances. By default they are encrypted up front and replayed
(the server cannot tell, and the bench's CPU stays with the protocol);
--mls encrypts each message at its sender and decrypts it at every
receiver instead.

Workloads (--workloads):
  latency   one message at a time between two devices (on two nodes of a cluster)
  senders   N devices send into one conversation at once (--senders 8,32); each
            keeps --window sends in flight (default 1: the next after the answer);
            every member is online and receives the others' messages
  senders-only  the same with send-only connections (?push=0) for the senders:
            one more member receives everything, the senders nothing
  group     a few members of a G-member group send, all others receive (--groups 50,100;
            --conversations K runs K such groups at once, and K conversations of senders)
  idle      --conns authenticated WebSockets held open (--hold), spread over
            source addresses 127.0.0.1..127.0.0.K to pass the per-address
            port limit; server RSS per connection

Servers: --server URL[,URL...] for running nodes (start them with
--device-rate=-1 --ip-rate=-1, or rate limits will be measured instead;
give --server-pid for their memory), or --spawn N to start N nodes of this
binary (--store sqlite or postgres://..., in a fresh schema; --bus nats://...
for several nodes).

Examples:
  hush bench --spawn 1
  hush bench --spawn 3 --store postgres://postgres@127.0.0.1/test --bus nats://127.0.0.1:4222
  hush bench --spawn 1 --workloads idle --conns 100000 --hold 60s
  hush bench --server http://127.0.0.1:8080 --server-pid 1234 --json

Flags:
`

func runBench(ctx context.Context, stdout, stderr io.Writer, args []string) error {
	fs := flag.NewFlagSet("hush bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, benchHelp); fs.PrintDefaults() }
	var (
		servers     = fs.String("server", "", "comma-separated base URLs of running nodes (default http://127.0.0.1:8080 without --spawn)")
		pids        = fs.String("server-pid", "", "comma-separated process ids of the running nodes, for their memory (/proc/PID/status VmRSS)")
		spawn       = fs.Int("spawn", 0, "start this many `hush serve` nodes of this binary instead of --server")
		storeSpec   = fs.String("store", "sqlite", "with --spawn: sqlite, or a postgres:// URL (the nodes get a fresh schema, dropped afterwards)")
		busSpec     = fs.String("bus", "local", "with --spawn: local, or a nats:// URL (needed for several nodes)")
		workloads   = fs.String("workloads", "latency,senders,group", "comma-separated: latency, senders, senders-only, group, idle")
		count       = fs.Int("count", 500, "latency: round trips")
		duration    = fs.Duration("duration", 10*time.Second, "senders and group: how long each sends")
		senders     = fs.String("senders", "8,32", "senders and senders-only: concurrent senders into one conversation, per run")
		groups      = fs.String("groups", "50,100", "group: group sizes, per run")
		window      = fs.Int("window", 1, "senders and group: sends each sender keeps in flight on its connection (1: each after the previous one's answer)")
		groupSend   = fs.Int("group-senders", 4, "group: how many members send")
		convs       = fs.Int("conversations", 1, "senders and group: run this many conversations at once, each with its own members and senders")
		conns       = fs.Int("conns", 10000, "idle: connections to hold")
		connDevices = fs.Int("conn-devices", 0, "idle: devices they authenticate as (default one per connection)")
		sources     = fs.Int("sources", 0, fmt.Sprintf("idle: loopback source addresses to spread over (default conns/%d, rounded up)", loadgen.PortsPerAddress))
		hold        = fs.Duration("hold", 30*time.Second, "idle: how long to hold the connections")
		realMLS     = fs.Bool("mls", false, "real MLS work per message: each sender encrypts, each receiver decrypts")
		jsonOut     = fs.Bool("json", false, "print the results as JSON")
		profile     = fs.String("profile", "", "with --spawn: write each node's CPU profile of each workload, and its heap profile after it, to this directory")
		nofile      = fs.Uint64("nofile", 1<<20, "raise this process's open-file limit (soft and hard) to this; spawned nodes inherit it")
		quiet       = fs.Bool("q", false, "no progress lines on stderr")
	)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "hush bench: unexpected argument %q\n", fs.Arg(0))
		return errUsage
	}
	logf := func(format string, args ...any) {
		if !*quiet {
			fmt.Fprintf(stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
		}
	}
	raiseNofile(*nofile, logf)

	cfg := &loadgen.Config{MLS: *realMLS, Duration: *duration, Count: *count, Window: *window, Groups: *convs, Log: logf, HTTP: loadgen.NewHTTPClient()}
	env := loadgen.Environment{CPUs: runtime.NumCPU(), Load1: loadavg(), Go: runtime.Version()}
	var nodes *loadgen.Spawned
	switch {
	case *spawn > 0:
		if *servers != "" || *pids != "" {
			fmt.Fprintln(stderr, "hush bench: --spawn and --server/--server-pid exclude each other")
			return errUsage
		}
		bin, err := os.Executable()
		if err != nil {
			return err
		}
		dir, err := os.MkdirTemp("", "hush-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		logf("starting %d node(s): store %s, bus %s", *spawn, redact(*storeSpec), *busSpec)
		nodes, err = loadgen.Spawn(ctx, loadgen.SpawnConfig{Binary: bin, Nodes: *spawn, Store: *storeSpec, Bus: *busSpec, Pprof: *profile != "", Dir: dir})
		if err != nil {
			return err
		}
		defer func() {
			if err := nodes.Close(); err != nil {
				logf("stopping nodes: %v", err)
			}
		}()
		cfg.Servers, cfg.PIDs = nodes.URLs(), nodes.PIDs()
		env.Store, env.Bus = redact(*storeSpec), *busSpec
	default:
		if *servers == "" {
			*servers = "http://127.0.0.1:8080"
		}
		for s := range strings.SplitSeq(*servers, ",") {
			if s = strings.TrimRight(strings.TrimSpace(s), "/"); s != "" {
				cfg.Servers = append(cfg.Servers, s)
			}
		}
		var err error
		if cfg.PIDs, err = loadgen.ParseInts(*pids); err != nil {
			fmt.Fprintf(stderr, "hush bench: --server-pid: %v\n", err)
			return errUsage
		}
	}
	env.Servers = cfg.Servers
	sendersList, err1 := loadgen.ParseInts(*senders)
	groupsList, err2 := loadgen.ParseInts(*groups)
	if err := errors.Join(err1, err2); err != nil {
		fmt.Fprintf(stderr, "hush bench: %v\n", err)
		return errUsage
	}
	if *profile != "" {
		if nodes == nil {
			fmt.Fprintln(stderr, "hush bench: --profile needs --spawn")
			return errUsage
		}
		if err := os.MkdirAll(*profile, 0o755); err != nil {
			return err
		}
	}

	// profiled runs a workload while each node records a CPU profile of
	// d, then saves each node's heap profile.
	profiled := func(name string, d time.Duration, w func() (*loadgen.Result, error)) (*loadgen.Result, error) {
		if *profile == "" {
			return w()
		}
		done := make(chan struct{})
		for i, n := range nodes.Nodes {
			go func() {
				defer func() { done <- struct{}{} }()
				secs := max(1, int(d.Seconds()))
				file := filepath.Join(*profile, fmt.Sprintf("%s.node%d.cpu.pprof", name, i+1))
				if err := n.Profile(ctx, fmt.Sprintf("profile?seconds=%d", secs), file); err != nil {
					logf("cpu profile of node %d: %v", i+1, err)
				}
			}()
		}
		r, err := w()
		for range nodes.Nodes {
			<-done
		}
		for i, n := range nodes.Nodes {
			file := filepath.Join(*profile, fmt.Sprintf("%s.node%d.heap.pprof", name, i+1))
			if err := n.Profile(ctx, "heap", file); err != nil {
				logf("heap profile of node %d: %v", i+1, err)
			}
		}
		return r, err
	}

	var results []*loadgen.Result
	add := func(r *loadgen.Result, err error) error {
		if err != nil {
			return err
		}
		results = append(results, r)
		if !*quiet {
			loadgen.WriteTable(stderr, env, []*loadgen.Result{r})
		}
		return nil
	}
	for w := range strings.SplitSeq(*workloads, ",") {
		var err error
		switch strings.TrimSpace(w) {
		case "latency":
			err = add(profiled("latency", 5*time.Second, func() (*loadgen.Result, error) { return loadgen.Latency(ctx, cfg) }))
		case "senders":
			for _, n := range sendersList {
				name := fmt.Sprintf("senders-%d", n)
				err = errors.Join(err, add(profiled(name, *duration, func() (*loadgen.Result, error) { return loadgen.Senders(ctx, cfg, n) })))
			}
		case "senders-only":
			for _, n := range sendersList {
				name := fmt.Sprintf("senders-only-%d", n)
				err = errors.Join(err, add(profiled(name, *duration, func() (*loadgen.Result, error) { return loadgen.SendersOnly(ctx, cfg, n) })))
			}
		case "group":
			for _, g := range groupsList {
				name := fmt.Sprintf("group-%d", g)
				err = errors.Join(err, add(profiled(name, *duration, func() (*loadgen.Result, error) { return loadgen.Fanout(ctx, cfg, g, *groupSend) })))
			}
		case "idle":
			if *profile != "" {
				// Profiles of the held connections: the heap, and 10 s of
				// CPU (what idle connections cost: pings, polls).
				cfg.Holding = func() {
					for i, n := range nodes.Nodes {
						for what, file := range map[string]string{"heap": "heap.pprof", "heap?debug=1": "memstats.txt", "goroutine?debug=1": "goroutines.txt", "profile?seconds=10": "cpu.pprof"} {
							if err := n.Profile(ctx, what, filepath.Join(*profile, fmt.Sprintf("idle.node%d.%s", i+1, file))); err != nil {
								logf("idle: %s profile of node %d: %v", file, i+1, err)
							}
						}
					}
				}
			}
			err = add(loadgen.Idle(ctx, cfg, loadgen.IdleConfig{Conns: *conns, Devices: *connDevices, Sources: *sources, Hold: *hold}))
		case "":
		default:
			fmt.Fprintf(stderr, "hush bench: unknown workload %q\n", w)
			return errUsage
		}
		if err != nil {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	if *jsonOut {
		return loadgen.WriteJSON(stdout, env, results)
	}
	loadgen.WriteTable(stdout, env, results)
	return nil
}

// raiseNofile raises the open-file limit, soft and hard, to n (as root; a
// plain user gets the soft limit raised to the hard one).
func raiseNofile(n uint64, logf func(string, ...any)) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return
	}
	if lim.Cur >= n {
		return
	}
	want := syscall.Rlimit{Cur: n, Max: max(n, lim.Max)}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
		want = syscall.Rlimit{Cur: lim.Max, Max: lim.Max}
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want)
		logf("open-file limit: raised to the hard limit %d only (%v)", lim.Max, err)
	}
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// redact drops a password from a store URL for printing.
func redact(spec string) string {
	if i := strings.Index(spec, "://"); i >= 0 {
		if at := strings.Index(spec[i+3:], "@"); at >= 0 {
			user := spec[i+3 : i+3+at]
			if u, _, ok := strings.Cut(user, ":"); ok {
				return spec[:i+3] + u + ":***" + spec[i+3+at:]
			}
		}
	}
	return spec
}
