package test

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	hush "github.com/hush-chat/hush/client"
	"github.com/hush-chat/hush/client/call"
	"github.com/hush-chat/hush/proto"
)

// A call survives a dropped connection: the device whose push WebSocket
// drops mid-call joins the same call again by itself (client/call's
// Session), with the same keys, and without ringing anyone.

// dropper lets a test cut every TCP connection of a device (HTTP and its
// push WebSocket alike): the server sees the connection drop, as it would
// a network failure, and so does the device.
type dropper struct {
	mu    sync.Mutex
	conns []net.Conn
}

func (d *dropper) options(o *hush.Options) {
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	o.HTTPClient = &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := dialer.DialContext(ctx, network, addr)
			if err == nil {
				d.mu.Lock()
				d.conns = append(d.conns, c)
				d.mu.Unlock()
			}
			return c, err
		},
	}}
}

// drop closes the device's connections.
func (d *dropper) drop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, c := range d.conns {
		c.Close()
	}
	d.conns = nil
}

// open returns how many of the device's connections were opened since
// the last drop.
func (d *dropper) open() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.conns)
}

// rejoinWatch counts a session's reconnections.
type rejoinWatch struct {
	reconnecting, reconnected atomic.Int32
	up                        chan struct{}
}

func (p *callPeer) joinRejoining(t *testing.T, conv string, w *rejoinWatch) {
	t.Helper()
	p.got = map[string][]gotFrame{}
	p.first = map[string]time.Time{}
	s, err := call.Start(context.Background(), p.Client, conv, call.SessionOptions{
		LoopbackOnly: true,
		RejoinFor:    2 * time.Minute, // longer than any wait below: a rejoin that should not happen shows
		Logger:       slog.New(slog.NewTextHandler(testWriter{t, p.name}, &slog.HandlerOptions{Level: slog.LevelWarn})),
		OnRemote: func(r *call.Remote) {
			p.mu.Lock()
			p.remotes = append(p.remotes, r)
			p.mu.Unlock()
			go p.read(r)
		},
		OnReconnecting: func(reason string) {
			t.Logf("%s: reconnecting: %s", p.name, reason)
			w.reconnecting.Add(1)
		},
		OnReconnected: func() {
			w.reconnected.Add(1)
			select {
			case w.up <- struct{}{}:
			default:
			}
		},
	})
	if err != nil {
		t.Fatalf("%s: %v", p.name, err)
	}
	p.s = s
	t.Cleanup(func() { s.Leave(context.Background()) })
}

// callSignals counts the call signals (invite, join, leave) that p
// received from user.
func callSignals(p *callPeer, user string) int {
	n := 0
	for _, e := range p.eventsOf(hush.EventCall) {
		if e.User == user {
			n++
		}
	}
	return n
}

// maxGap returns the longest time between two frames received in a row
// among fs.
func maxGap(fs []gotFrame) time.Duration {
	var gap time.Duration
	for i := 1; i < len(fs); i++ {
		gap = max(gap, fs[i].at.Sub(fs[i-1].at))
	}
	return gap
}

