package call

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hush-chat/hush/client"
	"github.com/hush-chat/hush/proto"
)

// SessionOptions configure [Start].
type SessionOptions struct {
	// CallID joins that call. Empty joins the conversation's current call
	// if there is one (Start syncs first to learn of it), or starts a new
	// one, inviting the other members.
	CallID string

	// OnRemote, LoopbackOnly, ICEServers, MaxDelay and Logger are as in
	// [Config].
	OnRemote     func(r *Remote)
	LoopbackOnly bool
	ICEServers   []proto.ICEServer
	MaxDelay     time.Duration
	Logger       *slog.Logger

	// RingAgainAfter: a device joining a call whose invite is older than
	// this, and finding nobody else's stream in it, invites the members
	// again (see [Session.Rang]); 0 selects client.RingAgainAfter.
	RingAgainAfter time.Duration

	// RejoinFor is how long the session tries to join the call again
	// after losing it (the push connection dropped, the PeerConnection
	// failed, or the SFU ended our part for a reason [Retryable] says a
	// new join may cure) before it gives up and ends; 0 selects
	// DefaultRejoinFor, a negative value never rejoins.
	RejoinFor time.Duration
	// OnReconnecting, if set, is called when the session lost the call
	// and starts to rejoin it, with the reason; OnReconnected once media
	// flows again. Neither must block.
	OnReconnecting func(reason string)
	OnReconnected  func()
}

// DefaultRejoinFor is SessionOptions.RejoinFor when it is 0.
const DefaultRejoinFor = 30 * time.Second

// A Session is this device in a conversation's call, wired to the
// client core: the call signalling goes to the members as MLS messages
// (client.CallSignal), the SFU's frames come and go over the client's
// push connection (so [client.Client.Run] must be running), and the keys
// follow the group: after every commit the client merges, the session
// moves its keys to the new epoch (or, removed from the group, keeps the
// old ones, which decrypt nothing sent after the commit).
type Session struct {
	*Call
	cl      *client.Client
	conv    string
	groupID []byte
	keys    *Keys
	log     *slog.Logger

	// Started reports whether this device started the call (an invite)
	// rather than joined one.
	Started bool

	frames  chan *proto.Call
	lost    chan lost
	opts    SessionOptions
	connMu  sync.Mutex
	moved   client.PushConn // the connection to the node hosting the room, once the call moved there
	stops   []func()
	removed atomic.Bool
	rang    atomic.Bool
	old     bool       // joined a call whose invite is older than RingAgainAfter
	ringMu  sync.Mutex // orders ring's invite and a rejoin's join before Leave's leave
	closed  chan struct{}
	once    sync.Once
	wg      sync.WaitGroup
}

// frameQueue bounds the SFU frames waiting for the session; the SFU
// sends one offer at a time and waits for its answer, so few ever wait.
const frameQueue = 64

