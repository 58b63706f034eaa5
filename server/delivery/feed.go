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

	mu     sync.Mutex
	groups map[string]uint64 // groups announced since the last Next, with their last seq
	full   bool              // a full read is due: first read, direct mail, rescan

	inbox   uint64            // highest inbox seq returned
	pushed  map[string]uint64 // highest seq returned, by group
	stalled bool              // a full read found Window messages unacknowledged
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
		groups:  make(map[string]uint64),
		full:    true,
	}
	f.wake <- struct{}{} // read at once
	// Subscribed before the first read, so nothing falls in between.
	unsub, err := s.bus.Subscribe(ctx, dev, f.event)
	if err != nil {
		return nil, err
	}
	f.unsub = unsub
	f.ticker = time.NewTicker(s.poll)
	s.hub.add(f)
	return f, nil
}

// event records a notification: a group's log grew (read just that log
// past what was pushed), or anything else (read everything).
func (f *Feed) event(ev bus.Event) {
	f.mu.Lock()
	if ev.Kind == bus.KindGroup && len(ev.Group) > 0 {
		f.groups[string(ev.Group)] = max(f.groups[string(ev.Group)], ev.Seq)
	} else {
		f.full = true
	}
	f.mu.Unlock()
	f.signal()
}

// rescan asks for a full read.
func (f *Feed) rescan() { f.event(bus.Event{}) }

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
// returned yet, oldest first within each log.
//
// After a notification that a group's log grew, it reads that log past
// what it has returned (store.FetchGroup). Otherwise (first call, direct
// mail, rescans, polls) it reads everything pending (store.Fetch), which
// starts at the device's cursors: once that finds Window messages
// unacknowledged, such full reads wait for an acknowledgement or a poll.
// With poll set it also checks that the device is still live (ErrRevoked
// if not), for revocations made through other nodes.
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
	f.mu.Lock()
	groups, full := f.groups, f.full
	f.groups, f.full = make(map[string]uint64), false
	f.mu.Unlock()
	if f.acked.Swap(false) && f.stalled {
		f.stalled, full = false, true
	}
	if poll {
		f.stalled, full = false, true
	}
	if full && !f.stalled {
		return f.readAll(ctx)
	}
	var out []proto.Envelope
	for g, seq := range groups {
		if seq <= f.pushed[g] {
			continue // already returned by an earlier read
		}
		ms, err := f.s.store.FetchGroup(ctx, f.dev, store.GroupID(g), f.pushed[g], Window)
		if err != nil {
			return nil, err
		}
		for i := range ms {
			out = append(out, messageEnvelope(&ms[i]))
			f.pushed[g] = ms[i].Seq
		}
		if len(ms) == Window { // more to read
			f.event(bus.Event{Kind: bus.KindGroup, Group: store.GroupID(g), Seq: seq})
		}
	}
	f.s.m.Deliveries.WithLabelValues("push").Add(float64(len(out)))
	return out, nil
}

// readAll reads everything pending after the device's cursors and returns
// what was not returned before.
func (f *Feed) readAll(ctx context.Context) ([]proto.Envelope, error) {
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
