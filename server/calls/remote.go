package calls

import (
	"context"
	"sync"

	"github.com/hush-chat/hush/proto"
)

// Remote relays the signalling of rooms that other server nodes host
// ([Options.Remote]); package server/cluster implements it over NATS.
// Only signalling is relayed: the device's PeerConnection connects
// straight to the hosting node's ICE candidates, which its offers carry.
type Remote interface {
	// Open starts relaying one device's signalling for one room to the
	// node whose public URL is url, beginning with join (a CallJoin
	// frame), and returns once the host has handled the join. Its error
	// is the host's answer to the join (a *proto.Error; ErrNotHosted if
	// the host no longer hosts the room), or one saying the host could not
	// be reached. send delivers the host's frames to the device, one at a
	// time and in order; it may be called before Open returns. A relayed
	// session that ends on its own (the host ended the device's call, or
	// stopped answering) sends the device a CallEnded frame last.
	Open(ctx context.Context, url, device string, join *proto.Call, send func(*proto.Call)) (Relayed, error)
}

// Relayed is one device's signalling for one room hosted on another node.
type Relayed interface {
	// Handle relays a frame from the device (an answer) to the host and
	// returns the host's error for it, as Session.Handle does.
	Handle(ctx context.Context, c *proto.Call) error
	// Close ends the relayed session: the device leaves the room on the
	// host. It is safe to call more than once, and from send.
	Close()
}

// ErrNotHosted refuses a join relayed to a node that no longer hosts the
// room (the directory placed it elsewhere meanwhile); the relaying node
// asks the directory again.
var ErrNotHosted = &proto.Error{Code: proto.CodeUnavailable, Message: "call: the room is no longer hosted on this node; join again"}

// placeAttempts bounds the joins of one frame that find the room moved
// under them.
const placeAttempts = 3

// remoteSlot is a room of the session hosted on another node: reserved
// while Remote.Open runs, then holding the relayed session.
type remoteSlot struct {
	mu   sync.Mutex
	r    Relayed
	gone bool // dropped: the relayed session is closed, or closes once Open returns
}

// joinRemote relays the join of room k to the node at url.
func (se *Session) joinRemote(ctx context.Context, k roomKey, url string, join *proto.Call) error {
	slot := &remoteSlot{}
	se.mu.Lock()
	switch {
	case se.closed:
		se.mu.Unlock()
		return &proto.Error{Code: proto.CodeUnavailable, Message: "connection closing"}
	case se.peers[k] != nil || se.remotes[k] != nil:
		se.mu.Unlock()
		return &proto.Error{Code: proto.CodeConflict, Message: "already in this call"}
	}
	se.remotes[k] = slot
	se.mu.Unlock()

	r, err := se.sfu.opts.Remote.Open(ctx, url, se.device, join, func(c *proto.Call) {
		if c.Op == proto.CallEnded {
			se.dropRemote(k, slot)
		}
		se.send(c)
	})
	if err != nil {
		se.dropRemote(k, slot)
		return err
	}
	slot.mu.Lock()
	if slot.gone {
		slot.mu.Unlock()
		r.Close()
		return nil // ended (the device got CallEnded) or closed meanwhile
	}
	slot.r = r
	slot.mu.Unlock()
	return nil
}

// remote returns the relayed session of room k, if any.
func (se *Session) remote(k roomKey) Relayed {
	se.mu.Lock()
	slot := se.remotes[k]
	se.mu.Unlock()
	if slot == nil {
		return nil
	}
	slot.mu.Lock()
	defer slot.mu.Unlock()
	if slot.gone {
		return nil
	}
	return slot.r
}

// dropRemote forgets room k's relayed session if slot is still it, and
// closes it.
func (se *Session) dropRemote(k roomKey, slot *remoteSlot) {
	se.mu.Lock()
	if se.remotes[k] == slot {
		delete(se.remotes, k)
	}
	se.mu.Unlock()
	slot.close()
}

// close marks the slot gone and closes its relayed session, if Open
// returned one.
func (slot *remoteSlot) close() {
	slot.mu.Lock()
	r := slot.r
	slot.gone, slot.r = true, nil
	slot.mu.Unlock()
	if r != nil {
		r.Close()
	}
}
