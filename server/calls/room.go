package calls

import (
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/hush-chat/hush/internal/rtc"
	"github.com/hush-chat/hush/proto"
)

// keyframeInterval is the least time between two keyframe requests the
// SFU sends a publisher for one track, however many subscribers ask.
const keyframeInterval = 500 * time.Millisecond

// receiveMTU bounds the RTP packets the SFU reads.
const receiveMTU = 1500

// A room is one call: the devices in it and the tracks they publish.
//
// Lock order: room.mu, then a peer's PeerConnection's own locks. A peer's
// sigMu is never taken with room.mu held.
type room struct {
	sfu *SFU
	key roomKey

	mu         sync.Mutex
	members    map[string]*peer // by device
	forwarders []*forwarder
	closed     bool // the room emptied and left sfu.rooms
}

func newRoom(s *SFU, k roomKey) *room {
	return &room{sfu: s, key: k, members: make(map[string]*peer)}
}

func (r *room) devices() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.members))
	for d := range r.members {
		out = append(out, d)
	}
	return out
}

func (r *room) peers() []*peer {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*peer, 0, len(r.members))
	for _, p := range r.members {
		out = append(out, p)
	}
	return out
}

func (r *room) peer(device string) *peer {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.members[device]
}

// join adds the session's device to the room with a new PeerConnection
// that receives its audio and video and sends it every track already
// published. A device already in the room from another connection is
// replaced. It returns errRoomClosed if the room emptied meanwhile.
func (r *room) join(se *Session) (*peer, error) {
	pc, in, err := r.sfu.newPeerConnection()
	if err != nil {
		return nil, err
	}
	for _, kind := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeAudio, webrtc.RTPCodecTypeVideo} {
		if _, err := pc.AddTransceiverFromKind(kind, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			pc.Close()
			return nil, err
		}
	}
	p := &peer{room: r, session: se, device: se.device, pc: pc, inboxes: in}
	pc.OnTrack(p.onTrack)
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateFailed {
			go p.end("connection failed")
		}
	})

	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		pc.Close()
		return nil, errRoomClosed
	}
	old := r.members[se.device]
	if old == nil && len(r.members) >= r.sfu.opts.MaxParticipants {
		r.mu.Unlock()
		pc.Close()
		return nil, &proto.Error{Code: proto.CodeCallFull, Message: "the call is full"}
	}
	var changed []*peer
	if old != nil {
		changed = r.removeLocked(old)
	}
	r.members[se.device] = p
	var video []*forwarder
	for _, f := range r.forwarders {
		if err := f.subscribeLocked(p); err != nil {
			r.sfu.log.Warn("calls: subscribe", "device", p.device, "from", f.from.device, "err", err)
		}
		if f.kind == webrtc.RTPCodecTypeVideo {
			video = append(video, f)
		}
	}
	r.mu.Unlock()

	if old != nil {
		old.finish("joined from another connection")
		for _, q := range changed {
			if q != p {
				q.renegotiate()
			}
		}
	}
	// The newcomer needs a keyframe to start decoding each video stream.
	for _, f := range video {
		f.requestKeyframe()
	}
	return p, nil
}

// leave takes p out of the room and stops forwarding its tracks, then
// renegotiates with the devices that were receiving them.
func (r *room) leave(p *peer) {
	r.mu.Lock()
	if r.members[p.device] != p {
		r.mu.Unlock()
		return
	}
	changed := r.removeLocked(p)
	r.mu.Unlock()
	for _, q := range changed {
		q.renegotiate()
	}
}

// removeLocked takes p out of the room and returns the peers that lost a
// track. It closes the room when p was the last one. r.mu is held.
func (r *room) removeLocked(p *peer) []*peer {
	delete(r.members, p.device)
	var changed []*peer
	kept := r.forwarders[:0]
	for _, f := range r.forwarders {
		if f.from != p {
			delete(f.senders, p)
			kept = append(kept, f)
			continue
		}
		for q, s := range f.senders {
			if err := q.pc.RemoveTrack(s); err == nil {
				changed = append(changed, q)
			}
		}
		clear(f.senders)
	}
	clear(r.forwarders[len(kept):])
	r.forwarders = kept
	if len(r.members) == 0 {
		r.closed = true
		r.sfu.dropRoom(r)
	}
	return changed
}