// TestCallRejoinAfterDrop: bob's push WebSocket drops mid-call; his
// session joins the call again by itself, with a fresh PeerConnection and
// the same keys, and both sides decrypt each other's frames byte for byte
// after the gap, which stays under 10 s. Nobody is rung again. After bob
// hangs up, a dropped connection no longer brings him back.
func TestCallRejoinAfterDrop(t *testing.T) {
	s, watch := startCallServer(t)
	var cut dropper
	alice := &callPeer{e2eDevice: s.register(t, "alice"), name: "alice"}
	bob := &callPeer{e2eDevice: s.register(t, "bob", cut.options), name: "bob"}
	cv := alice.direct("bob")
	bob.sync()
	online(t, alice.e2eDevice)
	online(t, bob.e2eDevice)
	aw, bw := &rejoinWatch{up: make(chan struct{}, 1)}, &rejoinWatch{up: make(chan struct{}, 1)}
	alice.joinRejoining(t, cv.ID, aw)
	waitUntil(t, 10*time.Second, "bob's invitation", func() bool {
		_, ok, _ := bob.CurrentCall(context.Background(), cv.ID)
		return ok
	})
	bob.joinRejoining(t, cv.ID, bw)
	peers := []*callPeer{alice, bob}
	waitConnected(t, peers)
	warmUp(t, peers)
	aliceID, bobID := alice.deviceID(t), bob.deviceID(t)

	sa, sb := stream(alice, 1, -1), stream(bob, 2, -1)
	waitUntil(t, 20*time.Second, "audio both ways", func() bool {
		return len(alice.frames(bobID, "audio")) >= 25 && len(bob.frames(aliceID, "audio")) >= 25
	})
	signals := callSignals(alice, "bob")
	remotes := map[*callPeer]int{alice: alice.remoteCount(), bob: bob.remoteCount()}

	dropped := time.Now()
	cut.drop()
	select {
	case <-bw.up:
	case <-time.After(30 * time.Second):
		t.Fatalf("bob did not reconnect (session ended: %q)", bob.s.Reason())
	}
	t.Logf("bob reconnected %v after the drop", time.Since(dropped))
	if bw.reconnecting.Load() == 0 {
		t.Error("bob reconnected without saying he was reconnecting")
	}
	// Both sides get the other's streams back (new remote streams) and
	// decrypt frames sent after the drop.
	for _, pair := range []struct {
		p    *callPeer
		from string
	}{{alice, bobID}, {bob, aliceID}} {
		waitUntil(t, 20*time.Second, pair.p.name+"'s frames after the drop", func() bool {
			fs := pair.p.frames(pair.from, "audio")
			return len(fs) > 0 && fs[len(fs)-1].at.After(dropped.Add(500*time.Millisecond)) && pair.p.remoteCount() >= remotes[pair.p]+2
		})
	}
	sa.halt()
	sb.halt()
	for _, pair := range []struct {
		p    *callPeer
		from string
	}{{alice, bobID}, {bob, aliceID}} {
		gap := maxGap(pair.p.frames(pair.from, "audio"))
		t.Logf("%s's longest gap in the audio received: %v", pair.p.name, gap)
		if gap >= 10*time.Second {
			t.Errorf("%s's audio stopped for %v", pair.p.name, gap)
		}
	}

	// Every frame sent once the paths are live again arrives, byte for
	// byte, under the same keys (epoch) as before.
	for _, p := range peers {
		p.mu.Lock()
		p.warm = nil
		p.mu.Unlock()
	}
	warmUp(t, peers)
	const ticks = 50
	after := []*streamer{stream(alice, 11, ticks), stream(bob, 12, ticks)}
	for _, st := range after {
		<-st.done
	}
	for i, pair := range []struct {
		p, from *callPeer
	}{{bob, alice}, {alice, bob}} {
		id := pair.from.deviceID(t)
		for _, kind := range []string{"audio", "video"} {
			want := after[i].sent(kind)
			if kind == "audio" && len(want) != ticks {
				t.Fatalf("%s sent %d audio frames of %d: %q", pair.from.name, len(want), ticks, pair.from.s.Reason())
			}
			waitUntil(t, 10*time.Second, pair.p.name+"'s "+kind+" after the rejoin", func() bool {
				fs := pair.p.frames(id, kind)
				return len(fs) >= len(want) && bytes.Equal(fs[len(fs)-1].data, want[len(want)-1])
			})
			fs := pair.p.frames(id, kind)
			got := make([][]byte, 0, len(want))
			for _, f := range fs[len(fs)-len(want):] {
				got = append(got, f.data)
			}
			if !slices.EqualFunc(got, want, bytes.Equal) {
				t.Fatalf("%s's %s from %s after the rejoin differs from what was sent", pair.p.name, kind, pair.from.name)
			}
		}
	}
	if n := callSignals(alice, "bob"); n != signals {
		t.Errorf("bob's rejoin signalled the members (%d call signals, %d before)", n, signals)
	}
	if aw.reconnecting.Load() != 0 {
		t.Error("alice, whose connection stayed up, reconnected")
	}
	watch.check(t)

	// Once bob hangs up, a dropped connection does not bring him back.
	if err := bob.s.Leave(context.Background()); err != nil {
		t.Fatal(err)
	}
	gid := mustGroupID(t, cv.ID)
	waitUntil(t, 10*time.Second, "bob out of the room", func() bool {
		return !slices.Contains(s.Calls().Participants(gid, alice.s.ID()), bobID)
	})
	before := bw.reconnecting.Load()
	cut.drop()
	waitUntil(t, 20*time.Second, "bob's push connection back", func() bool {
		return bob.Online() && cut.open() > 0
	})
	probeRoom(t, s, bob, gid)
	if slices.Contains(s.Calls().Participants(gid, alice.s.ID()), bobID) || bw.reconnecting.Load() != before {
		t.Fatal("bob rejoined the call he had left")
	}
}

