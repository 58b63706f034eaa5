package call

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/hush-chat/hush/internal/rtc"
	"github.com/hush-chat/hush/proto"
)

// Config configures a [Call].
type Config struct {
	// GroupID is the conversation's MLS group id, and CallID the call's id
	// within it: together they name the SFU's room.
	GroupID []byte
	CallID  string

	// Keys encrypt what we send and decrypt what others send. The caller
	// keeps them current with Keys.Update as the group's epoch moves.
	Keys *Keys

	// Signal sends a "call" frame to the server over the device's
	// authenticated connection.
	Signal func(ctx context.Context, c *proto.Call) error

	// OnRemote is called, on a goroutine of its own, for each stream that
	// another participant publishes. The stream ends (ReadFrame returns an
	// error) when the participant leaves.
	OnRemote func(r *Remote)

	// ICEServers are STUN and TURN servers to use besides those the server
	// sends with its first offer.
	ICEServers []proto.ICEServer

	// LoopbackOnly restricts ICE to loopback addresses (tests).
	LoopbackOnly bool

	// MaxDelay is how long a frame missing a packet may hold back the
	// frames after it; 0 selects 200 ms.
	MaxDelay time.Duration

	// Logger receives the call's logs, and pion's. Nil discards them.
	Logger *slog.Logger

	// lost, if set (by a Session), is told instead of ending the call when
	// the PeerConnection fails or the SFU ends our part in the call for a
	// reason that a new join may cure ([Retryable]).
	lost func(reason string)
}

// ErrEnded is returned by a Call's methods once the call has ended.
var ErrEnded = errors.New("call: ended")

// A Call is this device's side of a call: one PeerConnection to the SFU
// that publishes an audio and a video stream, encrypted frame by frame
// with SFrame, and receives every other participant's.
type Call struct {
	cfg   Config
	log   *slog.Logger
	api   *webrtc.API
	audio *Sender
	video *Sender

	sigMu     sync.Mutex // serialises offers; guards pc, published and up
	pc        *webrtc.PeerConnection
	published bool
	up        chan struct{} // closed once pc has connected

	connectedOnce sync.Once
	connected     chan struct{}
	endOnce       sync.Once
	done          chan struct{}
	reason        atomic.Pointer[string]
}

// Join asks the SFU to let this device into the call. Media flows once
// the caller has passed the SFU's offer to [Call.Handle] and ICE has
// connected ([Call.Connected]).
func Join(ctx context.Context, cfg Config) (*Call, error) {
	if cfg.Keys == nil || cfg.Signal == nil {
		return nil, errors.New("call: Config needs Keys and Signal")
	}
	if cfg.MaxDelay == 0 {
		cfg.MaxDelay = defaultMaxDelay
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	api, err := rtc.NewAPI(rtc.Config{Logger: log, LoopbackOnly: cfg.LoopbackOnly})
	if err != nil {
		return nil, fmt.Errorf("call: %w", err)
	}
	c := &Call{cfg: cfg, log: log, api: api, connected: make(chan struct{}), up: make(chan struct{}), done: make(chan struct{})}
	if c.audio, err = newSender(c, rtc.Opus, false); err != nil {
		return nil, err
	}
	if c.video, err = newSender(c, rtc.VP8, true); err != nil {
		return nil, err
	}
	if err := cfg.Signal(ctx, c.frame(proto.CallJoin)); err != nil {
		return nil, fmt.Errorf("call: join: %w", err)
	}
	return c, nil
}

func (c *Call) frame(op proto.CallOp) *proto.Call {
	return &proto.Call{GroupID: c.cfg.GroupID, CallID: c.cfg.CallID, Op: op}
}

// Handle handles a "call" frame from the server for this call: an offer,
// which it answers, or the end of the call.
func (c *Call) Handle(ctx context.Context, f *proto.Call) error {
	switch f.Op {
	case proto.CallOffer:
		err := c.answer(ctx, f)
		if err != nil && c.ended() {
			return ErrEnded // the call ended while answering
		}
		return err
	case proto.CallEnded:
		if c.cfg.lost != nil && Retryable(f.Reason) {
			c.cfg.lost("ended by the server: " + f.Reason)
			return nil
		}
		c.end("ended by the server: " + f.Reason)
		return nil
	}
	return fmt.Errorf("call: unexpected %q frame", f.Op)
}

func (c *Call) answer(ctx context.Context, f *proto.Call) error {
	c.sigMu.Lock()
	defer c.sigMu.Unlock()
	if c.ended() {
		return ErrEnded
	}
	if c.pc == nil {
		if err := c.newPeerConnection(f.ICEServers); err != nil {
			return err
		}
	}
	if err := c.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: f.SDP}); err != nil {
		return fmt.Errorf("call: offer: %w", err)
	}
	if !c.published {
		for _, s := range []*Sender{c.audio, c.video} {
			rs, err := c.pc.AddTrack(s.track)
			if err != nil {
				return fmt.Errorf("call: publish: %w", err)
			}
			go readRTCP(rs)
		}
		c.published = true
	}
	a, err := c.pc.CreateAnswer(nil)
	if err != nil {
		return fmt.Errorf("call: answer: %w", err)
	}
	gathered := webrtc.GatheringCompletePromise(c.pc)
	if err := c.pc.SetLocalDescription(a); err != nil {
		return fmt.Errorf("call: answer: %w", err)
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		return ctx.Err()
	}
	reply := c.frame(proto.CallAnswer)
	reply.SDP = c.pc.LocalDescription().SDP
	return c.cfg.Signal(ctx, reply)
}

