package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/gobwas/ws"

	"github.com/hush-chat/hush/proto"
)

// clientFrame encodes a frame as a client sends it: masked.
func clientFrame(t testing.TB, op ws.OpCode, fin bool, payload []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	f := ws.MaskFrameInPlace(ws.NewFrame(op, fin, append([]byte(nil), payload...)))
	if err := ws.WriteFrame(&b, f); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestReadMessage(t *testing.T) {
	var controls []string
	control := func(op ws.OpCode, p []byte) error {
		controls = append(controls, map[ws.OpCode]string{ws.OpPing: "ping", ws.OpClose: "close"}[op]+":"+string(p))
		return nil
	}
	// A fragmented text message with a ping in between, then a binary one.
	var in []byte
	in = append(in, clientFrame(t, ws.OpText, false, []byte(`{"type":`))...)
	in = append(in, clientFrame(t, ws.OpPing, true, []byte("hi"))...)
	in = append(in, clientFrame(t, ws.OpContinuation, true, []byte(`"ping"}`))...)
	in = append(in, clientFrame(t, ws.OpBinary, true, []byte{1, 2})...)
	in = append(in, clientFrame(t, ws.OpClose, true, ws.NewCloseFrameBody(ws.StatusNormalClosure, ""))...)
	r := bytes.NewReader(in)
	op, msg, err := readMessage(r, 1<<10, control)
	if err != nil || op != ws.OpText || string(msg) != `{"type":"ping"}` {
		t.Fatalf("first message: %v %q %v", op, msg, err)
	}
	op, msg, err = readMessage(r, 1<<10, control)
	if err != nil || op != ws.OpBinary || !bytes.Equal(msg, []byte{1, 2}) {
		t.Fatalf("second message: %v %q %v", op, msg, err)
	}
	if _, _, err := readMessage(r, 1<<10, control); !errors.Is(err, errPeerClosed) {
		t.Fatalf("after close frame: %v, want errPeerClosed", err)
	}
	if len(controls) != 2 || controls[0] != "ping:hi" || !strings.HasPrefix(controls[1], "close:") {
		t.Fatalf("control frames seen: %q", controls)
	}
	// Nothing is read past the message: the next one stays in the reader.
	in = append(clientFrame(t, ws.OpText, true, []byte("a")), clientFrame(t, ws.OpText, true, []byte("b"))...)
	r = bytes.NewReader(in)
	if _, _, err := readMessage(r, 1<<10, control); err != nil {
		t.Fatal(err)
	}
	if r.Len() != len(clientFrame(t, ws.OpText, true, []byte("b"))) {
		t.Fatalf("%d bytes left after the first message", r.Len())
	}
}

func TestReadMessageRefuses(t *testing.T) {
	unmasked := func(op ws.OpCode, fin bool, p []byte) []byte {
		var b bytes.Buffer
		ws.WriteFrame(&b, ws.NewFrame(op, fin, p))
		return b.Bytes()
	}
	rsv := clientFrame(t, ws.OpText, true, []byte("x"))
	rsv[0] |= 0x40
	cases := []struct {
		name string
		in   []byte
		want error
	}{
		{"unmasked", unmasked(ws.OpText, true, []byte("x")), errUnmasked},
		{"too large", clientFrame(t, ws.OpText, true, make([]byte, 11)), errTooBig},
		{"too large in fragments", append(clientFrame(t, ws.OpText, false, make([]byte, 6)), clientFrame(t, ws.OpContinuation, true, make([]byte, 6))...), errTooBig},
		{"reserved bits", rsv, errReserved},
		{"reserved opcode", clientFrame(t, ws.OpCode(3), true, nil), errReserved},
		{"fragmented control", clientFrame(t, ws.OpPing, false, nil), errBadControl},
		{"long control", clientFrame(t, ws.OpPing, true, make([]byte, 126)), errBadControl},
		{"lone continuation", clientFrame(t, ws.OpContinuation, true, []byte("x")), errContinuation},
		{"data inside fragments", append(clientFrame(t, ws.OpText, false, []byte("x")), clientFrame(t, ws.OpText, true, []byte("y"))...), errFragmented},
		{"truncated", clientFrame(t, ws.OpText, true, []byte("hello"))[:8], io.ErrUnexpectedEOF},
	}
	for _, c := range cases {
		_, _, err := readMessage(bytes.NewReader(c.in), 10, func(ws.OpCode, []byte) error { return nil })
		if !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}

// readServerFrames decodes what appendFrames wrote as a client would.
func readServerFrames(t *testing.T, b []byte) [][]byte {
	t.Helper()
	var out [][]byte
	r := bytes.NewReader(b)
	for r.Len() > 0 {
		f, err := ws.ReadFrame(r)
		if err != nil {
			t.Fatal(err)
		}
		if f.Header.Masked || !f.Header.Fin || f.Header.OpCode != ws.OpText {
			t.Fatalf("frame header %+v", f.Header)
		}
		if len(f.Payload) > proto.MaxBatchBytes {
			t.Fatalf("frame of %d bytes, over MaxBatchBytes", len(f.Payload))
		}
		out = append(out, f.Payload)
	}
	return out
}

func TestAppendFrames(t *testing.T) {
	msg := func(n int) []byte {
		b, _ := json.Marshal(proto.Frame{Type: proto.FrameMessage, Message: &proto.Envelope{Seq: uint64(n), Payload: make([]byte, 100*n)}})
		return b
	}
	frames := [][]byte{msg(1), msg(2), msg(700)} // 126-byte and 16-bit and 64-bit lengths
	// Without batch: each frame as itself, in order.
	got := readServerFrames(t, appendFrames(nil, frames, false))
	if len(got) != 3 {
		t.Fatalf("%d frames, want 3", len(got))
	}
	for i := range got {
		if !bytes.Equal(got[i], frames[i]) {
			t.Fatalf("frame %d changed", i)
		}
	}
	// With batch: one batch frame carrying all three, in order.
	got = readServerFrames(t, appendFrames(nil, frames, true))
	if len(got) != 1 {
		t.Fatalf("%d frames, want 1 batch", len(got))
	}
	var batch proto.Frame
	if err := json.Unmarshal(got[0], &batch); err != nil || batch.Type != proto.FrameBatch || len(batch.Frames) != 3 {
		t.Fatalf("batch %q: %v", got[0][:40], err)
	}
	for i, f := range batch.Frames {
		if f.Type != proto.FrameMessage || f.Message.Seq != uint64([]int{1, 2, 700}[i]) {
			t.Fatalf("batch frame %d: %+v", i, f)
		}
	}
	// A single frame goes as itself even with batch.
	got = readServerFrames(t, appendFrames(nil, frames[:1], true))
	if len(got) != 1 || !bytes.Equal(got[0], frames[0]) {
		t.Fatal("a single frame was wrapped")
	}
	// Frames that do not fit one batch are split, never above the limit.
	big := make([][]byte, 12)
	for i := range big {
		big[i] = msg(1500) // about 200 KiB each in base64
	}
	got = readServerFrames(t, appendFrames(nil, big, true))
	n := 0
	for _, g := range got {
		var f proto.Frame
		if err := json.Unmarshal(g, &f); err != nil {
			t.Fatal(err)
		}
		if f.Type == proto.FrameBatch {
			n += len(f.Frames)
		} else {
			n++
		}
	}
	if n != len(big) || len(got) < 2 {
		t.Fatalf("%d frames in %d WebSocket frames, want %d in several", n, len(got), len(big))
	}
}

// FuzzReadMessage: whatever a client sends, readMessage returns a message
// within the limit or an error, and never panics.
func FuzzReadMessage(f *testing.F) {
	f.Add(clientFrame(f, ws.OpText, true, []byte(`{"type":"ping","id":1}`)))
	f.Add(append(clientFrame(f, ws.OpText, false, []byte(`{"ty`)), clientFrame(f, ws.OpContinuation, true, []byte(`pe":"ping"}`))...))
	f.Add(clientFrame(f, ws.OpClose, true, ws.NewCloseFrameBody(ws.StatusGoingAway, "bye")))
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		for range 4 {
			_, msg, err := readMessage(r, 64, func(ws.OpCode, []byte) error { return nil })
			if err != nil {
				return
			}
			if len(msg) > 64 {
				t.Fatalf("message of %d bytes over the limit", len(msg))
			}
		}
	})
}
