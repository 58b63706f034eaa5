package calls

import (
	"context"
	"errors"
	"testing"

	"github.com/hush-chat/hush/proto"
)

// placeElsewhere is an Options.Place that puts every room on another
// node.
func placeElsewhere(context.Context, []byte, string) (string, bool, error) {
	return "https://node-2.example.org", false, nil
}

// recorder collects the frames an SFU sends a device.
type recorder struct{ frames []*proto.Call }

func (r *recorder) send(c *proto.Call) { r.frames = append(r.frames, c) }

var joinFrame = &proto.Call{GroupID: []byte("g"), CallID: "c", Op: proto.CallJoin}

// TestPlaceElsewhereMoved: without Options.Remote, a join for a room
// hosted elsewhere gets CallMoved with the host's URL, as before the
// relay; a relayed session (ConnectRelayed) gets ErrNotHosted instead.
func TestPlaceElsewhereMoved(t *testing.T) {
	sfu, err := New(Options{LoopbackOnly: true, Place: placeElsewhere})
	if err != nil {
		t.Fatal(err)
	}
	defer sfu.Close()
	var rec recorder
	se := sfu.Connect("d1", rec.send)
	defer se.Close()
	if err := se.Handle(context.Background(), joinFrame); err != nil {
		t.Fatal(err)
	}
	if len(rec.frames) != 1 || rec.frames[0].Op != proto.CallMoved || rec.frames[0].URL != "https://node-2.example.org" {
		t.Fatalf("frames %+v, want one moved", rec.frames)
	}
	if sfu.Rooms() != 0 {
		t.Fatal("the SFU opened a room hosted elsewhere")
	}

	var rec2 recorder
	rs := sfu.ConnectRelayed("d2", rec2.send)
	defer rs.Close()
	if err := rs.Handle(context.Background(), joinFrame); !errors.Is(err, ErrNotHosted) || len(rec2.frames) != 0 {
		t.Fatalf("relayed join: %v, frames %+v; want ErrNotHosted and none", err, rec2.frames)
	}
}

// notHosted is a Remote whose hosts never host the room.
type notHosted struct{ opens int }

func (n *notHosted) Open(context.Context, string, string, *proto.Call, func(*proto.Call)) (Relayed, error) {
	n.opens++
	return nil, ErrNotHosted
}

// TestRemoteNotHosted: a host that no longer hosts the room sends the
// relaying node back to the directory, a bounded number of times; the
// device then gets the error, and nothing of the room stays behind.
func TestRemoteNotHosted(t *testing.T) {
	remote := &notHosted{}
	sfu, err := New(Options{LoopbackOnly: true, Place: placeElsewhere, Remote: remote})
	if err != nil {
		t.Fatal(err)
	}
	defer sfu.Close()
	var rec recorder
	se := sfu.Connect("d1", rec.send)
	defer se.Close()
	err = se.Handle(context.Background(), joinFrame)
	if !errors.Is(err, ErrNotHosted) || remote.opens != placeAttempts || len(rec.frames) != 0 {
		t.Fatalf("join: %v after %d opens, frames %+v", err, remote.opens, rec.frames)
	}
	if len(se.remotes) != 0 {
		t.Fatalf("%d relayed rooms left behind", len(se.remotes))
	}
}
