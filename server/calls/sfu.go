package calls

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/pion/webrtc/v4"

	"github.com/hush-chat/hush/internal/rtc"
	"github.com/hush-chat/hush/proto"
)

// DefaultMaxParticipants is Options.MaxParticipants when it is 0.
const DefaultMaxParticipants = 16

// Options configure an [SFU]. The zero value is usable.
type Options struct {
	// Logger receives the SFU's logs, and pion's. Nil discards them.
	Logger *slog.Logger

	// MaxParticipants is the most devices a room holds; a join past it
	// fails with proto.CodeCallFull. 0 selects DefaultMaxParticipants.
	MaxParticipants int

	// LoopbackOnly restricts ICE to loopback addresses: tests, and every
	// participant on the server's machine. No STUN or TURN is needed.
	LoopbackOnly bool

	// PublicIPs are the SFU's public addresses when it sits behind 1:1 NAT
	// (a cloud VM's elastic IP): its host candidates carry them.
	PublicIPs []string

	// UDPPortMin and UDPPortMax bound the UDP ports of the SFU's media,
	// for a firewall to open. Zero leaves the choice to the system.
	UDPPortMin, UDPPortMax uint16

	// ICEServers are the STUN and TURN servers that devices should use,
	// sent with each device's first offer. A TURN server lets devices
	// behind restrictive NATs or firewalls reach the SFU over a relay.
	ICEServers []proto.ICEServer

	// Authorize, if set, is asked before a device joins a room; an error
	// refuses the join and is returned to the device. The server checks
	// that the device is on the group's roster.
	Authorize func(ctx context.Context, groupID []byte, device string) error

	// Place, if set, is asked where a room lives before a device joins
	// it (package server/cluster): local rooms are hosted here; a room
	// hosted by another node is joined through Remote, or, without one,
	// the device gets a CallMoved frame with that node's URL and does not
	// join here. An error refuses the join with CodeUnavailable.
	Place func(ctx context.Context, groupID []byte, callID string) (url string, local bool, err error)
	// Remote, if set, relays the signalling of a device joining a room
	// that Place says another node hosts: the device stays connected
	// here, the host runs the room, and the device's media goes straight
	// to the host. Nil keeps CallMoved.
	Remote Remote
	// Release, if set, is called (on a goroutine of its own) when a room
	// this node hosted closes.
	Release func(groupID []byte, callID string)

	// TestHookForward, for tests only, sees every RTP packet the SFU
	// forwards, before it is forwarded. It is called on the forwarding
	// path and must be quick; p and its payload are valid only during the
	// call.
	TestHookForward func(p Forwarded)
}

// Forwarded is one RTP packet as the SFU forwards it, for
// [Options.TestHookForward].
type Forwarded struct {
	GroupID []byte
	CallID  string
	From    string // the publishing device
	Kind    webrtc.RTPCodecType
	Payload []byte // the RTP payload: SFrame ciphertext (video: behind a VP8 payload descriptor)
}

// ErrClosed is returned for a join after [SFU.Close].
var ErrClosed = errors.New("calls: SFU closed")

// An SFU forwards the media of calls. It is safe for concurrent use.
type SFU struct {
	opts Options
	log  *slog.Logger
	rtc  rtc.Config // each peer's webrtc.API adds its BufferFactory

	stats counters

	mu     sync.Mutex
	rooms  map[roomKey]*room
	closed bool
}

// counters are the SFU's packet counts.
type counters struct {
	packetsIn, packetsOut, packetsResent atomic.Uint64
}

// Stats are an SFU's counters since it started.
type Stats struct {
	// PacketsIn counts the RTP packets received from publishers.
	PacketsIn uint64
	// PacketsOut counts the RTP packets forwarded: each packet received
	// once per subscriber.
	PacketsOut uint64
	// PacketsResent counts the RTP packets sent again to a subscriber
	// that reported them lost (a NACK); PacketsOut does not count them.
	PacketsResent uint64
}

