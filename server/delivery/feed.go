package delivery

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync"
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

// A Feed follows one device's pending messages for one push connection.
// It has no goroutine or channel of its own (only a timer while it holds
// out-of-order offers, see Next): when there may be
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
	// sendOnly: the connection pushes nothing (FollowSendOnly); the Feed
	// only watches for revocation.
	sendOnly bool

	mu      sync.Mutex
	groups  map[string]uint64  // groups announced since the last Next, with their last seq
	offers  map[string][]offer // messages handed over since the last Next, by group
	offered int                // len of all offers
	typing  []proto.Typing     // typing signals since the last Next
	full    bool               // a full read is due: first read, direct mail, rescan
	acked   bool               // the device acknowledged something since the last Next
	ackedTo map[string]uint64  // the highest seq the device acknowledged, by group
	poll    bool               // a poll is due
	revoked bool
	dropped bool        // offers were dropped (maxOffers): gaps are read at once
	holding bool        // Next holds offers past a gap
	timer   *time.Timer // the gap timer, armed while gaps are held
	closed  bool

	// Owned by the caller of Next.
	inbox   uint64            // highest inbox seq returned
	pushed  map[string]uint64 // highest seq returned, by group
	stalled bool              // a full read found Window messages unacknowledged
	fullDue bool              // a full read was asked for while stalled
	// Of the last full read that stalled: the group of its last message
	// ("" if it held direct mail only), and, for each group it held, the
	// seq before its first message (the device's cursor then, or less).
	stallLast string
	stallBase map[string]uint64
	held      map[string][]offer   // offers past a gap, by group, sorted by seq
	want      map[string]uint64    // highest seq announced and not yet returned, by group
	gapSince  map[string]time.Time // when the group's current gap was first held
	reading   map[string]bool      // groups with more than Window to read
}

// ReadTimeout bounds each read of the store that Next makes.
const ReadTimeout = 30 * time.Second

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

// FollowSendOnly starts a Feed for a connection of dev on which nothing
// is pushed (a send-only connection): it takes no notifications, offers,
// typing signals or acknowledgements, and its Next returns nothing but
// ErrRevoked once the device is revoked (at once through this node, at the
// Feed's next poll through another) or a store error from that poll. The
// device's messages stay pending after its cursors for its other
// connections. Close the Feed when the connection ends.
func (s *Service) FollowSendOnly(dev store.DeviceID, notify func()) *Feed {
	f := &Feed{s: s, dev: dev, notify: notify, sendOnly: true, unsub: func() {}}
	s.hub.add(f)
	return f
}