// newPeerConnection makes the call's PeerConnection. c.sigMu is held.
func (c *Call) newPeerConnection(servers []proto.ICEServer) error {
	var ice []webrtc.ICEServer
	for _, s := range append(c.cfg.ICEServers, servers...) {
		ice = append(ice, webrtc.ICEServer{URLs: s.URLs, Username: s.Username, Credential: s.Credential})
	}
	pc, err := c.api.NewPeerConnection(webrtc.Configuration{ICEServers: ice, BundlePolicy: webrtc.BundlePolicyMaxBundle})
	if err != nil {
		return fmt.Errorf("call: %w", err)
	}
	up := c.up
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		switch s {
		case webrtc.PeerConnectionStateConnected:
			c.connectedOnce.Do(func() { close(c.connected) })
			c.sigMu.Lock()
			if c.pc == pc && c.up == up {
				select {
				case <-up:
				default:
					close(up)
				}
			}
			c.sigMu.Unlock()
		case webrtc.PeerConnectionStateFailed:
			go c.fail(pc)
		}
	})
	pc.OnTrack(func(t *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		if c.cfg.OnRemote != nil {
			c.cfg.OnRemote(newRemote(c, t))
		}
	})
	c.pc = pc
	return nil
}

// fail handles the failure of pc: nothing if it is no longer the call's
// PeerConnection, else the call ends or, in a Session, rejoins.
func (c *Call) fail(pc *webrtc.PeerConnection) {
	c.sigMu.Lock()
	stale := c.pc != pc
	c.sigMu.Unlock()
	switch {
	case stale:
	case c.cfg.lost != nil:
		c.cfg.lost("connection failed")
	default:
		c.end("connection failed")
	}
}

// reset closes the PeerConnection, if any, so that the next offer (the
// SFU's answer to a new join) makes a fresh one that publishes the same
// senders again. The remote streams of the old one end. It returns the
// channel closed once the new PeerConnection connects.
func (c *Call) reset() <-chan struct{} {
	c.sigMu.Lock()
	pc := c.pc
	c.pc, c.published, c.up = nil, false, make(chan struct{})
	up := c.up
	c.sigMu.Unlock()
	if pc != nil {
		if err := pc.Close(); err != nil {
			c.log.Debug("call: close", "err", err)
		}
	}
	return up
}

// Retryable reports whether the SFU's reason for ending this device's
// part in a call (an "ended" frame) is one that joining again may cure:
// the connection failed, the server node shut down or lost the room. The
// others (removed from the group, another connection of the device
// joined, and any reason this version does not know) are final.
func Retryable(reason string) bool {
	switch reason {
	case "connection failed",
		"server shutting down",
		"the call moved to another server node",
		"lost the server node hosting the call",
		"the call ended on the server node hosting it":
		return true
	}
	return false
}

// readRTCP drains a sender's RTCP, which lets the NACK responder answer
// retransmission requests. A keyframe request cannot be honoured by a
// publisher that plays a file, and is dropped.
func readRTCP(s *webrtc.RTPSender) {
	for {
		if _, _, err := s.ReadRTCP(); err != nil {
			return
		}
	}
}

// Audio returns the sender of our audio (Opus) stream.
func (c *Call) Audio() *Sender { return c.audio }

// Video returns the sender of our video (VP8) stream.
func (c *Call) Video() *Sender { return c.video }

// Connected is closed once the PeerConnection to the SFU has connected.
func (c *Call) Connected() <-chan struct{} { return c.connected }

// Done is closed when the call has ended; [Call.Reason] says why.
func (c *Call) Done() <-chan struct{} { return c.done }

// Reason says why the call ended, or "" while it goes on.
func (c *Call) Reason() string {
	if r := c.reason.Load(); r != nil {
		return *r
	}
	return ""
}

func (c *Call) ended() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// Leave ends the call and tells the SFU we left. An answer being sent
// goes out first, so the SFU never sees one after the leave.
func (c *Call) Leave(ctx context.Context) error {
	c.end("left")
	return c.cfg.Signal(ctx, c.frame(proto.CallLeave))
}

