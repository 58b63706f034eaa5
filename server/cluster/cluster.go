// Package cluster places call rooms on server nodes, and relays call
// signalling between them. A call's media goes through one SFU, so each
// room (a group id and a call id) lives on one node; a node asked to join
// a room that another node hosts relays the device's signalling there
// over NATS ([Relay]), and the device's media goes straight to that node.
//
// A Directory decides where rooms live. Local is the directory of a single
// node: every room is local. NATS keeps the directory in a JetStream
// key-value bucket shared by every node of a cluster (the NATS server the
// nodes already use for their bus): the first node to create a room's key
// hosts it, the key names the node's public URL, and the hosting node
// refreshes the key while the room is in use. A node that dies stops
// refreshing, its keys expire after the bucket's TTL, and the next join
// places the room on whichever node it reaches.
//
// # How the SFU uses it
//
//	p, err := dir.Place(ctx, cluster.Room{GroupID: gid, CallID: id})
//	switch {
//	case err != nil:  // answer CodeUnavailable: the client retries
//	case p.Local:     // host the room here
//	default:          // relay the join to p.URL (Relay.Open)
//	}
//
// and, when the room's last participant leaves, dir.Release(ctx, room).
// Config.OnLost tells the SFU that a room it hosts now belongs to another
// node (this node was cut off from NATS for longer than the TTL and
// another node placed the room meanwhile): it ends the room's calls, and
// their clients rejoin through the directory.
//
// # The relay
//
// [Relay] implements calls.Remote. A node's relay id is the first 16
// bytes of the SHA-256 of its public URL, in hex. The host of a room
// receives, on hush.calls.relay.<host id>, each relayed session's opening
// join (with the device id the origin node authenticated), its later
// frames, its close, and the origin's keepalives; joins and frames are
// NATS requests, answered with the host SFU's error if any. The origin
// receives the host's frames for a session on
// hush.calls.relay.<origin id>.<session id>. One subject per direction
// keeps a session's frames in order. On the host a relayed session is a
// calls.Session of its SFU (SFU.ConnectRelayed), so the roster check and
// everything else run there as for a local device. Origins list their
// live sessions to each host every RelayConfig.KeepAlive (5 s); a host
// ends sessions not kept alive for RelayConfig.Expiry (15 s), and an
// origin whose host has not answered for as long ends them with a
// CallEnded frame. Malformed messages are logged (never their content)
// and dropped. NATS is trusted: see docs/THREAT-MODEL.md.
//
// # Guarantees
//
// Placement is decided by JetStream's compare-and-set on the room's key,
// so of several nodes placing one room at once exactly one wins and all of
// them answer with the winner. A room can be hosted twice only while a
// node is cut off from NATS (it keeps its room until its next refresh
// fails, at most TTL/3 later than the other node took it over), and OnLost
// ends that. Public URLs must be unique per node: a node treats a key that
// names its own URL as its own (that is how a restarted node gets its
// rooms back).
package cluster

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
)

// Room names one call: a group and the call id its caller chose.
type Room struct {
	GroupID []byte
	CallID  string
}

// key is the room's key in the directory: characters NATS allows in a
// key, and no two rooms alike.
func (r Room) key() string {
	return "r." + base64.RawURLEncoding.EncodeToString(r.GroupID) + "." + hex.EncodeToString([]byte(r.CallID))
}

// String names the room in logs without its ids in the clear (they are
// metadata, but short ones are enough to tell rooms apart).
func (r Room) String() string {
	k := r.key()
	if len(k) > 18 {
		k = k[:18]
	}
	return "room(" + k + "…)"
}

// Placement is where a room lives.
type Placement struct {
	// URL is the public base URL of the node hosting the room, as clients
	// reach it (https://node-2.example.org).
	URL string
	// Local reports that this node hosts the room.
	Local bool
}

// Directory places rooms on nodes. Implementations are safe for
// concurrent use.
type Directory interface {
	// Place returns the node that hosts room, placing it on this node if
	// no live node does.
	Place(ctx context.Context, room Room) (Placement, error)
	// Lookup returns the node that hosts room, if any, without placing it.
	Lookup(ctx context.Context, room Room) (p Placement, ok bool, err error)
	// Release gives up a room this node hosts, when its last participant
	// has left. Releasing a room hosted elsewhere, or nowhere, does
	// nothing.
	Release(ctx context.Context, room Room) error
	// Close stops refreshing; the rooms this node hosts are released.
	Close() error
}

// ErrClosed is returned by a closed Directory.
var ErrClosed = errors.New("cluster: directory closed")

// Local is the Directory of a single node: every room is local.
type Local struct{ url string }

var _ Directory = Local{}

// NewLocal returns the directory of a node alone, whose public URL is url.
func NewLocal(url string) Local { return Local{url: url} }

func (l Local) Place(ctx context.Context, _ Room) (Placement, error) {
	if err := ctx.Err(); err != nil {
		return Placement{}, err
	}
	return Placement{URL: l.url, Local: true}, nil
}

func (l Local) Lookup(ctx context.Context, r Room) (Placement, bool, error) {
	p, err := l.Place(ctx, r)
	return p, err == nil, err
}

func (Local) Release(context.Context, Room) error { return nil }
func (Local) Close() error                        { return nil }

// checkRoom refuses rooms the protocol would refuse anyway.
func checkRoom(r Room) error {
	switch {
	case len(r.GroupID) == 0:
		return errors.New("cluster: room without a group id")
	case r.CallID == "":
		return errors.New("cluster: room without a call id")
	case len(r.GroupID) > 64 || len(r.CallID) > 64:
		return fmt.Errorf("cluster: room ids longer than 64 bytes")
	}
	return nil
}
