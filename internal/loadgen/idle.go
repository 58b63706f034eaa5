package loadgen

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
)

// PortsPerAddress is about how many connections one source address can
// open to one server address: the kernel's ephemeral port range
// (net.ipv4.ip_local_port_range, 32768–60999 by default), less a margin.
const PortsPerAddress = 25000

// IdleConfig configures the idle-connections workload.
type IdleConfig struct {
	Conns int
	// Devices is how many devices the connections authenticate as (each
	// device may hold several); Conns if zero.
	Devices int
	// Sources is how many loopback source addresses (127.0.0.1, 127.0.0.2,
	// …) the connections are spread over, to get past the per-address
	// ephemeral port limit; Conns/PortsPerAddress rounded up if zero. Only
	// used when the servers are on loopback addresses.
	Sources int
	// Hold is how long the connections are kept open, each pinged every
	// PingEvery (the server closes a connection silent for 90 s).
	Hold      time.Duration
	PingEvery time.Duration
	// Concurrency bounds registrations and connection attempts under way.
	Concurrency int
}

// Idle opens cfg.Conns authenticated push WebSockets, spread over the
// servers and over loopback source addresses, holds them for cfg.Hold with
// application pings, and reports how many are still answering at the end
// and how much each cost the server in resident memory.
//
// The connections are minimal WebSocket clients written for this (a
// handshake, then only ping frames): the coder/websocket client would cost
// the bench process itself tens of KiB per connection.
func Idle(ctx context.Context, c *Config, ic IdleConfig) (*Result, error) {
	if ic.Devices <= 0 || ic.Devices > ic.Conns {
		ic.Devices = ic.Conns
	}
	if ic.Sources <= 0 {
		ic.Sources = (ic.Conns + PortsPerAddress - 1) / PortsPerAddress
	}
	if ic.PingEvery <= 0 {
		ic.PingEvery = 30 * time.Second
	}
	if ic.Concurrency <= 0 {
		ic.Concurrency = 64
	}
	t := time.Now()
	c.logf("idle: registering %d devices", ic.Devices)
	devs, err := RegisterMany(ctx, c.HTTP, c.Servers, ic.Devices, ic.Concurrency)
	if err != nil {
		return nil, err
	}
	c.logf("idle: registered in %v (%.0f/s)", time.Since(t).Round(time.Millisecond), float64(ic.Devices)/time.Since(t).Seconds())
	time.Sleep(2 * time.Second) // let the servers settle before the first reading
	before := readRSS(c.PIDs)

	var (
		mu    sync.Mutex
		conns []*idleConn
	)
	defer func() {
		for _, cn := range conns {
			cn.Close()
		}
	}()
	snapshot := func() []*idleConn {
		mu.Lock()
		defer mu.Unlock()
		return conns[:len(conns):len(conns)]
	}
	// The pinger keeps every open connection alive from the start: the
	// server closes one silent for 90 s, and opening many takes longer.
	stopPings := make(chan struct{})
	pingsDone := make(chan struct{})
	go func() {
		defer close(pingsDone)
		t := time.NewTicker(ic.PingEvery)
		defer t.Stop()
		for {
			select {
			case <-stopPings:
				return
			case <-t.C:
				cs := snapshot()
				n := pingAll(cs, ic.Concurrency)
				c.logf("idle: %d of %d connections answered a ping", n, len(cs))
			}
		}
	}()
	stopPinger := func() {
		select {
		case <-stopPings:
		default:
			close(stopPings)
			<-pingsDone
		}
	}
	defer stopPinger()

	t = time.Now()
	var failed atomic.Int64
	var firstErr atomic.Value
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(ic.Concurrency)
	for i := range ic.Conns {
		if failed.Load() > int64(ic.Conns/20)+10 {
			break // the server is saturated: report what it holds
		}
		g.Go(func() error {
			server := c.Servers[i%len(c.Servers)]
			var src net.IP
			if ic.Sources > 1 {
				src = net.IPv4(127, 0, byte((1+i%ic.Sources)>>8), byte(1+i%ic.Sources))
			}
			cn, err := dialRaw(gctx, server, devs[i%len(devs)].Token, src)
			if err != nil {
				if gctx.Err() != nil {
					return gctx.Err()
				}
				failed.Add(1)
				firstErr.CompareAndSwap(nil, fmt.Errorf("connection %d (from %v): %w", i, src, err))
				return nil
			}
			mu.Lock()
			conns = append(conns, &idleConn{Conn: cn})
			n := len(conns)
			mu.Unlock()
			if n%10000 == 0 {
				c.logf("idle: %d connections open", n)
			}
			return nil
		})
	}
	err = g.Wait()
	connectTime := time.Since(t)
	opened := len(snapshot())
	r := &Result{Workload: "idle", Nodes: len(c.Servers), Conns: opened, Errors: failed.Load(),
		ConnectPerSec: float64(opened) / connectTime.Seconds()}
	if e, ok := firstErr.Load().(error); ok {
		r.FirstError = e.Error()
		c.logf("idle: %d connection attempts failed; the first: %v", failed.Load(), e)
	}
	if err != nil {
		return r, err
	}
	c.logf("idle: %d connections open in %v (%.0f/s); holding for %v", opened, connectTime.Round(time.Millisecond), r.ConnectPerSec, ic.Hold)

	time.Sleep(3 * time.Second)
	after := readRSS(c.PIDs)
	r.setRSS(c.PIDs, before, after, r.Conns)
	if c.Holding != nil {
		c.Holding()
	}
	cpu0 := sampleCPU(c.PIDs)
	select {
	case <-ctx.Done():
		return r, ctx.Err()
	case <-time.After(ic.Hold):
	}
	r.setCPU(cpu0, sampleCPU(c.PIDs)) // what holding them cost
	stopPinger()
	r.ConnsHeld = pingAll(snapshot(), ic.Concurrency)
	r.Seconds = ic.Hold.Seconds()
	// The highest reading, in case memory grew while held.
	final := readRSS(c.PIDs)
	for i := range r.RSS {
		if final[i] > r.RSS[i].AfterKiB {
			r.RSS[i].AfterKiB = final[i]
		}
	}
	var grown int64
	for _, m := range r.RSS {
		grown += m.AfterKiB - m.BeforeKiB
	}
	if r.Conns > 0 && len(r.RSS) > 0 {
		r.RSSPerConnKiB = float64(grown) / float64(r.Conns)
	}
	return r, nil
}