// Stats returns the SFU's counters.
func (s *SFU) Stats() Stats {
	return Stats{PacketsIn: s.stats.packetsIn.Load(), PacketsOut: s.stats.packetsOut.Load(), PacketsResent: s.stats.packetsResent.Load()}
}

// roomKey identifies a room: a group id (as a string of its bytes) and a
// call id.
type roomKey struct{ group, call string }

// New returns an SFU.
func New(opts Options) (*SFU, error) {
	if opts.MaxParticipants == 0 {
		opts.MaxParticipants = DefaultMaxParticipants
	}
	if opts.MaxParticipants < 2 {
		return nil, fmt.Errorf("calls: MaxParticipants %d is below 2", opts.MaxParticipants)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg := rtc.Config{
		Logger:       log,
		LoopbackOnly: opts.LoopbackOnly,
		PublicIPs:    opts.PublicIPs,
		UDPPortMin:   opts.UDPPortMin,
		UDPPortMax:   opts.UDPPortMax,
	}
	// Each peer gets an API of its own (see newPeerConnection); this one
	// checks the configuration now rather than at the first join.
	if _, err := rtc.NewAPI(cfg); err != nil {
		return nil, fmt.Errorf("calls: %w", err)
	}
	return &SFU{opts: opts, log: log, rtc: cfg, rooms: make(map[roomKey]*room)}, nil
}

// newPeerConnection returns a PeerConnection for one device, and the
// inboxes that its SRTP session writes the packets it receives into. The
// webrtc.API is the peer's own, because pion's BufferFactory knows a
// stream only by its SSRC, which devices choose.
func (s *SFU) newPeerConnection() (*webrtc.PeerConnection, *inboxes, error) {
	in := newInboxes()
	cfg := s.rtc
	cfg.BufferFactory = in.buffer
	api, err := rtc.NewAPI(cfg)
	if err != nil {
		return nil, nil, err
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{BundlePolicy: webrtc.BundlePolicyMaxBundle})
	if err != nil {
		return nil, nil, err
	}
	return pc, in, nil
}

// Rooms returns the number of open rooms.
func (s *SFU) Rooms() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.rooms)
}

// Participants returns the devices in a room, in no particular order.
func (s *SFU) Participants(groupID []byte, callID string) []string {
	s.mu.Lock()
	r := s.rooms[roomKey{string(groupID), callID}]
	s.mu.Unlock()
	if r == nil {
		return nil
	}
	return r.devices()
}

// ParticipantCount returns the number of devices in all open rooms.
func (s *SFU) ParticipantCount() int {
	s.mu.Lock()
	rooms := make([]*room, 0, len(s.rooms))
	for _, r := range s.rooms {
		rooms = append(rooms, r)
	}
	s.mu.Unlock()
	n := 0
	for _, r := range rooms {
		n += len(r.devices())
	}
	return n
}

// EvictAbsent evicts, as [SFU.Evict] does, every device in a room of the
// group for which onRoster returns false. The server calls it when a
// commit replaces the group's roster.
func (s *SFU) EvictAbsent(groupID []byte, onRoster func(device string) bool) {
	s.mu.Lock()
	var rooms []*room
	for k, r := range s.rooms {
		if k.group == string(groupID) {
			rooms = append(rooms, r)
		}
	}
	s.mu.Unlock()
	for _, r := range rooms {
		for _, p := range r.peers() {
			if !onRoster(p.device) {
				p.end("removed from the group")
			}
		}
	}
}

// Groups returns the group ids of the open rooms, once each.
func (s *SFU) Groups() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := make(map[string]bool, len(s.rooms))
	var out [][]byte
	for k := range s.rooms {
		if !seen[k.group] {
			seen[k.group] = true
			out = append(out, []byte(k.group))
		}
	}
	return out
}

// Evict removes a device from every room of a group, telling it with a
// CallEnded frame. The server calls it when a commit takes the device off
// the group's roster, so that a removed member stops receiving the call's
// media at once (it could not decrypt media of the new epoch anyway).
func (s *SFU) Evict(groupID []byte, device string) {
	s.mu.Lock()
	var rooms []*room
	for k, r := range s.rooms {
		if k.group == string(groupID) {
			rooms = append(rooms, r)
		}
	}
	s.mu.Unlock()
	for _, r := range rooms {
		if p := r.peer(device); p != nil {
			p.end("removed from the group")
		}
	}
}

