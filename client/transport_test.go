package client

import (
	"encoding/json"
	"testing"

	"github.com/hush-chat/hush/proto"
)

func TestDecodeFrames(t *testing.T) {
	// A frame alone is itself.
	fs, err := decodeFrames([]byte(`{"type":"message","message":{"seq":3}}`))
	if err != nil || len(fs) != 1 || fs[0].Type != proto.FrameMessage || fs[0].Message.Seq != 3 {
		t.Fatalf("single frame: %+v, %v", fs, err)
	}
	// A batch gives its frames in order.
	b, _ := json.Marshal(proto.Frame{Type: proto.FrameBatch, Frames: []proto.Frame{
		{Type: proto.FrameMessage, Message: &proto.Envelope{Seq: 1}},
		{Type: proto.FrameTyping, Typing: &proto.Typing{GroupID: []byte{1}}},
		{Type: proto.FrameMessage, Message: &proto.Envelope{Seq: 2}},
	}})
	fs, err = decodeFrames(b)
	if err != nil || len(fs) != 3 || fs[0].Message.Seq != 1 || fs[1].Type != proto.FrameTyping || fs[2].Message.Seq != 2 {
		t.Fatalf("batch: %+v, %v", fs, err)
	}
	for _, bad := range []string{
		`{"type":"batch","frames":[{"type":"batch","frames":[]}]}`,
		`{"type":"batch","frames":[{"type":"message","frames":[{"type":"message"}]}]}`,
		`{"type":"message","frames":[{"type":"message"}]}`,
		`{"type":"batch","frames":7}`,
		`not json`,
	} {
		if fs, err := decodeFrames([]byte(bad)); err == nil {
			t.Errorf("%s: decoded as %+v", bad, fs)
		}
	}
}

// FuzzDecodeFrames: any bytes from the server give frames (never a batch)
// or an error, and never a panic.
func FuzzDecodeFrames(f *testing.F) {
	f.Add([]byte(`{"type":"message","message":{"seq":3}}`))
	f.Add([]byte(`{"type":"batch","frames":[{"type":"message","message":{"seq":1}},{"type":"typing","typing":{"group_id":"AQ==","payload":"AQ=="}}]}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		fs, err := decodeFrames(in)
		if err != nil {
			return
		}
		for _, fr := range fs {
			if fr.Type == proto.FrameBatch || len(fr.Frames) > 0 {
				t.Fatalf("a batch came out of decodeFrames: %q", in)
			}
		}
	})
}
