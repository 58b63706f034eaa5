package loadgen

import (
	"context"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/hush-chat/hush/server"
)

// startServer runs a server in the test's process, rate limits off.
func startServer(t *testing.T) string {
	t.Helper()
	srv, err := server.New(context.Background(), server.Options{
		Addr: "127.0.0.1:0", DataDir: t.TempDir(), DeviceRate: -1, IPRate: -1,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server: %v", err)
		}
	})
	return srv.URL()
}

func testConfig(t *testing.T, mls bool) *Config {
	return &Config{
		Servers: []string{startServer(t)}, MLS: mls, Duration: 700 * time.Millisecond, Count: 20,
		PIDs: []int{os.Getpid()}, HTTP: NewHTTPClient(), Log: t.Logf,
	}
}

func checkFlow(t *testing.T, r *Result, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", *r)
	if r.Accepted == 0 || r.Errors != 0 || r.Lost != 0 || r.DecryptErrors != 0 {
		t.Fatalf("%s: accepted %d, errors %d (%s), lost %d, decrypt errors %d", r.Workload, r.Accepted, r.Errors, r.FirstError, r.Lost, r.DecryptErrors)
	}
	if want := r.Accepted * int64(r.Receivers); r.Delivered != want || int64(r.Latency.N) != want {
		t.Fatalf("%s: %d delivered, %d latencies, want %d", r.Workload, r.Delivered, r.Latency.N, want)
	}
	if r.Latency.P50 <= 0 || r.Latency.P50 > r.Latency.P99 || r.PayloadBytes < PayloadSize-40 || r.PayloadBytes > PayloadSize+40 {
		t.Fatalf("%s: latency %+v, payload %d bytes", r.Workload, r.Latency, r.PayloadBytes)
	}
}

func TestWorkloads(t *testing.T) {
	for _, mls := range []bool{false, true} {
		name := "replayed"
		if mls {
			name = "mls"
		}
		t.Run(name, func(t *testing.T) {
			c := testConfig(t, mls)
			ctx := context.Background()
			r, err := Latency(ctx, c)
			checkFlow(t, r, err)
			if r.Accepted != int64(c.Count) {
				t.Fatalf("latency: %d accepted, want %d", r.Accepted, c.Count)
			}
			r, err = Senders(ctx, c, 3)
			checkFlow(t, r, err)
			// Pipelined: each sender keeps 8 sends in flight (with real
			// MLS, its messages still decrypt at every receiver).
			c.Window = 8
			r, err = Senders(ctx, c, 3)
			checkFlow(t, r, err)
			if r.Window != 8 || r.Receivers != 3 {
				t.Fatalf("senders with window 8 report window %d, %d receivers", r.Window, r.Receivers)
			}
			// Send-only senders: only the fourth member receives.
			r, err = SendersOnly(ctx, c, 3)
			checkFlow(t, r, err)
			if r.Receivers != 1 || r.Members != 4 || r.Workload != "senders-only-3" {
				t.Fatalf("senders-only: %+v", r)
			}
			c.Window = 0
			r, err = Fanout(ctx, c, 6, 2)
			checkFlow(t, r, err)
			c.Groups = 3
			r, err = Fanout(ctx, c, 4, 1)
			checkFlow(t, r, err)
			if r.Conns != 12 || r.Workload != "3xgroup-4" {
				t.Fatalf("three conversations: %+v", r)
			}
		})
	}
}

func TestIdle(t *testing.T) {
	c := testConfig(t, false)
	r, err := Idle(context.Background(), c, IdleConfig{Conns: 40, Devices: 10, Sources: 3, Hold: 1500 * time.Millisecond, PingEvery: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", *r)
	if r.Conns != 40 || r.ConnsHeld != 40 || r.FirstError != "" {
		t.Fatalf("idle: %d opened, %d held, %q", r.Conns, r.ConnsHeld, r.FirstError)
	}
	if len(r.RSS) != 1 || r.RSS[0].AfterKiB <= 0 {
		t.Fatalf("RSS: %+v", r.RSS)
	}
}

func TestReadFrame(t *testing.T) {
	for _, n := range []int{0, 5, 125, 126, 300, 70000} {
		payload := make([]byte, n)
		for i := range payload {
			payload[i] = byte(i)
		}
		var f []byte
		switch {
		case n < 126:
			f = []byte{0x81, byte(n)}
		case n < 1<<16:
			f = []byte{0x81, 126, byte(n >> 8), byte(n)}
		default:
			f = []byte{0x81, 127, 0, 0, 0, 0, 0, byte(n >> 16), byte(n >> 8), byte(n)}
		}
		f = append(append(f, payload...), 0x81, 1, 'x')
		r := bytesReader(f)
		got, err := readFrame(r, make([]byte, 512))
		if err != nil || len(got) != min(n, 512) {
			t.Fatalf("%d: %d bytes, %v", n, len(got), err)
		}
		next, err := readFrame(r, make([]byte, 512))
		if err != nil || string(next) != "x" {
			t.Fatalf("%d: next frame %q %v", n, next, err)
		}
	}
}

type sliceReader struct{ b []byte }

func bytesReader(b []byte) *sliceReader { return &sliceReader{b} }

func (r *sliceReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}