func (c *Call) end(reason string) {
	c.endOnce.Do(func() {
		c.reason.Store(&reason)
		close(c.done)
		c.sigMu.Lock()
		pc := c.pc
		c.sigMu.Unlock()
		if pc != nil {
			if err := pc.Close(); err != nil {
				c.log.Debug("call: close", "err", err)
			}
		}
	})
}

// A Sender sends one of our streams: it encrypts each frame with SFrame
// and packetizes the ciphertext in the codec's RTP payload format. It is
// safe for concurrent use.
type Sender struct {
	call  *Call
	track *webrtc.TrackLocalStaticRTP
	video bool

	mu   sync.Mutex
	pk   packetizer
	base uint32 // random RTP timestamp offset (RFC 3550 §5.1)
	buf  []byte
}

func newSender(c *Call, codec webrtc.RTPCodecCapability, video bool) (*Sender, error) {
	kind := "audio"
	if video {
		kind = "video"
	}
	t, err := webrtc.NewTrackLocalStaticRTP(codec, kind, "hush")
	if err != nil {
		return nil, fmt.Errorf("call: %w", err)
	}
	var r [6]byte
	if _, err := rand.Read(r[:]); err != nil {
		return nil, err
	}
	return &Sender{
		call:  c,
		track: t,
		video: video,
		pk:    packetizer{seq: binary.BigEndian.Uint16(r[:2])},
		base:  binary.BigEndian.Uint32(r[2:]),
	}, nil
}

// WriteFrame encrypts and sends one encoded frame (an Opus packet or a
// VP8 frame) with its timestamp in the codec's clock (48 kHz for Opus,
// 90 kHz for VP8), counted from the start of the stream. Frames written
// before the call connects are dropped, as a live source's would be.
func (s *Sender) WriteFrame(frame []byte, timestamp uint32) error {
	if s.call.ended() {
		return ErrEnded
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ct, err := s.call.cfg.Keys.encrypt(s.buf[:0], s.video, frame)
	if err != nil {
		return fmt.Errorf("call: encrypt: %w", err)
	}
	s.buf = ct
	for _, p := range s.pk.packetize(ct, s.base+timestamp, s.video) {
		if err := s.track.WriteRTP(p); err != nil {
			return fmt.Errorf("call: send: %w", err)
		}
	}
	return nil
}

// Frame is one decrypted media frame of a [Remote].
type Frame struct {
	Data []byte
	// Timestamp is the frame's RTP timestamp, in the codec's clock.
	Timestamp uint32
}

// RemoteStats count the frames of a [Remote].
type RemoteStats struct {
	// Frames counts the frames decrypted.
	Frames uint64
	// Undecryptable counts the frames that failed to decrypt: under a key
	// we do not hold (an epoch we are not in), forged, or replayed.
	Undecryptable uint64
}

// A Remote is another participant's audio or video stream.
type Remote struct {
	// Device is the publishing device's id, as the SFU names the stream.
	Device string
	// Kind is audio or video.
	Kind webrtc.RTPCodecType

	call  *Call
	track *webrtc.TrackRemote
	dp    *depacketizer
	queue []encodedFrame
	buf   []byte

	frames, undecryptable atomic.Uint64
}

func newRemote(c *Call, t *webrtc.TrackRemote) *Remote {
	return &Remote{Device: t.StreamID(), Kind: t.Kind(), call: c, track: t, dp: newDepacketizer(c.cfg.MaxDelay, t.Kind() == webrtc.RTPCodecTypeVideo), buf: make([]byte, 1500)}
}

// ReadFrame returns the stream's next frame that decrypts; frames that do
// not are counted in Stats and skipped. It returns an error when the
// stream ends. ReadFrame must not be called concurrently.
func (r *Remote) ReadFrame() (Frame, error) {
	var pkt rtp.Packet
	for {
		for len(r.queue) > 0 {
			f := r.queue[0]
			r.queue = r.queue[1:]
			pt, err := r.call.cfg.Keys.decrypt(nil, f.data)
			if err != nil {
				r.undecryptable.Add(1)
				continue
			}
			r.frames.Add(1)
			return Frame{Data: pt, Timestamp: f.timestamp}, nil
		}
		n, _, err := r.track.Read(r.buf)
		if err != nil {
			return Frame{}, err
		}
		if pkt.Unmarshal(r.buf[:n]) != nil {
			continue
		}
		r.queue = r.dp.push(r.queue[:0], &pkt, time.Now())
	}
}

// Stats returns the stream's counts so far.
func (r *Remote) Stats() RemoteStats {
	return RemoteStats{Frames: r.frames.Load(), Undecryptable: r.undecryptable.Load()}
}
