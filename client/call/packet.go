package call

import (
	"time"

	"github.com/pion/rtp"
)

// The SFrame RTP payload format (draft-ietf-avtcore-rtp-sframe-02 §4):
// each packet's payload is a one-byte SFrame payload descriptor followed
// by a fragment of one SFrame ciphertext.
//
//	 0 1 2 3 4 5 6 7
//	+-+-+-+-+-+-+-+-+
//	|S|E|T|    0    |
//	+-+-+-+-+-+-+-+-+
//
// S marks a frame's first packet and E its last; T is 0 because Hush
// encrypts whole media frames ("per-frame SFrame", the encoded-transform
// way) rather than packets. The other bits are reserved and sent as zero.
// All packets of a frame share its RTP timestamp and payload type, which
// names the codec inside (Opus or VP8); the marker bit is set on a video
// frame's last packet.
const (
	descS = 0x80
	descE = 0x40
	descT = 0x20
)

// maxPacketSize bounds the RTP packets Hush sends (header and payload),
// to stay under the path MTU with SRTP's tag and the IP and UDP headers.
const maxPacketSize = 1200

// rtpHeaderLen is the length of the headers Hush sends: no CSRC, no
// extension.
const rtpHeaderLen = 12

// maxFragment is the most ciphertext bytes in one packet.
const maxFragment = maxPacketSize - rtpHeaderLen - 1

// packetizer splits SFrame ciphertexts into RTP packets of one stream.
// The SSRC and payload type are set by the track on sending.
type packetizer struct {
	seq uint16
}

// packetize returns the packets of one frame. Their payloads share one
// buffer.
func (p *packetizer) packetize(frame []byte, timestamp uint32, marker bool) []*rtp.Packet {
	n := (len(frame) + maxFragment - 1) / maxFragment
	if n == 0 {
		n = 1
	}
	buf := make([]byte, 0, len(frame)+n)
	pkts := make([]*rtp.Packet, n)
	for i := range n {
		frag := frame[min(i*maxFragment, len(frame)):min((i+1)*maxFragment, len(frame))]
		var d byte
		if i == 0 {
			d |= descS
		}
		if i == n-1 {
			d |= descE
		}
		start := len(buf)
		buf = append(buf, d)
		buf = append(buf, frag...)
		pkts[i] = &rtp.Packet{
			Header: rtp.Header{
				Version:        2,
				Marker:         marker && i == n-1,
				SequenceNumber: p.seq,
				Timestamp:      timestamp,
			},
			Payload: buf[start:len(buf):len(buf)],
		}
		p.seq++
	}
	return pkts
}

// defaultMaxDelay is how long a depacketizer holds complete frames behind
// a missing packet, waiting for its retransmission, before it gives up
// on the incomplete frame.
const defaultMaxDelay = 200 * time.Millisecond

// maxHeld bounds the packets a depacketizer holds.
const maxHeld = 2048

// encodedFrame is one reassembled SFrame ciphertext.
type encodedFrame struct {
	data      []byte
	timestamp uint32
}

// depacketizer reassembles SFrame ciphertexts from the RTP packets of one
// stream (draft-ietf-avtcore-rtp-sframe-02 §5.2) and hands them out in
// sequence order. Duplicates are dropped. A frame with a missing packet
// holds back the frames after it for at most maxDelay, then is skipped;
// so is a frame whose packets disagree on T or the payload type, or that
// T marks as packetized content, which Hush never sends.
type depacketizer struct {
	maxDelay time.Duration

	started bool
	next    uint64 // extended sequence number where the next frame starts
	highest uint64 // highest extended sequence number seen
	held    map[uint64]heldPacket
	blocked time.Time // when the head of the queue was first found stuck; zero if it is not
}

type heldPacket struct {
	desc        byte
	payloadType uint8
	timestamp   uint32
	data        []byte // the fragment, without the descriptor
}

func newDepacketizer(maxDelay time.Duration) *depacketizer {
	return &depacketizer{maxDelay: maxDelay, held: make(map[uint64]heldPacket)}
}

// push adds a packet received at now and appends to out every frame it
// completes, in order.
func (d *depacketizer) push(out []encodedFrame, p *rtp.Packet, now time.Time) []encodedFrame {
	if len(p.Payload) == 0 {
		return out
	}
	desc := p.Payload[0]
	if !d.started {
		if desc&descS == 0 {
			return out // joined mid-frame: wait for a frame's start
		}
		d.started = true
		d.next = 1<<32 | uint64(p.SequenceNumber) // room below for unwrapping
		d.highest = d.next
	}
	ext := d.highest + uint64(int64(int16(p.SequenceNumber-uint16(d.highest))))
	if ext < d.next {
		return out // late: its frame was emitted or skipped
	}
	if _, dup := d.held[ext]; dup {
		return out
	}
	d.held[ext] = heldPacket{desc: desc, payloadType: p.PayloadType, timestamp: p.Timestamp, data: append([]byte(nil), p.Payload[1:]...)}
	d.highest = max(d.highest, ext)
	return d.drain(out, now)
}

// drain emits the frames complete at the head of the queue, skipping a
// stuck head once it has waited maxDelay or the queue is full.
func (d *depacketizer) drain(out []encodedFrame, now time.Time) []encodedFrame {
	for len(d.held) > 0 {
		end, state := d.head()
		switch state {
		case frameComplete:
			out = d.emit(out, end)
			d.blocked = time.Time{}
			continue
		case frameBroken:
			d.skip()
			continue
		}
		// The head frame waits for a packet.
		if d.blocked.IsZero() {
			d.blocked = now
		}
		if now.Sub(d.blocked) < d.maxDelay && len(d.held) < maxHeld {
			break
		}
		d.skip()
		d.blocked = time.Time{}
	}
	return out
}

type frameState int

const (
	frameIncomplete frameState = iota
	frameComplete
	frameBroken
)

// head reports on the frame that starts at d.next and, when complete,
// returns the extended sequence number of its last packet.
func (d *depacketizer) head() (uint64, frameState) {
	first, ok := d.held[d.next]
	if !ok {
		return 0, frameIncomplete
	}
	if first.desc&descS == 0 || first.desc&descT != 0 {
		return 0, frameBroken
	}
	for s := d.next; s <= d.highest; s++ {
		h, ok := d.held[s]
		if !ok {
			return 0, frameIncomplete
		}
		if h.desc&descT != 0 || h.payloadType != first.payloadType || (s > d.next && h.desc&descS != 0) {
			return 0, frameBroken
		}
		if h.desc&descE != 0 {
			return s, frameComplete
		}
	}
	return 0, frameIncomplete
}

// emit appends the frame from d.next to end and drops its packets.
func (d *depacketizer) emit(out []encodedFrame, end uint64) []encodedFrame {
	n := 0
	for s := d.next; s <= end; s++ {
		n += len(d.held[s].data)
	}
	f := encodedFrame{data: make([]byte, 0, n), timestamp: d.held[d.next].timestamp}
	for s := d.next; s <= end; s++ {
		f.data = append(f.data, d.held[s].data...)
		delete(d.held, s)
	}
	d.next = end + 1
	return append(out, f)
}

// skip drops the head frame: everything before the next packet held
// that starts a frame, or everything held if none does. It costs a pass
// over what is held, however far sequence numbers jump.
func (d *depacketizer) skip() {
	next := d.highest + 1
	for s, h := range d.held {
		if s > d.next && s < next && h.desc&descS != 0 {
			next = s
		}
	}
	for s := range d.held {
		if s < next {
			delete(d.held, s)
		}
	}
	d.next = next
}
