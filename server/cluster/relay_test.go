package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/pion/webrtc/v4"

	"github.com/hush-chat/hush/internal/rtc"
	"github.com/hush-chat/hush/proto"
	"github.com/hush-chat/hush/server/calls"
)

// The relay's tests run real SFUs (on loopback), real room directories
// and real relays on the machine's NATS; the devices are calls.Sessions,
// as the server's WebSocket connections make them.

// relayNode is one server node: its directory, SFU and relay.
type relayNode struct {
	url   string
	dir   *NATS
	sfu   *calls.SFU
	relay *Relay
	nc    *nats.Conn
}

// nodeRemote is a node's Options.Remote: its relay, made after its SFU.
type nodeRemote struct{ n *relayNode }

func (r nodeRemote) Open(ctx context.Context, url, device string, join *proto.Call, send func(*proto.Call)) (calls.Relayed, error) {
	return r.n.relay.Open(ctx, url, device, join, send)
}

// startRelayNode starts a node on its own NATS connection (closing it is
// the node dying, as NATS sees it). keepAlive 0 selects the default;
// otherwise sessions expire after 10 × keepAlive, leaving the keepalives
// of a busy test machine room to be late.
func startRelayNode(t *testing.T, bucket, url string, keepAlive time.Duration) *relayNode {
	t.Helper()
	n := &relayNode{url: url, nc: natsConn(t)}
	var err error
	n.dir, err = Connect(context.Background(), Config{Conn: n.nc, Self: url, Bucket: bucket})
	if err != nil {
		t.Fatal(err)
	}
	n.sfu, err = calls.New(calls.Options{
		LoopbackOnly: true,
		Place: func(ctx context.Context, groupID []byte, callID string) (string, bool, error) {
			p, err := n.dir.Place(ctx, Room{GroupID: groupID, CallID: callID})
			return p.URL, p.Local, err
		},
		Release: func(groupID []byte, callID string) {
			n.dir.Release(context.Background(), Room{GroupID: groupID, CallID: callID})
		},
		Remote: nodeRemote{n},
	})
	if err != nil {
		t.Fatal(err)
	}
	n.relay, err = NewRelay(RelayConfig{Conn: n.nc, Self: url, SFU: n.sfu, KeepAlive: keepAlive, Expiry: 10 * keepAlive, Logger: slog.New(slog.NewTextHandler(testLog{t}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		n.sfu.Close()
		n.relay.Close()
		n.dir.Close()
	})
	return n
}

// testLog writes a node's logs into the test's.
type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// device is a device connected to one node: its calls.Session and the
// frames the node sent it.
type device struct {
	id     string
	sess   *calls.Session
	frames chan *proto.Call
}

// twoNodes starts nodes A and B of one cluster (one directory bucket).
func twoNodes(t *testing.T, keepAlive time.Duration) (a, b *relayNode) {
	bk := bucket(t)
	return startRelayNode(t, bk, "http://127.0.0.1:1", keepAlive), startRelayNode(t, bk, "http://127.0.0.1:2", keepAlive)
}

// callThroughB puts dev1, connected to A, in room r (so A hosts it) and
// dev2, connected to B, in it through B's relay; it returns dev2.
func callThroughB(t *testing.T, a, b *relayNode, r Room) *device {
	connectDevice(t, a, dev1).join(t, r)
	d2 := connectDevice(t, b, dev2)
	d2.join(t, r)
	return d2
}

func connectDevice(t *testing.T, n *relayNode, id string) *device {
	t.Helper()
	d := &device{id: id, frames: make(chan *proto.Call, 64)}
	d.sess = n.sfu.Connect(id, func(c *proto.Call) {
		select {
		case d.frames <- c:
		default:
			t.Errorf("device %s: frame queue full", id)
		}
	})
	t.Cleanup(d.sess.Close)
	return d
}

// next returns the device's next frame, failing the test after 20 s.
func (d *device) next(t *testing.T) *proto.Call {
	t.Helper()
	select {
	case c := <-d.frames:
		return c
	case <-time.After(20 * time.Second):
		t.Fatalf("device %s: no frame", d.id)
		return nil
	}
}

// join joins the room and returns the SFU's first offer.
func (d *device) join(t *testing.T, r Room) *proto.Call {
	t.Helper()
	if err := d.sess.Handle(context.Background(), &proto.Call{GroupID: r.GroupID, CallID: r.CallID, Op: proto.CallJoin}); err != nil {
		t.Fatalf("device %s joins: %v", d.id, err)
	}
	c := d.next(t)
	if c.Op != proto.CallOffer || !strings.Contains(c.SDP, "m=audio") {
		t.Fatalf("device %s: first frame %+v, want an offer", d.id, c)
	}
	return c
}

// waitFor polls cond until it holds, failing the test after 20 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func participants(n *relayNode, r Room) int { return len(n.sfu.Participants(r.GroupID, r.CallID)) }

const (
	dev1 = "00000000000000000000000000000001"
	dev2 = "00000000000000000000000000000002"
	dev3 = "00000000000000000000000000000003"
)

// TestCallRelayJoin: a device connected to node B joins a room node A hosts.
// B relays its join to A: the device gets A's offer (never "moved"),
// answers it through B, and its PeerConnection connects straight to A's
// candidates. A's room holds it; B hosts nothing. Leaving through B frees
// its place on A.
func TestCallRelayJoin(t *testing.T) {
	a, bb := twoNodes(t, 0)
	r := room(1)
	d1, d2 := connectDevice(t, a, dev1), connectDevice(t, bb, dev2)
	d1.join(t, r)
	offer := d2.join(t, r)

	if n := participants(a, r); n != 2 {
		t.Fatalf("node A's room holds %d devices, want 2", n)
	}
	if bb.sfu.Rooms() != 0 {
		t.Fatalf("node B hosts %d rooms", bb.sfu.Rooms())
	}
	if sa, sb := a.relay.Stats(), bb.relay.Stats(); sa != (RelayStats{Hosted: 1}) || sb != (RelayStats{Relayed: 1}) {
		t.Fatalf("relay stats: A %+v, B %+v", sa, sb)
	}
	if err := d2.sess.Handle(context.Background(), &proto.Call{GroupID: r.GroupID, CallID: r.CallID, Op: proto.CallJoin}); !isCode(err, proto.CodeConflict) {
		t.Fatalf("second join through B: %v, want a conflict", err)
	}

	// The device answers through B and connects to A.
	api, err := rtc.NewAPI(rtc.Config{LoopbackOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{BundlePolicy: webrtc.BundlePolicyMaxBundle})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	connected := make(chan struct{})
	var once sync.Once
	pc.OnICEConnectionStateChange(func(s webrtc.ICEConnectionState) {
		if s == webrtc.ICEConnectionStateConnected {
			once.Do(func() { close(connected) })
		}
	})
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer.SDP}); err != nil {
		t.Fatal(err)
	}
	ans, err := pc.CreateAnswer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(ans); err != nil {
		t.Fatal(err)
	}
	<-gathered
	if err := d2.sess.Handle(context.Background(), &proto.Call{GroupID: r.GroupID, CallID: r.CallID, Op: proto.CallAnswer, SDP: pc.LocalDescription().SDP}); err != nil {
		t.Fatalf("answer through B: %v", err)
	}
	select {
	case <-connected:
	case <-time.After(20 * time.Second):
		t.Fatal("the device's PeerConnection did not connect to node A")
	}
	// A second answer has no offer to answer on A: A's error comes back.
	if err := d2.sess.Handle(context.Background(), &proto.Call{GroupID: r.GroupID, CallID: r.CallID, Op: proto.CallAnswer, SDP: pc.LocalDescription().SDP}); !isCode(err, proto.CodeConflict) {
		t.Fatalf("stale answer through B: %v, want A's conflict", err)
	}

	if err := d2.sess.Handle(context.Background(), &proto.Call{GroupID: r.GroupID, CallID: r.CallID, Op: proto.CallLeave}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "node A to free the device's place", func() bool { return participants(a, r) == 1 })
	waitFor(t, "the relayed session to close on both nodes", func() bool {
		return a.relay.Stats() == RelayStats{} && bb.relay.Stats() == RelayStats{}
	})
	for {
		select {
		case c := <-d2.frames:
			if c.Op == proto.CallMoved {
				t.Fatalf("the device got moved: %+v", c)
			}
			continue
		default:
		}
		break
	}
}

func isCode(err error, code proto.Code) bool {
	var pe *proto.Error
	return errors.As(err, &pe) && pe.Code == code
}

// TestCallRelayDisconnect: the connection of a device that joined through B
// closes (its calls.Session closes): A frees its place at once.
func TestCallRelayDisconnect(t *testing.T) {
	a, bb := twoNodes(t, 0)
	r := room(2)
	d2 := callThroughB(t, a, bb, r)
	if n := participants(a, r); n != 2 {
		t.Fatalf("node A's room holds %d devices, want 2", n)
	}
	d2.sess.Close()
	waitFor(t, "node A to free the device's place", func() bool { return participants(a, r) == 1 })
	waitFor(t, "the relayed session to close on both nodes", func() bool {
		return a.relay.Stats() == RelayStats{} && bb.relay.Stats() == RelayStats{}
	})
}

// TestCallRelayHostEnds: A evicts a device relayed from B (removed from the
// group): the device gets A's ended frame through B, and both sides
// forget the session; the device can join again.
func TestCallRelayHostEnds(t *testing.T) {
	a, bb := twoNodes(t, 0)
	r := room(3)
	d2 := callThroughB(t, a, bb, r)
	a.sfu.Evict(r.GroupID, dev2)
	if c := d2.next(t); c.Op != proto.CallEnded || c.Reason != "removed from the group" {
		t.Fatalf("after the eviction: %+v, want ended", c)
	}
	waitFor(t, "the relayed session to close on both nodes", func() bool {
		return a.relay.Stats() == RelayStats{} && bb.relay.Stats() == RelayStats{}
	})
	d2.join(t, r)
	if n := participants(a, r); n != 2 {
		t.Fatalf("node A's room holds %d devices after the rejoin, want 2", n)
	}
}

// TestCallRelayExpiry: A expires the sessions of an origin that stops keeping
// them alive (an origin speaking the relay's protocol by hand, which
// never sends a keepalive), and keeps those that B keeps alive.
func TestCallRelayExpiry(t *testing.T) {
	const keepAlive = 100 * time.Millisecond
	a, bb := twoNodes(t, keepAlive)
	r := room(4)
	d2 := callThroughB(t, a, bb, r)

	// The silent origin opens a session for dev3.
	nc := natsConn(t)
	origin, sid := nodeID("http://127.0.0.1:3"), sessionID()
	ends := make(chan toOrigin, 16)
	sub, err := nc.Subscribe(sessionSubject(origin, sid), func(m *nats.Msg) {
		if o, err := decodeToOrigin(m.Data); err == nil && o.End != "" {
			ends <- o
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	open, _ := json.Marshal(toHost{Op: opOpen, Origin: origin, Session: sid, Device: dev3, Call: &proto.Call{GroupID: r.GroupID, CallID: r.CallID, Op: proto.CallJoin}})
	msg, err := nc.Request(hostSubject(a.relay.self), open, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := decodeReply(msg.Data); err != nil || rep.Error != nil || rep.NotHosted {
		t.Fatalf("open: %+v %v", rep, err)
	}
	if n := participants(a, r); n != 3 {
		t.Fatalf("node A's room holds %d devices, want 3", n)
	}
	waitFor(t, "node A to expire the silent origin's session", func() bool { return participants(a, r) == 2 })
	select {
	case <-ends:
	case <-time.After(20 * time.Second):
		t.Fatal("the silent origin was not told its session ended")
	}
	if got := a.sfu.Participants(r.GroupID, r.CallID); !contains(got, dev2) || contains(got, dev3) {
		t.Fatalf("node A's room holds %v: want B's device kept alive, the silent origin's gone", got)
	}
	if sa := a.relay.Stats(); sa.Hosted != 1 {
		t.Fatalf("node A hosts %d relayed sessions, want B's", sa.Hosted)
	}
	select {
	case c := <-d2.frames:
		t.Fatalf("B's device got %+v", c)
	default:
	}
}

func contains(s []string, x string) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}

// TestCallRelayHostDies: A drops off NATS (its connection closes, as when
// its process dies): B's keepalives go unanswered, and B ends the call
// of its device with a clear reason.
func TestCallRelayHostDies(t *testing.T) {
	const keepAlive = 100 * time.Millisecond
	a, bb := twoNodes(t, keepAlive)
	r := room(5)
	d2 := callThroughB(t, a, bb, r)
	a.nc.Close()
	c := d2.next(t)
	if c.Op != proto.CallEnded || c.Reason != reasonUnreachable || string(c.GroupID) != string(r.GroupID) || c.CallID != r.CallID {
		t.Fatalf("after node A died: %+v, want ended (%s)", c, reasonUnreachable)
	}
	waitFor(t, "node B to forget the session", func() bool { return bb.relay.Stats() == RelayStats{} })
	// The device's next frame for the room is B's own answer: not in it.
	if err := d2.sess.Handle(context.Background(), &proto.Call{GroupID: r.GroupID, CallID: r.CallID, Op: proto.CallAnswer, SDP: "v=0"}); !isCode(err, proto.CodeNotFound) {
		t.Fatalf("answer after the end: %v, want not found", err)
	}
}

// TestCallRelayBadMessages: malformed messages on a node's relay subject and
// on a session's subject are logged and dropped (a request gets a bad
// request answer); the relay goes on working.
func TestCallRelayBadMessages(t *testing.T) {
	a, bb := twoNodes(t, 0)
	r := room(6)
	connectDevice(t, a, dev1).join(t, r)
	nc := natsConn(t)
	bad := []string{
		``, `null`, `{`, `[]`, `{"op":"open"}`,
		`{"op":"open","origin":"` + nodeID("x") + `","session":"zz"}`,
		`{"op":"open","origin":"` + nodeID("x") + `","session":"` + sessionID() + `","device":"d"}`,
		`{"op":"frame","origin":"` + nodeID("x") + `","session":"` + sessionID() + `"}`,
		`{"op":"keepalive","origin":"` + nodeID("x") + `","sessions":["*"]}`,
		`{"op":"nope","origin":"` + nodeID("x") + `"}`,
		`{"op":"open","origin":"` + nodeID("x") + `","session":"` + sessionID() + `","device":"d","call":{"group_id":"!!","call_id":"c","op":"join"}}`,
	}
	for _, m := range bad {
		msg, err := nc.Request(hostSubject(a.relay.self), []byte(m), 10*time.Second)
		if err != nil {
			t.Fatalf("%q: %v", m, err)
		}
		rep, err := decodeReply(msg.Data)
		if err != nil || rep.Error == nil || rep.Error.Code != proto.CodeBadRequest {
			t.Fatalf("%q: answered %+v %v, want bad request", m, rep, err)
		}
	}
	d2 := connectDevice(t, bb, dev2)
	d2.join(t, r)
	var sid string
	bb.relay.mu.Lock()
	for id := range bb.relay.origins {
		sid = id
	}
	bb.relay.mu.Unlock()
	for _, m := range []string{``, `{}`, `{"call":{"op":"ended"},"end":"x"}`, `{"call":{"group_id":"Z3JvdXAtOQ==","call_id":"x","op":"ended"}}`} {
		if err := nc.Publish(sessionSubject(bb.relay.self, sid), []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	// A frame after them, in order on the session's subject, reaches the
	// device: the session still works.
	ok, _ := json.Marshal(toOrigin{Call: &proto.Call{GroupID: r.GroupID, CallID: r.CallID, Op: proto.CallOffer, SDP: "v=0"}})
	if err := nc.Publish(sessionSubject(bb.relay.self, sid), ok); err != nil {
		t.Fatal(err)
	}
	if c := d2.next(t); c.Op != proto.CallOffer || c.SDP != "v=0" {
		t.Fatalf("B's device got %+v, want the frame after the malformed ones", c)
	}
	if err := d2.sess.Handle(context.Background(), &proto.Call{GroupID: r.GroupID, CallID: r.CallID, Op: proto.CallLeave}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "node A to free the device's place", func() bool { return participants(a, r) == 1 })
	select {
	case c := <-d2.frames:
		t.Fatalf("B's device got %+v from malformed messages", c)
	default:
	}
}