// Close ends every call. Joins fail afterwards.
func (s *SFU) Close() error {
	s.mu.Lock()
	s.closed = true
	rooms := make([]*room, 0, len(s.rooms))
	for _, r := range s.rooms {
		rooms = append(rooms, r)
	}
	s.mu.Unlock()
	for _, r := range rooms {
		for _, p := range r.peers() {
			p.end("server shutting down")
		}
	}
	return nil
}

// room returns the open room for k, making it if need be.
func (s *SFU) room(k roomKey) (*room, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	r := s.rooms[k]
	if r == nil {
		r = newRoom(s, k)
		s.rooms[k] = r
	}
	return r, nil
}

// dropRoom forgets r if it is still the open room for its key.
func (s *SFU) dropRoom(r *room) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rooms[r.key] == r {
		delete(s.rooms, r.key)
		if rel := s.opts.Release; rel != nil {
			k := r.key
			go func() {
				s.mu.Lock()
				again := s.rooms[k] != nil // a join reopened it meanwhile
				s.mu.Unlock()
				if !again {
					rel([]byte(k.group), k.call)
				}
			}()
		}
	}
}

// EndRoom ends a room's call for every device in it, telling each with a
// CallEnded frame: the server calls it when the room now belongs to
// another node.
func (s *SFU) EndRoom(groupID []byte, callID, reason string) {
	s.mu.Lock()
	r := s.rooms[roomKey{string(groupID), callID}]
	s.mu.Unlock()
	if r == nil {
		return
	}
	for _, p := range r.peers() {
		p.end(reason)
	}
}

// Session is one device's signalling with the SFU over one authenticated
// connection: the server makes one per WebSocket with [SFU.Connect],
// passes it every "call" frame, and closes it with the connection.
type Session struct {
	sfu     *SFU
	device  string
	send    func(*proto.Call)
	relayed bool // made by ConnectRelayed

	mu      sync.Mutex
	peers   map[roomKey]*peer
	remotes map[roomKey]*remoteSlot // rooms hosted elsewhere, through Options.Remote
	closed  bool
}

// Connect starts a Session for an authenticated device. send delivers a
// frame to that device's connection; the SFU calls it from its own
// goroutines, one frame at a time, and it must not block for long.
func (s *SFU) Connect(device string, send func(*proto.Call)) *Session {
	return &Session{sfu: s, device: device, send: send, peers: make(map[roomKey]*peer), remotes: make(map[roomKey]*remoteSlot)}
}

// ConnectRelayed is Connect for a device whose signalling another node
// relays here (package server/cluster, the host's side of
// Options.Remote): the other node authenticated the device. A join for a
// room this node does not host fails with ErrNotHosted, rather than being
// relayed on or answered with CallMoved.
func (s *SFU) ConnectRelayed(device string, send func(*proto.Call)) *Session {
	se := s.Connect(device, send)
	se.relayed = true
	return se
}

// Handle handles one "call" frame from the session's device. Its errors
// are *proto.Error values, for the server to send back in an error frame,
// or what Options.Authorize returned.
func (se *Session) Handle(ctx context.Context, c *proto.Call) error {
	if err := validate(c); err != nil {
		return err
	}
	k := roomKey{string(c.GroupID), c.CallID}
	switch c.Op {
	case proto.CallJoin:
		return se.join(ctx, k, c)
	case proto.CallAnswer:
		if r := se.remote(k); r != nil {
			return r.Handle(ctx, c)
		}
		p := se.peer(k)
		if p == nil {
			return &proto.Error{Code: proto.CodeNotFound, Message: "not in this call"}
		}
		return p.answer(c.SDP)
	case proto.CallLeave:
		if p := se.peer(k); p != nil {
			p.leave()
		}
		se.mu.Lock()
		slot := se.remotes[k]
		se.mu.Unlock()
		if slot != nil {
			se.dropRemote(k, slot)
		}
		return nil
	}
	return &proto.Error{Code: proto.CodeBadRequest, Message: "unknown call op"}
}