// publish starts forwarding a track that p publishes to every other
// device in the room. It returns nil if the track is refused: p left, or
// already publishes a track of that kind.
func (r *room) publish(p *peer, t *webrtc.TrackRemote) (*forwarder, []*peer) {
	// The track fires before its first packet, when its codec is not yet
	// known; a call has one codec per kind.
	codec := rtc.Opus
	if t.Kind() == webrtc.RTPCodecTypeVideo {
		codec = rtc.VP8
	}
	f := &forwarder{
		room: r, from: p, remote: t, kind: t.Kind(), codec: codec,
		id: t.Kind().String(), streamID: p.device,
		senders: make(map[*peer]*webrtc.RTPSender),
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	if r.members[p.device] != p {
		return nil, nil
	}
	for _, g := range r.forwarders {
		if g.from == p && g.kind == f.kind {
			return nil, nil
		}
	}
	r.forwarders = append(r.forwarders, f)
	var changed []*peer
	for _, q := range r.members {
		if q == p {
			continue
		}
		if err := f.subscribeLocked(q); err != nil {
			r.sfu.log.Warn("calls: subscribe", "device", q.device, "from", p.device, "err", err)
			continue
		}
		changed = append(changed, q)
	}
	return f, changed
}

// historySize is how many of a track's latest packets the SFU keeps to
// answer retransmission requests (NACKs). A power of two that divides
// 65536, so that a sequence number maps to one slot.
const historySize = 512

// A forwarder copies one published track to every other device in the
// room. It is the webrtc.TrackLocal that each subscriber's RTPSender
// binds, with one binding per subscriber that has negotiated the track.
//
// The forwarding path (run, forward) parses each packet's header once,
// into a header it reuses, and hands pion the header and the payload as
// received for each binding, with only the SSRC and the payload type
// changed; sequence numbers, timestamps, header extensions and payloads
// pass unchanged. It takes no lock for the bindings (a copy-on-write
// slice) and allocates nothing.
//
// NACKs are answered here, from one history per track, instead of by
// pion's NACK responder, which would copy every packet once per
// subscriber: Bind gives pion the codec without plain "nack" feedback,
// which keeps the responder off these streams, while the SDP still offers
// "nack" so that subscribers ask.
type forwarder struct {
	room     *room
	from     *peer
	remote   *webrtc.TrackRemote
	kind     webrtc.RTPCodecType
	codec    webrtc.RTPCodecCapability
	id       string
	streamID string

	senders map[*peer]*webrtc.RTPSender // guarded by room.mu
	lastPLI atomic.Int64                // unix nanoseconds
	resent  atomic.Uint64               // packets sent again on a NACK

	bindMu   sync.Mutex                // serialises Bind and Unbind
	bindings atomic.Pointer[[]binding] // replaced, never changed in place

	hist history

	buf [receiveMTU]byte // pull's
	hdr rtp.Header       // forward's, reused for every packet
}

// A binding is one subscriber's RTPSender bound to a forwarder.
type binding struct {
	id   string // the TrackLocalContext's
	ssrc uint32
	pt   uint8
	w    webrtc.TrackLocalWriter
}

// ID, RID, StreamID, Kind, Bind and Unbind make a forwarder a
// webrtc.TrackLocal.
func (f *forwarder) ID() string                { return f.id }
func (f *forwarder) RID() string               { return "" }
func (f *forwarder) StreamID() string          { return f.streamID }
func (f *forwarder) Kind() webrtc.RTPCodecType { return f.kind }

// Bind adds a subscriber's binding once its RTPSender is negotiated. The
// codec it returns lacks plain "nack" feedback, so pion's NACK responder
// leaves the stream to the forwarder (see [forwarder]).
func (f *forwarder) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	var codec webrtc.RTPCodecParameters
	found := false
	for _, c := range ctx.CodecParameters() {
		if strings.EqualFold(c.MimeType, f.codec.MimeType) && c.ClockRate == f.codec.ClockRate {
			codec, found = c, true
			break
		}
	}
	if !found {
		return webrtc.RTPCodecParameters{}, webrtc.ErrUnsupportedCodec
	}
	var fb []webrtc.RTCPFeedback
	for _, x := range codec.RTCPFeedback {
		if x.Type != webrtc.TypeRTCPFBNACK || x.Parameter != "" {
			fb = append(fb, x)
		}
	}
	codec.RTCPFeedback = fb

	f.bindMu.Lock()
	defer f.bindMu.Unlock()
	var old []binding
	if p := f.bindings.Load(); p != nil {
		old = *p
	}
	bs := make([]binding, len(old), len(old)+1)
	copy(bs, old)
	bs = append(bs, binding{id: ctx.ID(), ssrc: uint32(ctx.SSRC()), pt: uint8(codec.PayloadType), w: ctx.WriteStream()})
	f.bindings.Store(&bs)
	return codec, nil
}

