package delivery

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hush-chat/hush/bus"
	"github.com/hush-chat/hush/proto"
	"github.com/hush-chat/hush/store"
)

// Window is how many unacknowledged messages a Feed pushes before it
// waits for an acknowledgement.
const Window = proto.MaxFetch

// typingQueue is how many typing signals wait for a slow connection
// before more are dropped (they are ephemeral).
const typingQueue = 16

// ErrRevoked is returned by Feed.Next once the device has been revoked.
var ErrRevoked = errors.New("delivery: device revoked")

// A Feed follows one device's pending messages for one push connection:
// Next returns what is pending and not yet returned, oldest first, and the
// channels say when to call it again. A Feed is used by one goroutine.
type Feed struct {
	s   *Service
	dev store.DeviceID

	wake    chan struct{} // something may be pending
	typing  chan proto.Typing
	revoked chan struct{}
	once    sync.Once
	acked   atomic.Bool // the device acknowledged something since the last Next
	unsub   func()
	ticker  *time.Ticker

	inbox   uint64            // highest inbox seq returned
	pushed  map[string]uint64 // highest seq returned, by group
	stalled bool              // Window messages are in flight
}

// Follow starts a Feed for dev. The first Next returns everything pending
// after the device's cursors. Close the Feed when the connection ends.
func (s *Service) Follow(ctx context.Context, dev store.DeviceID) (*Feed, error) {
	f := &Feed{
		s: s, dev: dev,
		wake:    make(chan struct{}, 1),
		typing:  make(chan proto.Typing, typingQueue),
		revoked: make(chan struct{}),
		pushed:  make(map[string]uint64),
	}
	f.wake <- struct{}{} // read at once
	// Subscribed before the first read, so nothing falls in between.
	unsub, err := s.bus.Subscribe(ctx, dev, func(bus.Event) { f.signal() })
	if err != nil {
		return nil, err
	}
	f.unsub = unsub
	f.ticker = time.NewTicker(s.poll)
	s.hub.add(f)
	return f, nil
}

func (f *Feed) signal() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

func (f *Feed) relayTyping(t proto.Typing) {
	select {
	case f.typing <- t:
	default: // the connection is behind: drop the signal
	}
}

func (f *Feed) revoke() { f.once.Do(func() { close(f.revoked) }) }

// Wake receives when Next may have something new.
func (f *Feed) Wake() <-chan struct{} { return f.wake }

// Poll receives every PollInterval; call Next with poll set then, in case
// a notification was lost.
func (f *Feed) Poll() <-chan time.Time { return f.ticker.C }

// Typing receives typing signals for the device.
func (f *Feed) Typing() <-chan proto.Typing { return f.typing }

// Revoked is closed when the device is revoked through this node.
func (f *Feed) Revoked() <-chan struct{} { return f.revoked }

// Acked tells the Feed that the device acknowledged messages.
func (f *Feed) Acked() {
	f.acked.Store(true)
	f.signal()
}

// Next returns the messages pending for the device that this Feed has not
// returned yet, or nothing while Window messages are unacknowledged. With
// poll set it reads the store even then, and checks that the device is
// still live (ErrRevoked if not), for revocations made through other
// nodes.
func (f *Feed) Next(ctx context.Context, poll bool) ([]proto.Envelope, error) {
	if poll {
		d, err := f.s.store.Device(ctx, f.dev)
		if err != nil {
			return nil, err
		}
		if d.Revoked {
			return nil, ErrRevoked
		}
	}
	if f.acked.Swap(false) || poll {
		f.stalled = false
	}
	if f.stalled {
		return nil, nil
	}
	p, err := f.s.store.Fetch(ctx, f.dev, Window)
	if err != nil {
		return nil, err
	}
	f.stalled = len(p.Direct)+len(p.Messages) >= Window
	var out []proto.Envelope
	for i := range p.Direct {
		if d := &p.Direct[i]; d.Seq > f.inbox {
			out = append(out, directEnvelope(d))
			f.inbox = d.Seq
		}
	}
	for i := range p.Messages {
		m := &p.Messages[i]
		if m.Seq > f.pushed[string(m.GroupID)] {
			out = append(out, messageEnvelope(m))
			f.pushed[string(m.GroupID)] = m.Seq
		}
	}
	f.s.m.Deliveries.WithLabelValues("push").Add(float64(len(out)))
	return out, nil
}

// Close ends the Feed's subscription.
func (f *Feed) Close() {
	f.s.hub.remove(f)
	f.unsub()
	f.ticker.Stop()
}
