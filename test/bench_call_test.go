package test

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"sort"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	hush "github.com/hush-chat/hush/client"
	"github.com/hush-chat/hush/client/call"
	"github.com/hush-chat/hush/client/profile"
	"github.com/hush-chat/hush/server"
)

// Call benchmarks through the real server (in this process, with the
// clients): docs/BENCHMARKS.md, "Calls (issue 5)". Run with a fixed count,
// e.g. go test -run XXX -bench BenchmarkCall -benchtime 20x ./test/

// cpuTime is the process's user+system CPU time so far.
func callCPUTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// callBenchServer is a server with calls on 127.0.0.1:0, for benchmarks.
type callBenchServer struct{ *server.Server }

func startBenchCallServer(b *testing.B) *callBenchServer {
	b.Helper()
	srv, err := server.New(context.Background(), server.Options{
		Addr: "127.0.0.1:0", DataDir: b.TempDir(), DeviceRate: -1, IPRate: -1,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	b.Cleanup(func() { cancel(); <-done })
	return &callBenchServer{srv}
}

type callBenchDevice struct{ *hush.Client }

func (s *callBenchServer) callBenchDevice(b *testing.B, name string) *callBenchDevice {
	b.Helper()
	c, err := profile.Open(context.Background(), filepath.Join(b.TempDir(), "profile"), profile.Options{Create: true, Client: hush.Options{KeyPackageBatch: 10}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	if _, err := c.Register(context.Background(), s.URL(), name); err != nil {
		b.Fatal(err)
	}
	return &callBenchDevice{c}
}

// benchOnline runs a client's push connection until the benchmark ends.
func benchOnline(b *testing.B, c *hush.Client) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.Run(ctx) }()
	b.Cleanup(func() { cancel(); <-done })
	for !c.Online() {
		time.Sleep(5 * time.Millisecond)
	}
}

// percentiles returns the median and the 90th percentile.
func percentiles(d []time.Duration) (p50, p90 time.Duration) {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[len(d)/2], d[len(d)*9/10]
}

// BenchmarkCallSetup measures a 1:1 call's set-up: from alice's
// invitation (call.Start) to bob's first decrypted frame of alice's,
// bob joining as soon as the invitation reaches him.
func BenchmarkCallSetup(b *testing.B) {
	s := startBenchCallServer(b)
	alice := s.callBenchDevice(b, "alice")
	bob := s.callBenchDevice(b, "bob")
	cv, err := alice.Direct(context.Background(), "bob")
	if err != nil {
		b.Fatal(err)
	}
	if err := bob.Sync(context.Background()); err != nil {
		b.Fatal(err)
	}
	benchOnline(b, alice.Client)
	benchOnline(b, bob.Client)

	var setups []time.Duration
	var cpu time.Duration
	b.ResetTimer()
	for i := range b.N {
		c0 := callCPUTime()
		start := time.Now()
		sa, err := call.Start(context.Background(), alice.Client, cv.ID, call.SessionOptions{LoopbackOnly: true, OnRemote: func(r *call.Remote) { go drainRemote(r) }})
		if err != nil {
			b.Fatal(err)
		}
		stop := make(chan struct{})
		sent := make(chan struct{})
		go func() { // alice talks: one audio frame every 20 ms
			defer close(sent)
			rng := rand.New(rand.NewPCG(uint64(i), 3))
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			for j := 0; ; j++ {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				sa.Audio().WriteFrame(testFrame(rng, false, 0, j), uint32(j*960))
			}
		}()
		// bob rings: the invitation arrives through his push connection.
		for {
			st, ok, err := bob.CurrentCall(context.Background(), cv.ID)
			if err != nil {
				b.Fatal(err)
			}
			if ok && st.ID == sa.ID() {
				break
			}
			time.Sleep(time.Millisecond)
		}
		first := make(chan time.Time, 1)
		sb, err := call.Start(context.Background(), bob.Client, cv.ID, call.SessionOptions{LoopbackOnly: true, OnRemote: func(r *call.Remote) {
			go func() {
				if _, err := r.ReadFrame(); err == nil && r.Kind.String() == "audio" {
					select {
					case first <- time.Now():
					default:
					}
				}
				drainRemote(r)
			}()
		}})
		if err != nil {
			b.Fatal(err)
		}
		select {
		case at := <-first:
			setups = append(setups, at.Sub(start))
		case <-time.After(20 * time.Second):
			b.Fatal("bob decrypted nothing")
		}
		cpu += callCPUTime() - c0
		close(stop)
		<-sent
		sb.Leave(context.Background())
		sa.Leave(context.Background())
		// The next call starts fresh: wait for the room to close.
		for s.Calls().Rooms() != 0 {
			time.Sleep(time.Millisecond)
		}
	}
	b.StopTimer()
	p50, p90 := percentiles(setups)
	b.ReportMetric(float64(p50.Microseconds())/1000, "setup-p50-ms")
	b.ReportMetric(float64(p90.Microseconds())/1000, "setup-p90-ms")
	b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N), "cpu-ms/setup")
}

