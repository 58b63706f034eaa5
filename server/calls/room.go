package calls

import (
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
	pc, err := r.sfu.api.NewPeerConnection(webrtc.Configuration{BundlePolicy: webrtc.BundlePolicyMaxBundle})
	if err != nil {
		return nil, err
	}
	for _, kind := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeAudio, webrtc.RTPCodecTypeVideo} {
		if _, err := pc.AddTransceiverFromKind(kind, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			pc.Close()
			return nil, err
		}
	}
	p := &peer{room: r, session: se, device: se.device, pc: pc}
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
			f.subscribers.Store(int32(len(f.senders)))
			kept = append(kept, f)
			continue
		}
		for q, s := range f.senders {
			if err := q.pc.RemoveTrack(s); err == nil {
				changed = append(changed, q)
			}
		}
		clear(f.senders)
		f.subscribers.Store(0)
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
	local, err := webrtc.NewTrackLocalStaticRTP(codec, t.Kind().String(), p.device)
	if err != nil {
		r.sfu.log.Warn("calls: new track", "device", p.device, "err", err)
		return nil, nil
	}
	f := &forwarder{room: r, from: p, remote: t, local: local, kind: t.Kind(), senders: make(map[*peer]*webrtc.RTPSender)}

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

// A forwarder copies one published track to every other device in the
// room. Its TrackLocalStaticRTP has one binding per subscriber, and
// rewrites each packet's SSRC and payload type for it; sequence numbers,
// timestamps and payloads pass unchanged.
type forwarder struct {
	room   *room
	from   *peer
	remote *webrtc.TrackRemote
	local  *webrtc.TrackLocalStaticRTP
	kind   webrtc.RTPCodecType

	senders     map[*peer]*webrtc.RTPSender // guarded by room.mu
	subscribers atomic.Int32                // len(senders)
	lastPLI     atomic.Int64                // unix nanoseconds
}

// subscribeLocked adds f's track to q's PeerConnection. room.mu is held;
// the caller renegotiates with q afterwards.
func (f *forwarder) subscribeLocked(q *peer) error {
	s, err := q.pc.AddTransceiverFromTrack(f.local, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
	if err != nil {
		return err
	}
	f.senders[q] = s.Sender()
	f.subscribers.Store(int32(len(f.senders)))
	go f.readRTCP(s.Sender())
	return nil
}

// run forwards the track's packets until the publisher's PeerConnection
// closes. The payloads are SFrame ciphertext, which the SFU cannot read.
func (f *forwarder) run() {
	hook := f.room.sfu.opts.TestHookForward
	stats := &f.room.sfu.stats
	buf := make([]byte, receiveMTU)
	var pkt rtp.Packet
	for {
		n, _, err := f.remote.Read(buf)
		if err != nil {
			return
		}
		if pkt.Unmarshal(buf[:n]) != nil {
			continue
		}
		stats.packetsIn.Add(1)
		if hook != nil {
			hook(Forwarded{GroupID: []byte(f.room.key.group), CallID: f.room.key.call, From: f.from.device, Kind: f.kind, Payload: pkt.Payload})
		}
		// A write fails only for subscribers that are going away.
		_ = f.local.WriteRTP(&pkt)
		stats.packetsOut.Add(uint64(f.subscribers.Load()))
	}
}

// readRTCP reads a subscriber's RTCP for f's track, which also lets the
// NACK responder see retransmission requests, and passes keyframe
// requests on to the publisher.
func (f *forwarder) readRTCP(s *webrtc.RTPSender) {
	for {
		pkts, _, err := s.ReadRTCP()
		if err != nil {
			return
		}
		for _, pk := range pkts {
			switch pk.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				f.requestKeyframe()
			}
		}
	}
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
