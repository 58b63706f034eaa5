//go:build linux

package netpoll

import (
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
	"testing"
)

// pair returns both ends of a loopback TCP connection.
func pair(t *testing.T, ln net.Listener) (client, server net.Conn) {
	t.Helper()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return c, s
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

func newPoller(t *testing.T) *Poller {
	t.Helper()
	p, err := New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// A registration fires once per Resume, and the bytes are there to read.
func TestOneShot(t *testing.T) {
	p := newPoller(t)
	c, s := pair(t, listen(t))
	fired := make(chan struct{}, 10)
	h, err := p.Add(s.(syscall.Conn), func() { fired <- struct{}{} })
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := h.Resume(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("a")); err != nil {
		t.Fatal(err)
	}
	<-fired
	// Not re-armed: a second write is not reported until Resume, and
	// Resume reports bytes already waiting at once.
	if _, err := c.Write([]byte("b")); err != nil {
		t.Fatal(err)
	}
	if err := h.Resume(); err != nil {
		t.Fatal(err)
	}
	<-fired
	buf := make([]byte, 2)
	if _, err := io.ReadFull(s, buf); err != nil || string(buf) != "ab" {
		t.Fatalf("read %q, %v", buf, err)
	}
	if len(fired) != 0 {
		t.Fatalf("%d calls more than Resumes", len(fired))
	}
}

// A peer that hangs up is reported, so that the server can close.
func TestHangUp(t *testing.T) {
	p := newPoller(t)
	c, s := pair(t, listen(t))
	fired := make(chan struct{}, 1)
	h, err := p.Add(s.(syscall.Conn), func() { fired <- struct{}{} })
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := h.Resume(); err != nil {
		t.Fatal(err)
	}
	c.Close()
	<-fired
	if _, err := s.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("read after hang-up: %v, want EOF", err)
	}
}

// Many connections share the one goroutine; each is reported as its own.
func TestMany(t *testing.T) {
	p := newPoller(t)
	ln := listen(t)
	const n = 200
	var mu sync.Mutex
	got := make(map[int]int)
	var wg sync.WaitGroup
	clients := make([]net.Conn, n)
	for i := range n {
		c, s := pair(t, ln)
		clients[i] = c
		wg.Add(1)
		h, err := p.Add(s.(syscall.Conn), func() {
			mu.Lock()
			got[i]++
			mu.Unlock()
			wg.Done()
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := h.Resume(); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range clients {
		if _, err := c.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	for i := range n {
		if got[i] != 1 {
			t.Fatalf("connection %d reported %d times", i, got[i])
		}
	}
}

// A closed Handle cannot be resumed, and its descriptor can be reused by
// a new registration without the old one's function being called.
func TestHandleClose(t *testing.T) {
	p := newPoller(t)
	ln := listen(t)
	_, s := pair(t, ln)
	h, err := p.Add(s.(syscall.Conn), func() { t.Error("closed handle fired") })
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Resume(); err != nil {
		t.Fatal(err)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if err := h.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := h.Resume(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Resume after Close: %v, want ErrClosed", err)
	}
	s.Close()
	c2, s2 := pair(t, ln)
	fired := make(chan struct{}, 1)
	h2, err := p.Add(s2.(syscall.Conn), func() { fired <- struct{}{} })
	if err != nil {
		t.Fatal(err)
	}
	defer h2.Close()
	if err := h2.Resume(); err != nil {
		t.Fatal(err)
	}
	c2.Write([]byte("x"))
	<-fired
}

// Close stops the Poller: no Add afterwards.
func TestPollerClose(t *testing.T) {
	p, err := New()
	if err != nil {
		t.Fatal(err)
	}
	_, s := pair(t, listen(t))
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := p.Add(s.(syscall.Conn), func() {}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Add after Close: %v, want ErrClosed", err)
	}
}

// A connection without a descriptor is refused with ErrUnsupported.
func TestNoDescriptor(t *testing.T) {
	p := newPoller(t)
	if _, err := p.Add(noFD{}, func() {}); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("Add: %v, want ErrUnsupported", err)
	}
}

type noFD struct{}

func (noFD) SyscallConn() (syscall.RawConn, error) { return nil, errors.New("no descriptor") }
