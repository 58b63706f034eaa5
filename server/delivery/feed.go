package delivery

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"slices"
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

	mu      sync.Mutex
	groups  map[string]uint64  // groups announced since the last Next, with their last seq
	offers  map[string][]offer // messages handed over since the last Next, by group
	offered int                // len of all offers
	full    bool               // a full read is due: first read, direct mail, rescan

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
		offers:  make(map[string][]offer),
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

// offer is a message accepted by this node, encoded as its push frame.
type offer struct {
	seq   uint64
	frame []byte
}

// maxOffers bounds the offers kept for a Feed that is behind; past it they
// are dropped, and the store is read instead.
const maxOffers = 4 * Window

// offer hands the Feed a message of group with sequence number seq,
// encoded as its push frame. Its notification comes too.
func (f *Feed) offer(group store.GroupID, seq uint64, frame []byte) {
	f.mu.Lock()
	if f.offered < maxOffers {
		f.offers[string(group)] = append(f.offers[string(group)], offer{seq, frame})
		f.offered++
	}
	f.mu.Unlock()
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

// Next returns the message frames (encoded proto.Frame of type
// FrameMessage) pending for the device that this Feed has not returned
// yet, oldest first within each log.
//
// Messages accepted by this node are handed to its Feeds directly
// (offer) and returned without a store read when they follow what was
// returned before in their log. After a notification that a log grew
// past that, Next reads the log past what it returned (store.FetchGroup).
// Otherwise (first call, direct mail, rescans, polls) it reads everything
// pending (store.Fetch), which starts at the device's cursors: once that
// finds Window messages unacknowledged, such full reads wait for an
// acknowledgement or a poll. With poll set Next also checks that the
// device is still live (ErrRevoked if not), for revocations made through
// other nodes.
func (f *Feed) Next(ctx context.Context, poll bool) ([][]byte, error) {
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
	groups, offers, full := f.groups, f.offers, f.full
	f.groups, f.offers, f.full, f.offered = make(map[string]uint64), make(map[string][]offer), false, 0
	f.mu.Unlock()
	if f.acked.Swap(false) && f.stalled {
		f.stalled, full = false, true
	}
	if poll {
		f.stalled, full = false, true
	}
	var out [][]byte
	var err error
	if full && !f.stalled {
		out, err = f.readAll(ctx)
		if err != nil {
			return nil, err
		}
	}
	// Offered messages that continue what was returned need no read.
	for g, os := range offers {
		last, known := f.pushed[g]
		if !known {
			continue
		}
		slices.SortFunc(os, func(a, b offer) int { return cmp.Compare(a.seq, b.seq) })
		for _, o := range os {
			if o.seq == last+1 {
				out = append(out, o.frame)
				last = o.seq
			}
		}
		f.pushed[g] = last
	}
	for g, seq := range groups {
		if last, known := f.pushed[g]; known && seq <= last {
			continue // already returned
		}
		ms, err := f.s.store.FetchGroup(ctx, f.dev, store.GroupID(g), f.pushed[g], Window)
		if err != nil {
			return nil, err
		}
		for i := range ms {
			out = append(out, encodeMessage(&ms[i]))
			f.pushed[g] = ms[i].Seq
		}
		if len(ms) == Window { // more to read
			f.event(bus.Event{Kind: bus.KindGroup, Group: store.GroupID(g), Seq: seq})
		} else {
			// Everything up to seq that is pending has been read; the
			// rest is acknowledged, the device's own, or not for it.
			f.pushed[g] = max(f.pushed[g], seq)
		}
	}
	f.s.m.Deliveries.WithLabelValues("push").Add(float64(len(out)))
	return out, nil
}

// readAll reads everything pending after the device's cursors and returns
// what was not returned before.
func (f *Feed) readAll(ctx context.Context) ([][]byte, error) {
	p, err := f.s.store.Fetch(ctx, f.dev, Window)
	if err != nil {
		return nil, err
	}
	f.stalled = len(p.Direct)+len(p.Messages) >= Window
	var out [][]byte
	for i := range p.Direct {
		if d := &p.Direct[i]; d.Seq > f.inbox {
			env := directEnvelope(d)
			b, err := json.Marshal(proto.Frame{Type: proto.FrameMessage, Message: &env})
			if err != nil {
				return nil, err
			}
			out = append(out, b)
			f.inbox = d.Seq
		}
	}
	for i := range p.Messages {
		m := &p.Messages[i]
		if m.Seq > f.pushed[string(m.GroupID)] {
			out = append(out, encodeMessage(m))
			f.pushed[string(m.GroupID)] = m.Seq
		}
	}
	return out, nil
}

// Close ends the Feed's subscription.
func (f *Feed) Close() {
	f.s.hub.remove(f)
	f.unsub()
	f.ticker.Stop()
}