// BenchmarkCallRekey measures the rekey after a removal in a 3-person
// call: from alice's RemoveMember to every remaining member's keys at the
// new epoch, and to the first frame of the new epoch that each remaining
// member decrypts from the other.
func BenchmarkCallRekey(b *testing.B) {
	s := startBenchCallServer(b)
	alice := s.callBenchDevice(b, "alice")
	bob := s.callBenchDevice(b, "bob")
	carol := s.callBenchDevice(b, "carol")
	for _, d := range []*callBenchDevice{alice, bob, carol} {
		benchOnline(b, d.Client)
	}
	var rekeys, firsts []time.Duration
	var cpu time.Duration
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		cv, err := alice.CreateGroup(context.Background(), fmt.Sprintf("g%d", i), "bob", "carol")
		if err != nil {
			b.Fatal(err)
		}
		for _, d := range []*callBenchDevice{bob, carol} {
			if err := d.Sync(context.Background()); err != nil {
				b.Fatal(err)
			}
		}
		type member struct {
			d     *callBenchDevice
			s     *call.Session
			fresh chan time.Time // first frame of the new epoch decrypted
		}
		var ms []*member
		var newEpoch atomic.Uint64 // set before the removal
		for _, d := range []*callBenchDevice{alice, bob, carol} {
			m := &member{d: d, fresh: make(chan time.Time, 1)}
			for d != alice {
				st, ok, err := d.CurrentCall(context.Background(), cv.ID)
				if err != nil {
					b.Fatal(err)
				}
				if ok && st.ID == ms[0].s.ID() {
					break
				}
				time.Sleep(time.Millisecond)
			}
			m.s, err = call.Start(context.Background(), d.Client, cv.ID, call.SessionOptions{LoopbackOnly: true, OnRemote: func(r *call.Remote) {
				go func() {
					for {
						f, err := r.ReadFrame()
						if err != nil {
							return
						}
						if e := newEpoch.Load(); e != 0 && frameEpoch(f.Data) >= e {
							select {
							case m.fresh <- time.Now():
							default:
							}
						}
					}
				}()
			}})
			if err != nil {
				b.Fatal(err)
			}
			ms = append(ms, m)
		}
		stop := make(chan struct{})
		done := make(chan struct{})
		for k, m := range ms {
			go func() {
				defer func() { done <- struct{}{} }()
				rng := rand.New(rand.NewPCG(uint64(i), uint64(k)))
				tick := time.NewTicker(20 * time.Millisecond)
				defer tick.Stop()
				for j := 0; ; j++ {
					select {
					case <-stop:
						return
					case <-tick.C:
					}
					m.s.Audio().WriteFrame(testFrame(rng, false, m.s.Keys().Epoch(), j), uint32(j*960))
				}
			}()
		}
		for _, m := range ms {
			select {
			case <-m.s.Connected():
			case <-time.After(20 * time.Second):
				b.Fatal("the call did not connect")
			}
		}
		time.Sleep(300 * time.Millisecond)
		newEpoch.Store(ms[0].s.Keys().Epoch() + 1)

		b.StartTimer()
		c0 := callCPUTime()
		start := time.Now()
		if err := alice.RemoveMember(context.Background(), cv.ID, "carol"); err != nil {
			b.Fatal(err)
		}
		var rekeyed time.Duration
		for _, m := range ms[:2] {
			for m.s.Keys().Epoch() < newEpoch.Load() {
				time.Sleep(100 * time.Microsecond)
			}
			rekeyed = max(rekeyed, time.Since(start))
		}
		var first time.Duration
		for _, m := range ms[:2] {
			select {
			case at := <-m.fresh:
				first = max(first, at.Sub(start))
			case <-time.After(20 * time.Second):
				b.Fatal("no frame of the new epoch")
			}
		}
		cpu += callCPUTime() - c0
		b.StopTimer()
		rekeys, firsts = append(rekeys, rekeyed), append(firsts, first)
		close(stop)
		for range ms {
			<-done
		}
		for _, m := range ms {
			m.s.Leave(context.Background())
		}
		for s.Calls().Rooms() != 0 {
			time.Sleep(time.Millisecond)
		}
	}
	p50, p90 := percentiles(rekeys)
	b.ReportMetric(float64(p50.Microseconds())/1000, "rekey-p50-ms")
	b.ReportMetric(float64(p90.Microseconds())/1000, "rekey-p90-ms")
	p50, p90 = percentiles(firsts)
	b.ReportMetric(float64(p50.Microseconds())/1000, "newframe-p50-ms")
	b.ReportMetric(float64(p90.Microseconds())/1000, "newframe-p90-ms")
	b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N), "cpu-ms/removal")
}

func drainRemote(r *call.Remote) {
	for {
		if _, err := r.ReadFrame(); err != nil {
			return
		}
	}
}