// Start places or joins the call of conversation conv: it tells the
// members (invite or join), joins the SFU's room, and answers its offers.
// Media flows once [Call.Connected] is closed.
func Start(ctx context.Context, cl *client.Client, conv string, o SessionOptions) (*Session, error) {
	groupID, err := client.GroupID(conv)
	if err != nil {
		return nil, err
	}
	g, err := cl.MLSGroup(ctx, conv)
	if err != nil {
		return nil, err
	}
	keys, err := NewKeys(g)
	g.Wipe()
	if err != nil {
		return nil, err
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if o.RejoinFor == 0 {
		o.RejoinFor = DefaultRejoinFor
	}
	s := &Session{cl: cl, conv: conv, groupID: groupID, keys: keys, log: log, opts: o,
		frames: make(chan *proto.Call, frameQueue), lost: make(chan lost, 1), closed: make(chan struct{})}
	callID := o.CallID
	if callID == "" {
		// Join the conversation's call if one is going on, or start one;
		// two members calling at once end up in one call.
		if callID, s.Started, err = cl.StartCall(ctx, conv); err != nil {
			keys.Close()
			return nil, fmt.Errorf("call: signal the members: %w", err)
		}
	} else if err := cl.SendCallSignal(ctx, conv, callID, client.CallJoin); err != nil {
		keys.Close()
		return nil, fmt.Errorf("call: signal the members: %w", err)
	}
	s.old = !s.Started && cl.RingIfEmpty(ctx, conv, callID, o.RingAgainAfter)
	s.stops = append(s.stops,
		cl.OnCallFrame(func(f *proto.Call) {
			if !bytes.Equal(f.GroupID, groupID) || f.CallID != callID {
				return
			}
			select {
			case s.frames <- f:
			default:
				s.log.Warn("call: SFU frame dropped: queue full")
			}
		}),
		cl.OnEpoch(func(c string) {
			if c == conv {
				s.rekey()
			}
		}),
		// A new push connection means the old one closed, and the SFU
		// let us out of the room with it.
		cl.OnConnect(func() { s.lose("the connection to the server dropped", true) }),
	)
	s.Call, err = Join(ctx, Config{
		GroupID: groupID, CallID: callID, Keys: keys,
		Signal:   s.signal,
		OnRemote: o.OnRemote, ICEServers: o.ICEServers, LoopbackOnly: o.LoopbackOnly,
		MaxDelay: o.MaxDelay, Logger: log,
		lost: func(reason string) { s.lose(reason, false) },
	})
	if err != nil {
		s.stop()
		keys.Close()
		_ = cl.SendCallSignal(context.WithoutCancel(ctx), conv, callID, client.CallLeave)
		return nil, err
	}
	// A commit merged between NewKeys and OnEpoch would go unseen.
	s.rekey()
	s.wg.Go(s.handleFrames)
	return s, nil
}

// lost is the session losing the call: why, and whether to rejoin at
// once (the push connection is back) rather than after the backoff.
type lost struct {
	reason string
	now    bool
}

// lose tells handleFrames that the call was lost. Without rejoining, the
// call ends.
func (s *Session) lose(reason string, now bool) {
	if s.opts.RejoinFor < 0 {
		s.end(reason)
		return
	}
	select {
	case s.lost <- lost{reason, now}:
	default:
		// One is pending already; its rejoin serves this one too.
	}
}

// Rejoin backoff: the first retry after a failed attempt, and the most.
const (
	rejoinFirst = 250 * time.Millisecond
	rejoinMax   = 4 * time.Second
	// rejoinWait is how long an attempt whose join was sent waits for
	// its PeerConnection to connect before trying again.
	rejoinWait = 10 * time.Second
)

// handleFrames passes the SFU's frames to the call, in order, and rejoins
// the call when it is lost: on this goroutine, so that no offer of the
// old PeerConnection is answered on the new one.
func (s *Session) handleFrames() {
	offered := false
	var (
		rejoining bool
		reason    string           // why the call was lost
		giveUp    time.Time        // end of the rejoin
		backoff   time.Duration    // before the next attempt
		up        <-chan struct{}  // the attempt's PeerConnection connected
		retry     <-chan time.Time // the next attempt
	)
	attempt := func() {
		if s.removed.Load() {
			s.end("removed from the group")
			return
		}
		left := time.Until(giveUp)
		if left <= 0 {
			s.end("could not reconnect: " + reason)
			return
		}
		wait := backoff
		if up = s.rejoin(); up != nil {
			wait = rejoinWait
		} else {
			backoff = min(2*backoff, rejoinMax)
		}
		retry = time.After(min(wait, left))
	}
	for {
		select {
		case <-s.closed:
			return
		case <-s.Done():
			return
		case l := <-s.lost:
			if !rejoining {
				rejoining, giveUp, backoff = true, time.Now().Add(s.opts.RejoinFor), rejoinFirst
				s.log.Info("call: lost; rejoining", "reason", l.reason)
				if fn := s.opts.OnReconnecting; fn != nil {
					fn(l.reason)
				}
				l.now = true
			}
			reason = l.reason
			if l.now {
				attempt()
			} else {
				// The attempt under way failed.
				retry = time.After(min(backoff, max(time.Until(giveUp), 0)))
				backoff = min(2*backoff, rejoinMax)
			}
		case <-retry:
			attempt()
		case <-up:
			rejoining, up, retry = false, nil, nil
			s.log.Info("call: rejoined")
			if fn := s.opts.OnReconnected; fn != nil {
				fn()
			}
		case f := <-s.frames:
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			var err error
			if f.Op == proto.CallMoved {
				err = s.move(ctx, f.URL)
			} else {
				err = s.Handle(ctx, f)
				if err == nil && f.Op == proto.CallOffer && !offered {
					offered = true
					if s.old && alone(f.SDP) {
						s.rang.Store(true)
						s.wg.Go(s.ring)
					}
				}
			}
			if err != nil && !errors.Is(err, ErrEnded) {
				s.log.Warn("call: SFU frame", "op", f.Op, "err", err)
			}
			cancel()
		}
	}
}

// rejoin makes one attempt to join the call again with a fresh
// PeerConnection: it drops the old one and the frames queued for it,
// leaves the SFU's room (the SFU may still hold us in it, and refuses a
// second join on one connection) and joins it. The members are not told:
// the device never left the call. It returns the channel closed once the
// new PeerConnection connects, or nil if the join did not go out.
func (s *Session) rejoin() <-chan struct{} {
	s.ringMu.Lock()
	defer s.ringMu.Unlock()
	select {
	case <-s.closed:
		return nil
	default:
	}
	if s.ended() {
		return nil
	}
	up := s.reset()
	for drained := false; !drained; {
		select {
		case <-s.frames:
		default:
			drained = true
		}
	}
	// A call that moved joins through the push connection again: the
	// room may have moved back, or its node be gone.
	s.connMu.Lock()
	if s.moved != nil {
		s.moved.Close()
		s.moved = nil
	}
	s.connMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = s.signal(ctx, s.frame(proto.CallLeave))
	if err := s.signal(ctx, s.frame(proto.CallJoin)); err != nil {
		s.log.Info("call: rejoin", "err", err)
		return nil
	}
	return up
}

// alone reports whether an SFU offer carries no other participant's
// stream: the SFU offers each published track as a sendonly section, and
// its first offer to a joining device has every track published so far.
func alone(sdp string) bool {
	for line := range strings.SplitSeq(sdp, "\n") {
		if strings.TrimSpace(line) == "a=sendonly" {
			return false
		}
	}
	return true
}

// ring invites the members again to the call this device joined and
// found empty (and older than RingAgainAfter). A call stays current on
// the members' devices until its last device leaves, and a device that
// crashed or lost its connection never says it left, so a call can
// outlive everyone in it; joining it would then ring nobody. Inviting to
// the same call id makes it current again with this device alone in it,
// and the others' devices ring.
func (s *Session) ring() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Not after hanging up: Leave's leave must be the last word.
	s.ringMu.Lock()
	defer s.ringMu.Unlock()
	select {
	case <-s.closed:
		return
	default:
	}
	if err := s.cl.SendCallSignal(ctx, s.conv, s.cfg.CallID, client.CallInvite); err != nil {
		s.log.Warn("call: ring the members", "err", err)
	}
}