// probeRoom has p join, then leave, a room of its own through its push
// connection, and waits until the SFU had p in it: the SFU handles a
// connection's frames in order, so any join p sent before is handled.
func probeRoom(t *testing.T, s *e2eServer, p *callPeer, gid []byte) {
	t.Helper()
	ctx := context.Background()
	probe := "probe-" + p.name
	if err := p.SendCallFrame(ctx, &proto.Call{GroupID: gid, CallID: probe, Op: proto.CallJoin}); err != nil {
		t.Fatal(err)
	}
	id := p.deviceID(t)
	waitUntil(t, 10*time.Second, "the probe join", func() bool {
		return slices.Contains(s.Calls().Participants(gid, probe), id)
	})
	if err := p.SendCallFrame(ctx, &proto.Call{GroupID: gid, CallID: probe, Op: proto.CallLeave}); err != nil {
		t.Fatal(err)
	}
}

// TestCallRejoinNotAfterRemoval: a device removed from the group mid-call
// is ended by the SFU ("removed from the group") and does not join again,
// even when its push connection then drops and comes back.
func TestCallRejoinNotAfterRemoval(t *testing.T) {
	s, _ := startCallServer(t)
	var cut dropper
	alice := &callPeer{e2eDevice: s.register(t, "alice"), name: "alice"}
	bob := &callPeer{e2eDevice: s.register(t, "bob", cut.options), name: "bob"}
	carol := &callPeer{e2eDevice: s.register(t, "carol"), name: "carol"}
	cv := alice.newGroup("call", "bob", "carol")
	other := alice.direct("bob") // bob stays in this one: his probe joins its room
	peers := []*callPeer{alice, bob, carol}
	for _, p := range peers {
		p.sync()
		online(t, p.e2eDevice)
	}
	ws := map[*callPeer]*rejoinWatch{}
	for _, p := range peers {
		ws[p] = &rejoinWatch{up: make(chan struct{}, 1)}
	}
	alice.joinRejoining(t, cv.ID, ws[alice])
	for _, p := range peers[1:] {
		waitUntil(t, 10*time.Second, p.name+"'s invitation", func() bool {
			_, ok, _ := p.CurrentCall(context.Background(), cv.ID)
			return ok
		})
		p.joinRejoining(t, cv.ID, ws[p])
	}
	waitConnected(t, peers)

	if err := alice.RemoveMember(context.Background(), cv.ID, "bob"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-bob.s.Done():
		t.Logf("bob's call ended: %s", bob.s.Reason())
	case <-time.After(20 * time.Second):
		t.Fatal("bob's call did not end on his removal")
	}
	if r := bob.s.Reason(); r != "ended by the server: removed from the group" && r != "removed from the group" {
		t.Errorf("bob's call ended with %q", r)
	}
	if n := ws[bob].reconnecting.Load(); n != 0 {
		t.Errorf("bob tried to rejoin after his removal (%d times)", n)
	}
	gid := mustGroupID(t, cv.ID)
	bobID := bob.deviceID(t)
	cut.drop()
	waitUntil(t, 20*time.Second, "bob's push connection back", func() bool {
		return bob.Online() && cut.open() > 0
	})
	probeRoom(t, s, bob, mustGroupID(t, other.ID))
	if slices.Contains(s.Calls().Participants(gid, alice.s.ID()), bobID) {
		t.Fatal("bob is back in the call he was removed from")
	}
	for _, p := range []*callPeer{alice, carol} {
		if r := p.s.Reason(); r != "" {
			t.Errorf("%s's call ended: %s", p.name, r)
		}
	}
}
