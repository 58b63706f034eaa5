package test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"testing"
	"time"

	"github.com/hush-chat/hush/internal/loadgen"
	"github.com/hush-chat/hush/server"
)

// BenchmarkIdleConnMemory opens idle push connections (2,000, or
// HUSH_BENCH_IDLE_CONNS) to a server in this process, plain and over TLS,
// each answering one ping, and reports what each costs the process: live
// heap and goroutine stacks (runtime.MemStats after a GC) and goroutines.
// The figures include the clients' side (minimal raw clients: the socket,
// and for TLS the *tls.Conn with its buffers), which is the same whatever
// the server does. Run with -benchtime=1x: b.N does not matter. With
// HUSH_BENCH_HEAP_PROFILE=DIR, the heap profiles taken while the
// connections are held are written to DIR/idle-{plain,tls}.heap.pprof.
func BenchmarkIdleConnMemory(b *testing.B) {
	n := 2000
	if v, err := strconv.Atoi(os.Getenv("HUSH_BENCH_IDLE_CONNS")); err == nil && v > 0 {
		n = v
	}
	if os.Getenv("HUSH_BENCH_HEAP_PROFILE") != "" {
		defer func(r int) { runtime.MemProfileRate = r }(runtime.MemProfileRate)
		runtime.MemProfileRate = 1 // every allocation: profiles of what each connection holds
	}
	for _, tc := range []struct {
		name string
		opts func(testing.TB) server.Options
	}{{"plain", sqliteBackend}, {"tls", tlsBackend}} {
		b.Run(tc.name, func(b *testing.B) {
			o := tc.opts(b)
			o.Logger = slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn}))
			ts := start(b, o)
			cs := make([]*client, 20)
			for i := range cs {
				cs[i] = register(b, ts)
			}
			httpClient.CloseIdleConnections()
			time.Sleep(2 * time.Second) // the registrations' connections end
			g0, heap0, stack0 := memNow()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			conns := make([]net.Conn, 0, n)
			defer func() {
				for _, cn := range conns {
					cn.Close()
				}
			}()
			for i := range n {
				token := cs[i%len(cs)].token
				var cn net.Conn
				var err error
				if tc.name == "tls" {
					cn, err = dialTLSRaw(ctx, ts, token, tlsDial{})
				} else {
					cn, err = loadgen.DialIdle(ctx, ts.URL(), token, nil)
				}
				if err != nil {
					b.Fatalf("connection %d: %v", i, err)
				}
				conns = append(conns, cn)
				if err := loadgen.Ping(cn); err != nil {
					b.Fatalf("ping on connection %d: %v", i, err)
				}
			}
			settleGoroutines(g0 + 20)
			time.Sleep(2 * time.Second) // the workers retire
			g1, heap1, stack1 := memNow()
			if dir := os.Getenv("HUSH_BENCH_HEAP_PROFILE"); dir != "" {
				writeHeapProfile(b, filepath.Join(dir, "idle-"+tc.name+".heap.pprof"))
			}
			b.ReportMetric(float64(heap1-heap0)/float64(n), "heap-B/conn")
			b.ReportMetric(float64(stack1-stack0)/float64(n), "stack-B/conn")
			b.ReportMetric(float64(heap1-heap0+stack1-stack0)/float64(n), "B/conn")
			b.ReportMetric(float64(g1-g0)/float64(n), "goroutines/conn")
		})
	}
}

// writeHeapProfile writes the heap profile (live objects as of the last
// GC) to path.
func writeHeapProfile(b *testing.B, path string) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		b.Fatal(err)
	}
}

// memNow returns the goroutines, the live heap and the stacks in use,
// after a GC.
func memNow() (goroutines int, heap, stack int64) {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return runtime.NumGoroutine(), int64(m.HeapAlloc), int64(m.StackInuse)
}
