package calls

import (
	"errors"
	"io"
	"sync"

	"github.com/pion/transport/v4/packetio"
)

// srtcpBufferLimit bounds an RTCP stream's buffer, as pion's default does.
const srtcpBufferLimit = 100 * 1000

// errNoPacket is what an inbox's Read returns, within a delivery, when
// the packet being delivered was taken already.
var errNoPacket = errors.New("calls: no packet to read")

// inboxes are the buffers into which the SRTP session of one peer's
// PeerConnection writes the RTP packets it decrypts: one inbox per SSRC,
// made by pion through the SettingEngine's BufferFactory (rtc.Config).
//
// By default pion queues each decrypted packet in a buffer that the
// track's reader, a goroutine of its own, drains: a hand-off between
// goroutines and a copy per packet received. An inbox instead delivers
// each packet as it is written, on the SRTP session's goroutine, to the
// track's forwarder, which reads it through the track's Read (so that the
// receive interceptors, NACK generator and receiver reports, see every
// packet) and forwards it at once.
type inboxes struct {
	mu sync.Mutex
	m  map[uint32]*inbox // by SSRC
}

func newInboxes() *inboxes { return &inboxes{m: make(map[uint32]*inbox)} }

// buffer is the BufferFactory.
func (x *inboxes) buffer(t packetio.BufferPacketType, ssrc uint32) io.ReadWriteCloser {
	if t != packetio.RTPBufferPacket {
		b := packetio.NewBuffer()
		b.SetLimitSize(srtcpBufferLimit)
		return b
	}
	in := &inbox{owner: x, ssrc: ssrc}
	in.cond.L = &in.mu
	x.mu.Lock()
	x.m[ssrc] = in
	x.mu.Unlock()
	return in
}

// attach has deliver called for every packet the stream with this SSRC
// receives from now on, and reports whether there is such a stream.
func (x *inboxes) attach(ssrc uint32, deliver func()) bool {
	x.mu.Lock()
	in := x.m[ssrc]
	x.mu.Unlock()
	if in == nil {
		return false
	}
	in.mu.Lock()
	in.deliver = deliver
	in.mu.Unlock()
	return true
}

// An inbox is one RTP stream's buffer: it holds the packet being
// delivered, and nothing else. Packets written while no forwarder is
// attached (before the track is published, or after it was refused) are
// dropped, as if lost on the way. A Read outside a delivery waits until
// the inbox closes: the SFU reads a stream only through its forwarder,
// and pion itself reads only streams a call does not negotiate (RTX and
// FEC repair streams, simulcast probing).
type inbox struct {
	owner *inboxes
	ssrc  uint32

	mu         sync.Mutex
	cond       sync.Cond // on mu: closed
	deliver    func()    // reads the pending packet and forwards it
	pending    []byte    // during a delivery: the packet, until read
	delivering bool
	closed     bool
}

// Write delivers one packet. pion's SRTP session calls it from its read
// loop, one packet at a time, with a buffer it reuses afterwards.
func (in *inbox) Write(pkt []byte) (int, error) {
	in.mu.Lock()
	if in.closed {
		in.mu.Unlock()
		return 0, io.ErrClosedPipe
	}
	deliver := in.deliver
	if deliver == nil {
		in.mu.Unlock()
		return len(pkt), nil
	}
	in.pending, in.delivering = pkt, true
	in.mu.Unlock()

	deliver()

	in.mu.Lock()
	in.pending, in.delivering = nil, false
	in.mu.Unlock()
	return len(pkt), nil
}

// Read returns the packet being delivered.
func (in *inbox) Read(b []byte) (int, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	for {
		switch {
		case in.pending != nil:
			if len(b) < len(in.pending) {
				return 0, io.ErrShortBuffer
			}
			n := copy(b, in.pending)
			in.pending = nil
			return n, nil
		case in.closed:
			return 0, io.EOF
		case in.delivering:
			return 0, errNoPacket
		}
		in.cond.Wait()
	}
}

// Close ends the stream: Reads return io.EOF and Writes fail.
func (in *inbox) Close() error {
	in.mu.Lock()
	in.closed = true
	in.deliver = nil
	in.cond.Broadcast()
	in.mu.Unlock()
	x := in.owner
	x.mu.Lock()
	if x.m[in.ssrc] == in {
		delete(x.m, in.ssrc)
	}
	x.mu.Unlock()
	return nil
}
