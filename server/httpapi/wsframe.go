package httpapi

import (
	"encoding/binary"
	"errors"
	"io"
	"sync"

	"github.com/gobwas/ws"

	"github.com/hush-chat/hush/proto"
)

// WebSocket frame I/O on the raw connection (RFC 6455, section 5), with
// gobwas/ws reading the headers. Nothing is buffered between frames: a
// message is read with exact-length reads, so that bytes of the next one
// stay in the kernel, where the poller sees them.

// closeError is a failed read that closes the connection with code.
type closeError struct {
	code   ws.StatusCode
	reason string
}

func (e *closeError) Error() string { return "websocket: " + e.reason }

var (
	errPeerClosed   = errors.New("websocket: peer closed")
	errUnmasked     = &closeError{ws.StatusProtocolError, "client frames must be masked"}
	errReserved     = &closeError{ws.StatusProtocolError, "reserved bits or opcode"}
	errBadControl   = &closeError{ws.StatusProtocolError, "malformed control frame"}
	errContinuation = &closeError{ws.StatusProtocolError, "unexpected continuation frame"}
	errFragmented   = &closeError{ws.StatusProtocolError, "data frame inside a fragmented message"}
	errTooBig       = &closeError{ws.StatusMessageTooBig, "message too large"}
)

// readMessage reads one data message (text or binary, reassembled from
// its fragments) of at most limit bytes from r. Control frames on the way
// are passed to control (pings, pongs; a close frame ends the read with
// errPeerClosed after control has seen it).
func readMessage(r io.Reader, limit int64, control func(op ws.OpCode, payload []byte) error) (ws.OpCode, []byte, error) {
	var (
		op  ws.OpCode
		msg []byte
	)
	for {
		h, err := ws.ReadHeader(r)
		if err != nil {
			return 0, nil, err
		}
		if !h.Masked {
			return 0, nil, errUnmasked
		}
		if h.Rsv != 0 || h.OpCode.IsReserved() {
			return 0, nil, errReserved
		}
		if h.OpCode.IsControl() {
			if !h.Fin || h.Length > ws.MaxControlFramePayloadSize {
				return 0, nil, errBadControl
			}
			p := make([]byte, h.Length)
			if _, err := io.ReadFull(r, p); err != nil {
				return 0, nil, err
			}
			ws.Cipher(p, h.Mask, 0)
			if err := control(h.OpCode, p); err != nil {
				return 0, nil, err
			}
			if h.OpCode == ws.OpClose {
				return 0, nil, errPeerClosed
			}
			continue
		}
		switch {
		case h.OpCode == ws.OpContinuation && msg == nil:
			return 0, nil, errContinuation
		case h.OpCode != ws.OpContinuation && msg != nil:
			return 0, nil, errFragmented
		case h.OpCode != ws.OpContinuation:
			op = h.OpCode
			msg = []byte{}
		}
		if h.Length < 0 || h.Length > limit-int64(len(msg)) {
			return 0, nil, errTooBig
		}
		n := len(msg)
		msg = append(msg, make([]byte, h.Length)...)
		if _, err := io.ReadFull(r, msg[n:]); err != nil {
			return 0, nil, err
		}
		ws.Cipher(msg[n:], h.Mask, 0)
		if h.Fin {
			return op, msg, nil
		}
	}
}

// appendHeader appends the header of an unmasked, final frame of op with
// n payload bytes.
func appendHeader(b []byte, op ws.OpCode, n int) []byte {
	b = append(b, 0x80|byte(op))
	switch {
	case n < 126:
		return append(b, byte(n))
	case n <= 0xffff:
		return binary.BigEndian.AppendUint16(append(b, 126), uint16(n))
	}
	return binary.BigEndian.AppendUint64(append(b, 127), uint64(n))
}

// appendFrame appends a text frame carrying payload.
func appendFrame(b []byte, payload []byte) []byte {
	return append(appendHeader(b, ws.OpText, len(payload)), payload...)
}

const (
	batchHead = `{"type":"` + proto.FrameBatch + `","frames":[`
	batchTail = `]}`
)

// appendFrames appends frames (encoded proto.Frames) as WebSocket text
// frames. With batch, consecutive frames share batch frames of at most
// proto.MaxBatchBytes each; a frame alone goes as itself.
func appendFrames(b []byte, frames [][]byte, batch bool) []byte {
	for len(frames) > 0 {
		n, size := 1, len(batchHead)+len(frames[0])+len(batchTail)
		if batch {
			for n < len(frames) && size+1+len(frames[n]) <= proto.MaxBatchBytes {
				size += 1 + len(frames[n])
				n++
			}
		}
		if n == 1 {
			b = appendFrame(b, frames[0])
			frames = frames[1:]
			continue
		}
		b = appendHeader(b, ws.OpText, size)
		b = append(b, batchHead...)
		for i, f := range frames[:n] {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, f...)
		}
		b = append(b, batchTail...)
		frames = frames[n:]
	}
	return b
}

// writeBufs holds write buffers between writes, so that an idle connection
// holds none.
var writeBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

// maxPooledBuf is the largest buffer put back in writeBufs.
const maxPooledBuf = 256 << 10
