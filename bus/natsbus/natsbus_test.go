package natsbus_test

import (
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/hush-chat/hush/bus"
	"github.com/hush-chat/hush/bus/bustest"
	"github.com/hush-chat/hush/bus/natsbus"
	"github.com/hush-chat/hush/store"
)

// natsAddr is the NATS server the tests use (HUSH_TEST_NATS overrides).
// Without one the tests are skipped, or fail when CI is set.
func natsAddr(t *testing.T) string {
	addr := os.Getenv("HUSH_TEST_NATS")
	if addr == "" {
		addr = "127.0.0.1:4222"
	}
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("NATS unreachable at %s (CI is set, so this fails): %v", addr, err)
		}
		t.Skipf("skipping: NATS unreachable at %s: %v", addr, err)
	}
	c.Close()
	return addr
}

func connect(t *testing.T, cfg natsbus.Config) *natsbus.Bus {
	b, err := natsbus.Connect(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// TestBus runs the suite over two connections: publish on one, receive on
// the other.
func TestBus(t *testing.T) {
	addr := natsAddr(t)
	bustest.Run(t, func(t *testing.T) (bus.Bus, bus.Bus) {
		return connect(t, natsbus.Config{URL: "nats://" + addr, Name: "pub"}),
			connect(t, natsbus.Config{URL: "nats://" + addr, Name: "sub"})
	})
}

// TestReconnect cuts a connection (through a proxy the test controls) and
// checks that OnReconnect runs and the subscription survives.
func TestReconnect(t *testing.T) {
	addr := natsAddr(t)
	p := newProxy(t, addr)
	reconnected := make(chan struct{}, 4)
	sub := connect(t, natsbus.Config{
		URL:         "nats://" + p.addr(),
		Name:        "reconnecting",
		OnReconnect: func() { reconnected <- struct{}{} },
		Options:     []nats.Option{nats.ReconnectWait(20 * time.Millisecond), nats.ReconnectJitter(0, 0)},
	})
	pub := connect(t, natsbus.Config{URL: "nats://" + addr, Name: "pub"})
	d := store.NewDeviceID()
	got := make(chan bus.Event, 16)
	if _, err := sub.Subscribe(t.Context(), d, func(ev bus.Event) { got <- ev }); err != nil {
		t.Fatal(err)
	}

	p.cut()
	select {
	case <-reconnected:
	case <-time.After(10 * time.Second):
		t.Fatal("OnReconnect was not called")
	}
	// The subscription is restored by the client; keep publishing until an
	// event makes it through (the server may see the re-subscription a
	// moment after the reconnect callback runs).
	deadline := time.After(10 * time.Second)
	for {
		if err := pub.Publish(t.Context(), d, bus.Event{Kind: bus.KindDirect, Seq: 9}); err != nil {
			t.Fatal(err)
		}
		select {
		case ev := <-got:
			if ev.Seq != 9 {
				t.Fatalf("got %+v", ev)
			}
			return
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			t.Fatal("no event after reconnecting")
		}
	}
}

// TestSubscriptionsHoldNoGoroutine checks that a subscription costs no
// goroutine (nats.go starts one per subscription with a callback), so that
// the server's idle connections hold none on a cluster either, and that
// every subscriber still gets its device's events, in order.
func TestSubscriptionsHoldNoGoroutine(t *testing.T) {
	addr := natsAddr(t)
	sub := connect(t, natsbus.Config{URL: "nats://" + addr, Name: "many"})
	pub := connect(t, natsbus.Config{URL: "nats://" + addr, Name: "pub"})
	const n = 500
	before := runtime.NumGoroutine()
	devices := make([]store.DeviceID, n)
	got := make([]chan bus.Event, n)
	unsub := make([]func(), n)
	for i := range devices {
		devices[i] = store.NewDeviceID()
		got[i] = make(chan bus.Event, 4)
		ch := got[i]
		u, err := sub.Subscribe(t.Context(), devices[i], func(ev bus.Event) { ch <- ev })
		if err != nil {
			t.Fatal(err)
		}
		unsub[i] = u
	}
	if grew := runtime.NumGoroutine() - before; grew > n/10 {
		t.Fatalf("%d subscriptions started %d goroutines", n, grew)
	}
	for i, d := range devices {
		for seq := uint64(1); seq <= 2; seq++ {
			if err := pub.Publish(t.Context(), d, bus.Event{Kind: bus.KindDirect, Seq: seq + uint64(i)*10}); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i := range devices {
		for seq := uint64(1); seq <= 2; seq++ {
			select {
			case ev := <-got[i]:
				if ev.Seq != seq+uint64(i)*10 {
					t.Fatalf("device %d: got seq %d, want %d", i, ev.Seq, seq+uint64(i)*10)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("device %d: event %d not delivered", i, seq)
			}
		}
	}
	for _, u := range unsub {
		u()
	}
	// After unsubscribing, nothing more arrives.
	if err := pub.Publish(t.Context(), devices[0], bus.Event{Kind: bus.KindDirect, Seq: 99}); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-got[0]:
		t.Fatalf("event after unsubscribe: %+v", ev)
	case <-time.After(200 * time.Millisecond):
	}
}

func TestSubject(t *testing.T) {
	d := store.NewDeviceID()
	if s := natsbus.Subject(d); s != "hush.dev."+d.String() || strings.ContainsAny(s[len("hush.dev."):], ".*> ") {
		t.Fatalf("Subject = %q", s)
	}
}

// proxy forwards TCP connections to a target and can cut them all.
type proxy struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func newProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln}
	t.Cleanup(func() { ln.Close(); p.cut() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { io.Copy(up, c); up.Close() }()
			go func() { io.Copy(c, up); c.Close() }()
		}
	}()
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

// cut closes every connection made so far; new ones are still accepted.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}