// Rang reports whether this device, having joined a call it found
// empty, invites the members to it again (decided when the SFU's first
// offer is handled; the invite goes out unless the call is left first).
func (s *Session) Rang() bool { return s.rang.Load() }

// signal sends a frame to the SFU hosting the call: through the client's
// push connection, or through the connection to the node the call moved
// to.
func (s *Session) signal(ctx context.Context, f *proto.Call) error {
	s.connMu.Lock()
	conn := s.moved
	s.connMu.Unlock()
	if conn != nil {
		return conn.Write(ctx, &proto.Frame{Type: proto.FrameCall, Call: f})
	}
	return s.cl.SendCallFrame(ctx, f)
}

// callPing keeps the connection to the room's node alive (the server
// closes connections idle for 90 seconds).
const callPing = 30 * time.Second

// move follows the server to the node hosting the room: it opens a
// connection there, authenticated as this device, and joins through it.
// A call moves at most once.
func (s *Session) move(ctx context.Context, url string) error {
	s.connMu.Lock()
	already := s.moved != nil
	s.connMu.Unlock()
	if already {
		s.end("the call's room moved again")
		return errors.New("call: the room moved twice")
	}
	conn, err := s.cl.DialCallServer(ctx, url)
	if err != nil {
		s.lose("cannot reach the node hosting the call", false)
		return fmt.Errorf("call: moved: %w", err)
	}
	s.connMu.Lock()
	s.moved = conn
	s.connMu.Unlock()
	s.wg.Go(func() { s.readMoved(conn) })
	return s.signal(ctx, s.frame(proto.CallJoin))
}

