package call

import (
	"time"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
)

// Packetization, as browsers do it with WebRTC encoded transforms: the
// SFrame ciphertext of a whole frame is carried in the codec's own RTP
// payload format, with the codec's payload descriptor in the clear.
//
//   - Opus (RFC 7587): one frame per packet, the ciphertext is the whole
//     payload.
//   - VP8 (RFC 7741): the ciphertext is split into packets of at most
//     maxPacketSize bytes, each behind a one-byte VP8 payload descriptor
//     (S = 1 and PID = 0 on a frame's first packet), with the marker bit
//     on a frame's last packet; all packets of a frame share its RTP
//     timestamp.
//
// The receiver reassembles a video frame from consecutive sequence
// numbers: a packet with S = 1 and PID = 0 starts it, the packets that
// follow carry its timestamp, and the one with the marker bit ends it.

// maxPacketSize bounds the RTP packets Hush sends (header and payload),
// to stay under the path MTU with SRTP's tag and the IP and UDP headers.
// An audio frame is always one packet, whatever its size.
const maxPacketSize = 1200

// rtpHeaderLen is the length of the headers Hush sends: no CSRC, no
// extension.
const rtpHeaderLen = 12

// maxPayload is the most payload bytes (descriptor included) in one
// video packet.
const maxPayload = maxPacketSize - rtpHeaderLen

// packetizer splits SFrame ciphertexts into RTP packets of one stream.
// The SSRC and payload type are set by the track on sending.
type packetizer struct {
	seq uint16
	vp8 codecs.VP8Payloader
}

// packetize returns the packets of one frame: one for audio; for video,
// VP8 payloads with the marker bit on the last.
func (p *packetizer) packetize(frame []byte, timestamp uint32, video bool) []*rtp.Packet {
	var payloads [][]byte
	if video {
		payloads = p.vp8.Payload(maxPayload, frame)
	} else {
		payloads = [][]byte{frame}
	}
	pkts := make([]*rtp.Packet, len(payloads))
	for i, pl := range payloads {
		pkts[i] = &rtp.Packet{
			Header: rtp.Header{
				Version:        2,
				Marker:         video && i == len(payloads)-1,
				SequenceNumber: p.seq,
				Timestamp:      timestamp,
			},
			Payload: pl,
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
// stream and hands them out in sequence order. Duplicates are dropped. A
// frame with a missing packet holds back the frames after it for at most
// maxDelay, then is skipped; so is a video frame whose packets disagree
// on the timestamp or the payload type, or that another frame's start
// interrupts.
type depacketizer struct {
	maxDelay time.Duration
	video    bool

	started bool
	next    uint64 // extended sequence number where the next frame starts
	highest uint64 // highest extended sequence number seen
	held    map[uint64]heldPacket
	blocked time.Time // when the head of the queue was first found stuck; zero if it is not
}

type heldPacket struct {
	start, end  bool // the frame's first packet; its last
	payloadType uint8
	timestamp   uint32
	data        []byte // the fragment, without the codec's descriptor
}

func newDepacketizer(maxDelay time.Duration, video bool) *depacketizer {
	return &depacketizer{maxDelay: maxDelay, video: video, held: make(map[uint64]heldPacket)}
}

// push adds a packet received at now and appends to out every frame it
// completes, in order.
func (d *depacketizer) push(out []encodedFrame, p *rtp.Packet, now time.Time) []encodedFrame {
	h := heldPacket{start: true, end: true, payloadType: p.PayloadType, timestamp: p.Timestamp}
	data := p.Payload
	if d.video {
		var vp codecs.VP8Packet
		var err error
		if data, err = vp.Unmarshal(p.Payload); err != nil {
			return out // no VP8 payload descriptor
		}
		h.start = vp.S == 1 && vp.PID == 0
		h.end = p.Marker
	}
	if len(data) == 0 {
		return out
	}
	if !d.started {
		if !h.start {
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
	h.data = append([]byte(nil), data...)
	d.held[ext] = h
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
	if !first.start {
		return 0, frameBroken
	}
	for s := d.next; s <= d.highest; s++ {
		h, ok := d.held[s]
		if !ok {
			return 0, frameIncomplete
		}
		if h.payloadType != first.payloadType || h.timestamp != first.timestamp || (s > d.next && h.start) {
			return 0, frameBroken
		}
		if h.end {
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
		if s > d.next && s < next && h.start {
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
