package delivery

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync"

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

// A Feed follows one device's pending messages for one push connection.
// It has no goroutine, channel or timer of its own: when there may be
// something to push (a notification, a message accepted by this node, a
// typing signal, an acknowledgement, a revocation, or the periodic poll)
// it calls the function given to Follow, and the connection then calls
// Next, which returns what is pending and not yet returned. Next is
// called by one goroutine at a time.
type Feed struct {
	s      *Service
	dev    store.DeviceID
	notify func()
	unsub  func()
	slot   int // the hub's poll slot

	mu      sync.Mutex
	groups  map[string]uint64  // groups announced since the last Next, with their last seq
	offers  map[string][]offer // messages handed over since the last Next, by group
	offered int                // len of all offers
	typing  []proto.Typing     // typing signals since the last Next
	full    bool               // a full read is due: first read, direct mail, rescan
	acked   bool               // the device acknowledged something since the last Next
	poll    bool               // a poll is due
	revoked bool

	// Owned by the caller of Next.
	inbox   uint64            // highest inbox seq returned
	pushed  map[string]uint64 // highest seq returned, by group
	stalled bool              // a full read found Window messages unacknowledged
}

// Push is what Next returns.
type Push struct {
	// Messages are encoded proto.Frames of type FrameMessage, oldest
	// first within each log.
	Messages [][]byte
	// Typing are the typing signals for the device, oldest first.
	Typing []proto.Typing
}

// Follow starts a Feed for dev. notify, which must not block, is called
// whenever Next may have something to return; the first Next returns
// everything pending after the device's cursors. Close the Feed when the
// connection ends.
func (s *Service) Follow(ctx context.Context, dev store.DeviceID, notify func()) (*Feed, error) {
	f := &Feed{s: s, dev: dev, notify: notify, full: true}
	// Subscribed before the first read, so nothing falls in between.
	unsub, err := s.bus.Subscribe(ctx, dev, f.event)
	if err != nil {
		return nil, err
	}
	f.unsub = unsub
	s.hub.add(f)
	return f, nil
}

// event records a notification: a group's log grew (read just that log
// past what was pushed), or anything else (read everything).
func (f *Feed) event(ev bus.Event) {
	f.mu.Lock()
	if ev.Kind == bus.KindGroup && len(ev.Group) > 0 {
		if f.groups == nil {
			f.groups = make(map[string]uint64)
		}
		f.groups[string(ev.Group)] = max(f.groups[string(ev.Group)], ev.Seq)
	} else {
		f.full = true
	}
	f.mu.Unlock()
	f.notify()
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
		if f.offers == nil {
			f.offers = make(map[string][]offer)
		}
		f.offers[string(group)] = append(f.offers[string(group)], offer{seq, frame})
		f.offered++
	}
	f.mu.Unlock()
}

// rescan asks for a full read.
func (f *Feed) rescan() { f.event(bus.Event{}) }

// pollNow asks Next to check the device and read everything, in case a
// notification was lost.
func (f *Feed) pollNow() {
	f.mu.Lock()
	if !f.poll {
		f.poll = true
		f.s.hub.polls.Add(1) // done when Next has polled, or at Close
	}
	f.mu.Unlock()
	f.notify()
}

func (f *Feed) relayTyping(t proto.Typing) {
	f.mu.Lock()
	queued := len(f.typing) < typingQueue // else the connection is behind: drop the signal
	if queued {
		f.typing = append(f.typing, t)
	}
	f.mu.Unlock()
	if queued {
		f.notify()
	}
}

func (f *Feed) revoke() {
	f.mu.Lock()
	f.revoked = true
	f.mu.Unlock()
	f.notify()
}

// Acked tells the Feed that the device acknowledged messages.
func (f *Feed) Acked() {
	f.mu.Lock()
	f.acked = true
	f.mu.Unlock()
	f.notify()
}

// Next returns the message frames pending for the device that this Feed
// has not returned yet, and the typing signals relayed since the last
// call. It returns ErrRevoked once the device is revoked.
//
// Messages accepted by this node are handed to its Feeds directly
// (offer) and returned without a store read when they follow what was
// returned before in their log. After a notification that a log grew
// past that, Next reads the log past what it returned (store.FetchGroup).
// Otherwise (first call, direct mail, rescans, polls) it reads everything
// pending (store.Fetch), which starts at the device's cursors: once that
// finds Window messages unacknowledged, such full reads wait for an
// acknowledgement or a poll. At a poll (every PollInterval) Next also
// checks that the device is still live, for revocations made through
// other nodes. An error other than ErrRevoked leaves the Feed behind: the
// connection should end, and the device catch up on its next.
func (f *Feed) Next(ctx context.Context) (Push, error) {
	f.mu.Lock()
	groups, offers, typing, full, acked, poll, revoked := f.groups, f.offers, f.typing, f.full, f.acked, f.poll, f.revoked
	f.groups, f.offers, f.typing, f.full, f.acked, f.poll, f.offered = nil, nil, nil, false, false, false, 0
	f.mu.Unlock()
	if poll {
		defer f.s.hub.polls.Add(-1)
	}
	if revoked {
		return Push{}, ErrRevoked
	}
	if poll {
		d, err := f.s.store.Device(ctx, f.dev)
		if err != nil {
			return Push{}, err
		}
		if d.Revoked {
			return Push{}, ErrRevoked
		}
	}
	if f.pushed == nil {
		f.pushed = make(map[string]uint64)
	}
	if acked && f.stalled {
		f.stalled, full = false, true
	}
	if poll {
		f.stalled, full = false, true
	}
	out := Push{Typing: typing}
	if full && !f.stalled {
		ms, err := f.readAll(ctx)
		if err != nil {
			return Push{}, err
		}
		out.Messages = ms
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
				out.Messages = append(out.Messages, o.frame)
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
			return Push{}, err
		}
		for i := range ms {
			out.Messages = append(out.Messages, encodeMessage(&ms[i]))
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
	f.s.m.Deliveries.WithLabelValues("push").Add(float64(len(out.Messages)))
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

// Close ends the Feed's subscription. notify is not called after Close
// returns, except by a call already under way.
func (f *Feed) Close() {
	f.s.hub.remove(f)
	f.unsub()
	f.mu.Lock()
	if f.poll {
		f.poll = false
		f.s.hub.polls.Add(-1)
	}
	f.mu.Unlock()
}