// readMoved reads the SFU's frames from the room's node until the
// connection or the session ends; a connection lost mid-call ends it.
func (s *Session) readMoved(conn client.PushConn) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		t := time.NewTicker(callPing)
		defer t.Stop()
		for {
			select {
			case <-s.closed:
				conn.Close()
				return
			case <-s.Done():
				return
			case <-ctx.Done():
				return
			case <-t.C:
				conn.Write(ctx, &proto.Frame{Type: proto.FramePing})
			}
		}
	}()
	for {
		f, err := conn.Read(ctx)
		if err != nil {
			s.connMu.Lock()
			current := s.moved == conn
			s.connMu.Unlock()
			if current {
				s.lose("lost the connection to the node hosting the call", false)
			}
			return
		}
		switch {
		case f.Type == proto.FrameCall && f.Call != nil && bytes.Equal(f.Call.GroupID, s.groupID) && f.Call.CallID == s.cfg.CallID:
			select {
			case s.frames <- f.Call:
			default:
				s.log.Warn("call: SFU frame dropped: queue full")
			}
		case f.Type == proto.FramePing:
			conn.Write(ctx, &proto.Frame{Type: proto.FramePong, ID: f.ID})
		case f.Type == proto.FrameError && f.Error != nil:
			s.log.Warn("call: the room's node refused a frame", "code", f.Error.Code, "message", f.Error.Message)
		}
	}
}

// rekey moves the keys to the group's current epoch.
func (s *Session) rekey() {
	g, err := s.cl.MLSGroup(context.Background(), s.conv)
	if err != nil {
		s.log.Warn("call: rekey: read the group", "err", err)
		return
	}
	defer g.Wipe()
	if err := s.keys.Update(g); errors.Is(err, ErrNotMember) {
		// Removed from the group: the old keys decrypt nothing sent
		// under the new epoch, and the SFU evicts us.
		s.removed.Store(true)
	} else if err != nil {
		s.log.Warn("call: rekey", "err", err)
	}
}

// Keys returns the session's keys (for their epoch).
func (s *Session) Keys() *Keys { return s.keys }

// Removed reports whether a commit removed this device from the
// conversation during the call.
func (s *Session) Removed() bool { return s.removed.Load() }

// ID returns the call's id.
func (s *Session) ID() string { return s.cfg.CallID }

func (s *Session) stop() {
	for _, f := range s.stops {
		f()
	}
}

// Leave hangs up: it leaves the SFU's room, tells the members, and erases
// the keys. It is safe to call more than once.
func (s *Session) Leave(ctx context.Context) error {
	var err error
	s.once.Do(func() {
		s.stop()
		s.ringMu.Lock()
		err = s.Call.Leave(ctx)
		close(s.closed)
		s.ringMu.Unlock()
		if errors.Is(err, client.ErrOffline) {
			err = nil // the connection is gone, and the SFU let us go with it
		}
		if serr := s.cl.SendCallSignal(ctx, s.conv, s.cfg.CallID, client.CallLeave); serr != nil && !errors.Is(serr, client.ErrInactive) {
			err = errors.Join(err, serr)
		}
		s.connMu.Lock()
		if s.moved != nil {
			s.moved.Close()
		}
		s.connMu.Unlock()
		s.wg.Wait()
		s.keys.Close()
	})
	return err
}
