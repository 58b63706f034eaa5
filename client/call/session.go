package call

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hush-chat/hush/client"
	"github.com/hush-chat/hush/proto"
)

// SessionOptions configure [Start].
type SessionOptions struct {
	// CallID joins that call. Empty joins the conversation's current call
	// if there is one (as far as the last sync knows), or starts a new
	// one, inviting the other members.
	CallID string

	// OnRemote, LoopbackOnly, ICEServers, MaxDelay and Logger are as in
	// [Config].
	OnRemote     func(r *Remote)
	LoopbackOnly bool
	ICEServers   []proto.ICEServer
	MaxDelay     time.Duration
	Logger       *slog.Logger
}

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
	stops   []func()
	removed atomic.Bool
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
	s := &Session{cl: cl, conv: conv, groupID: groupID, keys: keys, log: log,
		frames: make(chan *proto.Call, frameQueue), closed: make(chan struct{})}
	callID, op := o.CallID, client.CallJoin
	if callID == "" {
		cur, ok, err := cl.CurrentCall(ctx, conv)
		if err != nil {
			keys.Close()
			return nil, err
		}
		if ok {
			callID = cur.ID
		} else {
			callID, op, s.Started = client.NewCallID(), client.CallInvite, true
		}
	}
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
	)
	if err := cl.SendCallSignal(ctx, conv, callID, op); err != nil {
		s.stop()
		keys.Close()
		return nil, fmt.Errorf("call: signal the members: %w", err)
	}
	s.Call, err = Join(ctx, Config{
		GroupID: groupID, CallID: callID, Keys: keys,
		Signal:   cl.SendCallFrame,
		OnRemote: o.OnRemote, ICEServers: o.ICEServers, LoopbackOnly: o.LoopbackOnly,
		MaxDelay: o.MaxDelay, Logger: log,
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

// handleFrames passes the SFU's frames to the call, in order.
func (s *Session) handleFrames() {
	for {
		select {
		case <-s.closed:
			return
		case <-s.Done():
			return
		case f := <-s.frames:
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			if err := s.Handle(ctx, f); err != nil && !errors.Is(err, ErrEnded) {
				s.log.Warn("call: SFU frame", "op", f.Op, "err", err)
			}
			cancel()
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
		close(s.closed)
		err = s.Call.Leave(ctx)
		if errors.Is(err, client.ErrOffline) {
			err = nil // the connection is gone, and the SFU let us go with it
		}
		if serr := s.cl.SendCallSignal(ctx, s.conv, s.cfg.CallID, client.CallLeave); serr != nil && !errors.Is(serr, client.ErrInactive) {
			err = errors.Join(err, serr)
		}
		s.wg.Wait()
		s.keys.Close()
	})
	return err
}