// Unbind removes a subscriber's binding when its RTPSender stops.
func (f *forwarder) Unbind(ctx webrtc.TrackLocalContext) error {
	f.bindMu.Lock()
	defer f.bindMu.Unlock()
	p := f.bindings.Load()
	if p == nil {
		return webrtc.ErrUnbindFailed
	}
	old := *p
	for i := range old {
		if old[i].id == ctx.ID() {
			bs := make([]binding, 0, len(old)-1)
			bs = append(bs, old[:i]...)
			bs = append(bs, old[i+1:]...)
			f.bindings.Store(&bs)
			return nil
		}
	}
	return webrtc.ErrUnbindFailed
}

// subscribeLocked adds f's track to q's PeerConnection. room.mu is held;
// the caller renegotiates with q afterwards.
func (f *forwarder) subscribeLocked(q *peer) error {
	s, err := q.pc.AddTransceiverFromTrack(f, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
	if err != nil {
		return err
	}
	f.senders[q] = s.Sender()
	go f.readRTCP(s.Sender())
	return nil
}

// pull reads the packet that the track's inbox is delivering, through the
// track's Read and so through pion's receive interceptors, and forwards
// it. The track's inbox calls it on the publisher's SRTP session's
// goroutine, one packet at a time. The payloads are SFrame ciphertext,
// which the SFU cannot read.
func (f *forwarder) pull() {
	n, _, err := f.remote.Read(f.buf[:])
	if err != nil {
		return
	}
	f.forward(f.buf[:n])
}

// forward sends one RTP packet from the publisher to every subscriber,
// and keeps it for retransmissions. Only pull calls it.
func (f *forwarder) forward(pkt []byte) {
	h := &f.hdr
	n, err := h.Unmarshal(pkt)
	if err != nil {
		return
	}
	payload := pkt[n:]
	s := f.room.sfu
	s.stats.packetsIn.Add(1)
	if hook := s.opts.TestHookForward; hook != nil {
		hook(Forwarded{GroupID: []byte(f.room.key.group), CallID: f.room.key.call, From: f.from.device, Kind: f.kind, Payload: payload})
	}
	f.hist.put(h.SequenceNumber, pkt)
	p := f.bindings.Load()
	if p == nil {
		return
	}
	for i := range *p {
		b := &(*p)[i]
		h.SSRC, h.PayloadType = b.ssrc, b.pt
		// A write fails only for subscribers that are going away.
		_, _ = b.w.WriteRTP(h, payload)
	}
	s.stats.packetsOut.Add(uint64(len(*p)))
}

// readRTCP reads a subscriber's RTCP for f's track: it answers NACKs from
// the track's history and passes keyframe requests on to the publisher.
func (f *forwarder) readRTCP(s *webrtc.RTPSender) {
	var r resender
	for {
		pkts, _, err := s.ReadRTCP()
		if err != nil {
			return
		}
		for _, pk := range pkts {
			switch pk := pk.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				f.requestKeyframe()
			case *rtcp.TransportLayerNack:
				f.resend(&r, pk)
			}
		}
	}
}