// event records a notification: a group's log grew (read just that log
// past what was pushed), or anything else (read everything).
func (f *Feed) event(ev bus.Event) {
	if f.sendOnly {
		return // rescans: nothing to push
	}
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

// offer is a message accepted by this node, encoded as its push frame;
// or, with a nil frame, a sequence number of the log that is not pushed
// from the offer: skip (the device's own message: not for it) or not
// (the message must be read from the store, e.g. a commit).
type offer struct {
	seq   uint64
	frame []byte
	skip  bool
}

// maxOffers bounds the offers kept for a Feed between two Nexts; past it
// they are dropped, and the store is read instead.
const maxOffers = 4 * Window

// Offers reach a Feed out of order (each accepted message is handed over
// by its own goroutine). Next holds offers past a gap, up to maxHeld per
// group, until the gap fills; a gap not filled within gapWait (a message
// stored by another node, or an offer lost to maxOffers) or past maxHeld
// is read from the store.
const (
	maxHeld = 256
	gapWait = 25 * time.Millisecond
)

// offer hands the Feed a message of group with sequence number seq,
// encoded as its push frame (see the offer type for a nil frame). Its
// notification follows.
func (f *Feed) offer(group store.GroupID, seq uint64, frame []byte, skip bool) {
	if f.sendOnly {
		return
	}
	f.mu.Lock()
	if f.offered < maxOffers {
		if f.offers == nil {
			f.offers = make(map[string][]offer)
		}
		f.offers[string(group)] = append(f.offers[string(group)], offer{seq, frame, skip})
		f.offered++
	} else {
		f.dropped = true
	}
	wake := skip && f.holding // no notification follows the device's own message
	f.mu.Unlock()
	if wake {
		f.notify()
	}
}

// gapTimeout is the gap timer's function: a held gap may be due for a
// read (Next reads those held for gapWait).
func (f *Feed) gapTimeout() {
	f.mu.Lock()
	f.timer = nil
	closed := f.closed
	f.mu.Unlock()
	if !closed {
		f.notify()
	}
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
	if f.sendOnly {
		return
	}
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
	if f.sendOnly {
		return
	}
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
// returned before in their log. Offers arrive out of order: one past a
// gap is held until the gap fills (by offers, or by the device's own
// messages, which are offered as skips). A gap is read from the log
// (store.FetchGroup, past what was returned) when it is a message that
// must be read (a commit), when it has not filled within gapWait, when
// more than maxHeld offers of the group wait behind it, or when offers
// were dropped; so is a notification that a log grew past what was
// returned with nothing held (a message stored by another node).
// Otherwise (first call, direct mail, rescans, polls) it reads everything
// pending (store.Fetch), which starts at the device's cursors: once that
// finds Window messages unacknowledged, such full reads wait for an
// acknowledgement or a poll. At a poll (every PollInterval) Next also
// checks that the device is still live, for revocations made through
// other nodes. An error other than ErrRevoked leaves the Feed behind: the
// connection should end, and the device catch up on its next. Each read
// of the store is bounded by ReadTimeout (and ctx); most calls read
// nothing, so the caller need not pay for a timer of its own.
func (f *Feed) Next(ctx context.Context) (Push, error) {
	f.mu.Lock()
	groups, offers, typing, full, acked, poll, revoked, dropped := f.groups, f.offers, f.typing, f.full, f.acked, f.poll, f.revoked, f.dropped
	f.groups, f.offers, f.typing, f.full, f.acked, f.poll, f.offered, f.dropped = nil, nil, nil, false, false, false, 0, false
	f.mu.Unlock()
	if poll {
		defer f.s.hub.polls.Add(-1)
	}
	if revoked {
		return Push{}, ErrRevoked
	}
	if poll {
		rctx, cancel := context.WithTimeout(ctx, ReadTimeout)
		d, err := f.s.store.Device(rctx, f.dev)
		cancel()
		if err != nil {
			return Push{}, err
		}
		if d.Revoked {
			return Push{}, ErrRevoked
		}
	}
	if f.sendOnly {
		return Push{}, nil
	}
	if f.pushed == nil {
		f.pushed = make(map[string]uint64)
		f.held = make(map[string][]offer)
		f.want = make(map[string]uint64)
		f.gapSince = make(map[string]time.Time)
		f.reading = make(map[string]bool)
	}
	if full && f.stalled {
		f.fullDue = true // direct mail, a rescan: read at the next acknowledgement
	}
	if acked && f.stalled && (f.fullDue || !f.covered()) {
		f.stalled, full = false, true
	}
	if poll {
		f.stalled, full = false, true
	}
	out := Push{Typing: typing}
	if full && !f.stalled {
		f.fullDue = false
		ms, err := f.readAll(ctx)
		if err != nil {
			return Push{}, err
		}
		out.Messages = ms
	}
	for g, os := range offers {
		if _, known := f.pushed[g]; !known {
			continue // the group is read from the store (below) first
		}
		f.held[g] = append(f.held[g], os...)
	}
	for g, seq := range groups {
		f.want[g] = max(f.want[g], seq)
	}
	now := time.Now()
	// Visit every group with something held or announced.
	visit := make([]string, 0, len(f.held)+len(f.want))
	for g := range f.held {
		visit = append(visit, g)
	}
	for g := range f.want {
		if _, ok := f.held[g]; !ok {
			visit = append(visit, g)
		}
	}
	for _, g := range visit {
		read := f.take(g, &out)
		if h := f.held[g]; !read && !f.reading[g] {
			if len(h) == 0 {
				// Announced past what was returned with nothing held: a
				// message stored by another node.
				read = f.want[g] > f.pushed[g]
			} else {
				since, ok := f.gapSince[g]
				if !ok {
					since = now
					f.gapSince[g] = now
				}
				read = dropped || len(h) > maxHeld || now.Sub(since) >= gapWait
			}
		}
		if read || f.reading[g] {
			more, err := f.readGroup(ctx, g, &out)
			if err != nil {
				return Push{}, err
			}
			if more {
				f.reading[g] = true
				f.event(bus.Event{Kind: bus.KindGroup, Group: store.GroupID(g), Seq: f.want[g]})
			} else {
				// The read returned what is pending up to the log's end
				// then. Everything announced or held was stored before
				// it: what it did not return is acknowledged, the
				// device's own, or not for it.
				delete(f.reading, g)
				f.pushed[g] = max(f.pushed[g], f.want[g])
				for _, o := range f.held[g] {
					f.pushed[g] = max(f.pushed[g], o.seq)
				}
				delete(f.held, g)
			}
		}
		if len(f.held[g]) == 0 {
			delete(f.held, g)
			delete(f.gapSince, g)
		}
		if f.want[g] <= f.pushed[g] {
			delete(f.want, g)
		}
	}
	f.mu.Lock()
	f.holding = len(f.held) > 0
	if f.holding && f.timer == nil && !f.closed {
		f.timer = time.AfterFunc(gapWait, f.gapTimeout)
	}
	f.mu.Unlock()
	f.s.m.Deliveries.WithLabelValues("push").Add(float64(len(out.Messages)))
	return out, nil
}

// take returns the offers of group g held in order after what was
// returned, up to a gap, and reports whether the next one is a message to
// read from the store.
func (f *Feed) take(g string, out *Push) (read bool) {
	h := f.held[g]
	slices.SortFunc(h, func(a, b offer) int { return cmp.Compare(a.seq, b.seq) })
	last := f.pushed[g]
	i := 0
	for ; i < len(h); i++ {
		o := h[i]
		if o.seq <= last {
			continue // returned already, or a duplicate
		}
		if o.seq != last+1 {
			break
		}
		if o.frame == nil && !o.skip {
			read = true
			break
		}
		if o.frame != nil {
			out.Messages = append(out.Messages, o.frame)
		}
		last = o.seq
		delete(f.gapSince, g) // progress: a later gap is timed afresh
	}
	f.pushed[g] = last
	f.held[g] = h[i:]
	return read
}

// readGroup reads group g's log past what was returned, and reports
// whether there is more to read than Window.
func (f *Feed) readGroup(ctx context.Context, g string, out *Push) (more bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, ReadTimeout)
	defer cancel()
	ms, err := f.s.store.FetchGroup(ctx, f.dev, store.GroupID(g), f.pushed[g], Window)
	if err != nil {
		return false, err
	}
	for i := range ms {
		out.Messages = append(out.Messages, encodeMessage(&ms[i]))
		f.pushed[g] = ms[i].Seq
	}
	return len(ms) == Window, nil
}

// readAll reads everything pending after the device's cursors and returns
// what was not returned before.
func (f *Feed) readAll(ctx context.Context) ([][]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, ReadTimeout)
	defer cancel()
	p, err := f.s.store.Fetch(ctx, f.dev, Window)
	if err != nil {
		return nil, err
	}
	f.stalled = len(p.Direct)+len(p.Messages) >= Window
	f.stallLast, f.stallBase = "", nil
	if f.stalled && len(p.Messages) > 0 {
		f.stallLast = string(p.Messages[len(p.Messages)-1].GroupID)
		f.stallBase = make(map[string]uint64)
		for i := range p.Messages {
			if g := string(p.Messages[i].GroupID); !has(f.stallBase, g) {
				f.stallBase[g] = p.Messages[i].Seq - 1
			}
		}
	}
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

// covered reports whether a full read now would return nothing but what
// the stalled one did and what was pushed since, so that a stalled Feed
// need not read at each acknowledgement. A full read returns the
// device's oldest Window pending messages, group by group in the order
// of their ids; the stalled one ended in group stallLast, so one now
// reaches past it (to messages this Feed may not know of) only once
// fewer than Window remain unacknowledged in the groups it held. Those
// groups are followed (their offers and gaps pushed, see take), so what
// they hold is at most what was pushed after each one's acknowledged seq
// (or, unacknowledged since, its cursor then): the count below, which
// counts the device's own messages too, so it errs towards not reading.
// Then the read is left to the acknowledgement that brings the count
// below Window (the device acknowledges what it has read), or to a poll;
// direct mail or a rescan meanwhile still reads at the next
// acknowledgement (fullDue).
func (f *Feed) covered() bool {
	if f.stallLast == "" {
		return false // direct mail filled the read: its cursor is unknown here
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var n uint64
	for g, base := range f.stallBase {
		from := max(base, f.ackedTo[g])
		if p := f.pushed[g]; p > from {
			n += p - from
		}
	}
	return n >= Window
}

func has(m map[string]uint64, k string) bool { _, ok := m[k]; return ok }

// ackedGroups records the device's acknowledgements of group messages.
func (f *Feed) ackedGroups(acks []proto.AckItem) {
	if f.sendOnly {
		return
	}
	f.mu.Lock()
	for _, a := range acks {
		if a.Inbox {
			continue
		}
		if f.ackedTo == nil {
			f.ackedTo = make(map[string]uint64)
		}
		f.ackedTo[string(a.GroupID)] = max(f.ackedTo[string(a.GroupID)], a.Seq)
	}
	f.acked = true
	f.mu.Unlock()
	f.notify()
}

// Close ends the Feed's subscription. notify is not called after Close
// returns, except by a call already under way.
func (f *Feed) Close() {
	f.s.hub.remove(f)
	f.unsub()
	f.mu.Lock()
	f.closed = true
	if f.timer != nil {
		f.timer.Stop()
		f.timer = nil
	}
	if f.poll {
		f.poll = false
		f.s.hub.polls.Add(-1)
	}
	f.mu.Unlock()
}