func validate(c *proto.Call) *proto.Error {
	switch {
	case len(c.GroupID) == 0 || len(c.GroupID) > proto.MaxGroupIDBytes:
		return &proto.Error{Code: proto.CodeBadRequest, Message: "call: bad group id"}
	case c.CallID == "" || len(c.CallID) > proto.MaxCallIDBytes:
		return &proto.Error{Code: proto.CodeBadRequest, Message: "call: bad call id"}
	case len(c.SDP) > proto.MaxSDPBytes:
		return &proto.Error{Code: proto.CodeTooLarge, Message: "call: SDP too large"}
	}
	return nil
}

func (se *Session) join(ctx context.Context, k roomKey, c *proto.Call) error {
	groupID := c.GroupID
	if auth := se.sfu.opts.Authorize; auth != nil {
		if err := auth(ctx, groupID, se.device); err != nil {
			return err
		}
	}
	se.mu.Lock()
	if se.closed {
		se.mu.Unlock()
		return &proto.Error{Code: proto.CodeUnavailable, Message: "connection closing"}
	}
	if se.peers[k] != nil || se.remotes[k] != nil {
		se.mu.Unlock()
		return &proto.Error{Code: proto.CodeConflict, Message: "already in this call"}
	}
	se.mu.Unlock()

	for attempt := 1; se.sfu.opts.Place != nil; attempt++ {
		url, local, err := se.sfu.opts.Place(ctx, groupID, k.call)
		if err != nil {
			return &proto.Error{Code: proto.CodeUnavailable, Message: "call: the room directory is unavailable"}
		}
		if local {
			break
		}
		switch {
		case se.relayed:
			return ErrNotHosted
		case se.sfu.opts.Remote == nil:
			se.send(&proto.Call{GroupID: groupID, CallID: k.call, Op: proto.CallMoved, URL: url})
			return nil
		}
		// The host may have given the room up since the directory
		// answered: ask again.
		if err := se.joinRemote(ctx, k, url, c); !errors.Is(err, ErrNotHosted) || attempt == placeAttempts {
			return err
		}
	}

	var p *peer
	for {
		r, err := se.sfu.room(k)
		if err != nil {
			return &proto.Error{Code: proto.CodeUnavailable, Message: err.Error()}
		}
		p, err = r.join(se)
		if errors.Is(err, errRoomClosed) {
			continue
		}
		if err != nil {
			return err
		}
		break
	}
	se.mu.Lock()
	if closed, relayed := se.closed, se.remotes[k] != nil; closed || relayed {
		se.mu.Unlock()
		p.leave()
		if !closed {
			return &proto.Error{Code: proto.CodeConflict, Message: "already in this call"}
		}
		return &proto.Error{Code: proto.CodeUnavailable, Message: "connection closing"}
	}
	se.peers[k] = p
	se.mu.Unlock()
	return p.negotiate()
}

func (se *Session) peer(k roomKey) *peer {
	se.mu.Lock()
	defer se.mu.Unlock()
	return se.peers[k]
}

// forget drops p from the session once it has left its room.
func (se *Session) forget(p *peer) {
	se.mu.Lock()
	defer se.mu.Unlock()
	if se.peers[p.room.key] == p {
		delete(se.peers, p.room.key)
	}
}

// Close leaves every room the session joined, here and, through
// Options.Remote, on other nodes.
func (se *Session) Close() {
	se.mu.Lock()
	se.closed = true
	peers := make([]*peer, 0, len(se.peers))
	for _, p := range se.peers {
		peers = append(peers, p)
	}
	slots := make([]*remoteSlot, 0, len(se.remotes))
	for k, slot := range se.remotes {
		slots = append(slots, slot)
		delete(se.remotes, k)
	}
	se.mu.Unlock()
	for _, p := range peers {
		p.leave()
	}
	for _, slot := range slots {
		slot.close()
	}
}