// idleConn is a held connection; dead once a ping failed.
type idleConn struct {
	net.Conn
	dead atomic.Bool
}

// pingAll pings every live connection and returns how many answered;
// those that did not are closed and marked dead.
func pingAll(conns []*idleConn, workers int) int {
	var ok atomic.Int64
	var wg sync.WaitGroup
	next := atomic.Int64{}
	for range workers {
		wg.Go(func() {
			buf := make([]byte, 512)
			for {
				i := int(next.Add(1)) - 1
				if i >= len(conns) {
					return
				}
				cn := conns[i]
				if cn.dead.Load() {
					continue
				}
				if err := ping(cn, buf); err != nil {
					cn.dead.Store(true)
					cn.Close()
					continue
				}
				ok.Add(1)
			}
		})
	}
	wg.Wait()
	return int(ok.Load())
}

// pingFrame is a client (masked) text frame holding {"type":"ping"}.
var pingFrame = func() []byte {
	payload := []byte(`{"type":"ping"}`)
	mask := randomBytes(4)
	f := append([]byte{0x81, 0x80 | byte(len(payload))}, mask...)
	for i, b := range payload {
		f = append(f, b^mask[i%4])
	}
	return f
}()

func ping(cn net.Conn, buf []byte) error {
	cn.SetDeadline(time.Now().Add(15 * time.Second))
	defer cn.SetDeadline(time.Time{})
	if _, err := cn.Write(pingFrame); err != nil {
		return err
	}
	for {
		payload, err := readFrame(cn, buf)
		if err != nil {
			return err
		}
		if bytes.Contains(payload, []byte(`"pong"`)) {
			return nil
		}
	}
}

// dialRaw opens an authenticated push WebSocket to server from the local
// address src (any if nil), reads the server's hello, and returns the
// connection.
func dialRaw(ctx context.Context, server, token string, src net.IP) (net.Conn, error) {
	u, err := url.Parse(server)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "http" {
		return nil, errors.New("the idle workload speaks plain http:// only")
	}
	d := net.Dialer{Timeout: 15 * time.Second}
	if src != nil {
		d.LocalAddr = &net.TCPAddr{IP: src}
	}
	cn, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return nil, err
	}
	cn.SetDeadline(time.Now().Add(30 * time.Second))
	key := base64.StdEncoding.EncodeToString(randomBytes(16))
	req := "GET /v1/ws HTTP/1.1\r\nHost: " + u.Host + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + key + "\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: hush.v1\r\n" +
		"Authorization: " + token + "\r\nX-Hush-Version: 1\r\n\r\n"
	if _, err := io.WriteString(cn, req); err != nil {
		cn.Close()
		return nil, err
	}
	buf := make([]byte, 0, 1024)
	var head, rest []byte
	for {
		if len(buf) == cap(buf) {
			cn.Close()
			return nil, errors.New("handshake answer too long")
		}
		n, err := cn.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if i := bytes.Index(buf, []byte("\r\n\r\n")); i >= 0 {
			head, rest = buf[:i], buf[i+4:]
			break
		}
		if err != nil {
			cn.Close()
			return nil, err
		}
	}
	if !bytes.HasPrefix(head, []byte("HTTP/1.1 101")) {
		cn.Close()
		status, _, _ := strings.Cut(string(head), "\r\n")
		return nil, fmt.Errorf("handshake: %s", status)
	}
	hello, err := readFrame(io.MultiReader(bytes.NewReader(rest), cn), make([]byte, 512))
	if err != nil || !bytes.Contains(hello, []byte(`"hello"`)) {
		cn.Close()
		return nil, fmt.Errorf("no hello frame: %v", err)
	}
	cn.SetDeadline(time.Time{})
	return cn, nil
}

// readFrame reads one unmasked server frame into buf and returns its
// payload (cut to len(buf) if longer; the rest is read and dropped).
func readFrame(r io.Reader, buf []byte) ([]byte, error) {
	var h [8]byte
	if _, err := io.ReadFull(r, h[:2]); err != nil {
		return nil, err
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		if _, err := io.ReadFull(r, h[:2]); err != nil {
			return nil, err
		}
		n = uint64(binary.BigEndian.Uint16(h[:2]))
	case 127:
		if _, err := io.ReadFull(r, h[:8]); err != nil {
			return nil, err
		}
		n = binary.BigEndian.Uint64(h[:8])
	}
	keep := min(n, uint64(len(buf)))
	if _, err := io.ReadFull(r, buf[:keep]); err != nil {
		return nil, err
	}
	if n > keep {
		if _, err := io.CopyN(io.Discard, r, int64(n-keep)); err != nil {
			return nil, err
		}
	}
	return buf[:keep], nil
}