// maxResends is how many times the SFU sends one subscriber the same
// packet again. Receivers built on pion ask for a lost packet every
// 100 ms without limit unless told otherwise (rtc.MaxNacksPerPacket), and
// a browser's requests are not ours to bound; past a few copies the
// subscriber's link is saturated, and more copies only add to it.
const maxResends = rtc.MaxNacksPerPacket

// resendMemory is how long a resender remembers a packet it resent: far
// longer than a packet stays in the history, far shorter than sequence
// numbers take to wrap.
const resendMemory = 5 * time.Second

// A resender is one readRTCP loop's scratch space for retransmissions to
// one subscriber, and its count of what it resent.
type resender struct {
	buf   []byte
	hdr   rtp.Header
	sends [historySize]resendCount // by sequence number, as the history
}

// resendCount counts a packet's retransmissions to one subscriber.
type resendCount struct {
	seq   uint16
	n     uint8
	first int64 // unix nanoseconds of the first
}

// again reports whether the packet with sequence number seq may be sent
// again, and counts it.
func (r *resender) again(seq uint16, now int64) bool {
	s := &r.sends[seq%historySize]
	if s.n == 0 || s.seq != seq || now-s.first > int64(resendMemory) {
		*s = resendCount{seq: seq, first: now}
	}
	if s.n >= maxResends {
		return false
	}
	s.n++
	return true
}

// resend sends a subscriber again the packets it lost that the history
// still holds, each at most maxResends times.
func (f *forwarder) resend(r *resender, nack *rtcp.TransportLayerNack) {
	var b *binding
	if p := f.bindings.Load(); p != nil {
		for i := range *p {
			if (*p)[i].ssrc == nack.MediaSSRC {
				b = &(*p)[i]
				break
			}
		}
	}
	if b == nil {
		return
	}
	now := time.Now().UnixNano()
	for _, pair := range nack.Nacks {
		pair.Range(func(seq uint16) bool {
			var ok bool
			r.buf, ok = f.hist.get(seq, r.buf)
			if !ok || !r.again(seq, now) {
				return true
			}
			n, err := r.hdr.Unmarshal(r.buf)
			if err != nil {
				return true
			}
			r.hdr.SSRC, r.hdr.PayloadType = b.ssrc, b.pt
			if _, err := b.w.WriteRTP(&r.hdr, r.buf[n:]); err != nil {
				return false
			}
			f.resent.Add(1)
			f.room.sfu.stats.packetsResent.Add(1)
			return true
		})
	}
}

// A history holds a track's latest packets, as received, by sequence
// number. Each slot's buffer is reused once it has grown to its packets'
// size.
type history struct {
	mu    sync.Mutex
	slots [historySize]slot
}

type slot struct {
	seq  uint16
	full bool
	data []byte
}

func (h *history) put(seq uint16, pkt []byte) {
	h.mu.Lock()
	s := &h.slots[seq%historySize]
	s.seq, s.full = seq, true
	s.data = append(s.data[:0], pkt...)
	h.mu.Unlock()
}

// get appends the packet with sequence number seq to dst[:0], if the
// history holds it.
func (h *history) get(seq uint16, dst []byte) ([]byte, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := &h.slots[seq%historySize]
	if !s.full || s.seq != seq {
		return dst, false
	}
	return append(dst[:0], s.data...), true
}

// requestKeyframe sends the publisher a PLI for a video track, at most
// once per keyframeInterval.
func (f *forwarder) requestKeyframe() {
	if f.kind != webrtc.RTPCodecTypeVideo {
		return
	}
	now := time.Now().UnixNano()
	last := f.lastPLI.Load()
	if now-last < int64(keyframeInterval) || !f.lastPLI.CompareAndSwap(last, now) {
		return
	}
	_ = f.from.pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: uint32(f.remote.SSRC())}})
}
