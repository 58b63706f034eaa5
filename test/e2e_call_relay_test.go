package test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/hush-chat/hush/proto"
	"github.com/hush-chat/hush/server/cluster"
)

// TestCallClusterRelayDisconnect: over the wire protocol, two nodes on
// one PostgreSQL schema and NATS. a's device, on node 1, opens the call,
// so node 1 hosts the room; b's device, on node 2, joins: node 2 relays
// its join, and the offer b gets comes from node 1's SFU (no moved).
// When b's WebSocket to node 2 closes, node 1 frees b's place in the
// room and both nodes forget the relayed session.
func TestCallClusterRelayDisconnect(t *testing.T) {
	clusterServices(t)
	o := postgresBackend(t)
	o.Bus = clusterNATS
	n1, n2 := start(t, o), start(t, o)
	p := newPair(t, n1)
	b := *p.b
	b.base = n2.URL()

	wa := p.a.dial()
	wa.write(proto.Frame{Type: proto.FrameCall, Call: &proto.Call{GroupID: p.gid, CallID: "c1", Op: proto.CallJoin}})
	if f := wa.nextOf(proto.FrameCall, 20*time.Second); f.Call.Op != proto.CallOffer {
		t.Fatalf("a's join: %+v", f.Call)
	}
	wb := b.dial()
	wb.write(proto.Frame{Type: proto.FrameCall, Call: &proto.Call{GroupID: p.gid, CallID: "c1", Op: proto.CallJoin}})
	f := wb.nextOf(proto.FrameCall, 20*time.Second)
	if f.Call.Op != proto.CallOffer || !bytes.Equal(f.Call.GroupID, p.gid) || f.Call.CallID != "c1" || !strings.Contains(f.Call.SDP, "m=audio") {
		t.Fatalf("b's join through node 2: %+v, want node 1's offer", f.Call)
	}
	if got := n1.Calls().Participants(p.gid, "c1"); len(got) != 2 {
		t.Fatalf("node 1's room holds %v", got)
	}
	if n2.Calls().Rooms() != 0 || n2.CallRelay().Stats().Relayed != 1 || n1.CallRelay().Stats().Hosted != 1 {
		t.Fatalf("node 2 hosts %d rooms, relays %+v; node 1 %+v", n2.Calls().Rooms(), n2.CallRelay().Stats(), n1.CallRelay().Stats())
	}

	wb.close()
	waitUntil(t, 10*time.Second, "node 1 to free b's place", func() bool {
		got := n1.Calls().Participants(p.gid, "c1")
		return len(got) == 1 && got[0] == p.a.device
	})
	waitUntil(t, 10*time.Second, "the relayed session to close on both nodes", func() bool {
		return n1.CallRelay().Stats() == cluster.RelayStats{} && n2.CallRelay().Stats() == cluster.RelayStats{}
	})
}
