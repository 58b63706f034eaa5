package delivery

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	cryptorand "crypto/rand"
	"github.com/hush-chat/hush/bus"
	"github.com/hush-chat/hush/proto"
	"github.com/hush-chat/hush/server/metrics"
	"github.com/hush-chat/hush/store"
	"github.com/hush-chat/hush/store/sqlite"
)

// countingStore is the real SQLite store, counting FetchGroup and Fetch
// reads.
type countingStore struct {
	store.Store
	fetchGroup, fetch atomic.Int64
}

func (c *countingStore) Fetch(ctx context.Context, dev store.DeviceID, limit int) (store.Pending, error) {
	c.fetch.Add(1)
	return c.Store.Fetch(ctx, dev, limit)
}

func (c *countingStore) FetchGroup(ctx context.Context, dev store.DeviceID, g store.GroupID, after uint64, limit int) ([]store.Message, error) {
	c.fetchGroup.Add(1)
	return c.Store.FetchGroup(ctx, dev, g, after, limit)
}

type gapFixture struct {
	st         *countingStore
	s          *Service
	alice, bob store.DeviceID
	group      store.GroupID
	f          *Feed // bob's
	woken      chan struct{}
	n          int
}

func newGapFixture(t *testing.T) *gapFixture {
	t.Helper()
	ctx := t.Context()
	sq, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "hush.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sq.Close() })
	x := &gapFixture{st: &countingStore{Store: sq}, woken: make(chan struct{}, 1)}
	dev := func() store.DeviceID {
		u, err := sq.CreateUser(ctx, "u"+cryptorand.Text()[:10], nil)
		if err != nil {
			t.Fatal(err)
		}
		d, err := sq.CreateDevice(ctx, u.ID, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		return d.ID
	}
	x.alice, x.bob = dev(), dev()
	x.group = make([]byte, 32)
	cryptorand.Read(x.group)
	if err := sq.CreateGroup(ctx, x.group, x.alice, 0, []store.DeviceID{x.alice, x.bob}); err != nil {
		t.Fatal(err)
	}
	b := bus.NewLocal()
	t.Cleanup(func() { b.Close() })
	x.s = New(x.st, b, Options{PollInterval: 1000 * time.Hour, Metrics: metrics.New()}) // no poll during the test
	// One message, so that bob's first (full) read knows the group.
	x.append(t, x.alice)
	x.f, err = x.s.Follow(ctx, x.bob, func() {
		select {
		case x.woken <- struct{}{}:
		default:
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(x.f.Close)
	if got := x.next(t); fmt.Sprint(got) != "[1]" {
		t.Fatalf("first Next returned seqs %v, want [1]", got)
	}
	return x
}

// append stores a message from sender and returns it.
func (x *gapFixture) append(t *testing.T, sender store.DeviceID) store.Message {
	t.Helper()
	x.n++
	m := store.Message{GroupID: x.group, Sender: sender, ClientMsgID: fmt.Sprint(x.n), Kind: store.KindApplication, Payload: []byte{byte(x.n)}}
	a, err := x.st.AppendMessage(t.Context(), m)
	if err != nil {
		t.Fatal(err)
	}
	m.Seq = a.Seq
	return m
}

// hand offers m to bob's Feed as wakeGroup does: as a frame (a skip for
// bob's own), then the notification.
func (x *gapFixture) hand(m store.Message) {
	if m.Sender == x.bob {
		x.f.offer(m.GroupID, m.Seq, nil, true)
		return
	}
	x.f.offer(m.GroupID, m.Seq, encodeMessage(&m), false)
	x.f.event(bus.Event{Kind: bus.KindGroup, Group: m.GroupID, Seq: m.Seq})
}

// next calls Next and returns the seqs of the messages it returned.
func (x *gapFixture) next(t *testing.T) []uint64 {
	t.Helper()
	p, err := x.f.Next(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	for _, b := range p.Messages {
		var f proto.Frame
		if err := json.Unmarshal(b, &f); err != nil || f.Message == nil {
			t.Fatalf("pushed %q: %v", b, err)
		}
		seqs = append(seqs, f.Message.Seq)
	}
	return seqs
}

// Offers handed over in any order (bob's own messages among them, as
// skips) are pushed in log order, each once, without a store read.
func TestFeedHoldsShuffledOffers(t *testing.T) {
	x := newGapFixture(t)
	var ms []store.Message
	var want []uint64
	for i := range 200 {
		sender := x.alice
		if i%7 == 3 {
			sender = x.bob
		}
		m := x.append(t, sender)
		ms = append(ms, m)
		if sender != x.bob {
			want = append(want, m.Seq)
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	var got []uint64
	for len(ms) > 0 {
		// A few offers between two Nexts, out of order.
		k := min(1+r.IntN(6), len(ms))
		batch := ms[:k]
		ms = ms[k:]
		r.Shuffle(len(batch), func(i, j int) { batch[i], batch[j] = batch[j], batch[i] })
		for _, m := range batch {
			x.hand(m)
			if r.IntN(2) == 0 { // the push worker runs between offers
				got = append(got, x.next(t)...)
			}
		}
		got = append(got, x.next(t)...)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("pushed seqs %v, want %v", got, want)
	}
	if n := x.st.fetchGroup.Load(); n != 0 {
		t.Fatalf("%d store reads, want none", n)
	}
}

// A gap that never fills (a message stored by another node: no offer) is
// read from the store once the gap timer fires, then the held offers
// follow in order, each once.
func TestFeedReadsGapThatDoesNotFill(t *testing.T) {
	x := newGapFixture(t)
	lost := x.append(t, x.alice) // never offered
	var rest []store.Message
	for range 5 {
		rest = append(rest, x.append(t, x.alice))
	}
	for i := len(rest) - 1; i >= 0; i-- {
		x.hand(rest[i])
	}
	if got := x.next(t); len(got) != 0 {
		t.Fatalf("Next with a gap returned %v, want nothing yet", got)
	}
	if n := x.st.fetchGroup.Load(); n != 0 {
		t.Fatalf("%d store reads before the gap timed out, want none", n)
	}
	var got []uint64
	for len(got) < 6 {
		<-x.woken // the gap timer
		got = append(got, x.next(t)...)
	}
	want := []uint64{lost.Seq}
	for _, m := range rest {
		want = append(want, m.Seq)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("pushed seqs %v, want %v", got, want)
	}
	if n := x.st.fetchGroup.Load(); n != 1 {
		t.Fatalf("%d store reads, want 1", n)
	}
	// Late offers of what was read are not pushed again.
	x.hand(lost)
	x.hand(rest[0])
	if got := x.next(t); len(got) != 0 {
		t.Fatalf("late offers pushed again: %v", got)
	}
}

// More than maxHeld offers behind a gap: read at once, no wait.
func TestFeedReadsGapPastBound(t *testing.T) {
	x := newGapFixture(t)
	x.append(t, x.alice) // never offered
	var want []uint64
	var got []uint64
	for range maxHeld + 1 {
		m := x.append(t, x.alice)
		x.hand(m)
		want = append(want, m.Seq)
		if len(want) < maxHeld+1 {
			continue
		}
		got = x.next(t)
	}
	if len(got) != maxHeld+2 || got[0] != want[0]-1 || got[len(got)-1] != want[len(want)-1] {
		t.Fatalf("pushed %d messages (%v..), want %d from seq %d", len(got), got[:min(3, len(got))], maxHeld+2, want[0]-1)
	}
	if n := x.st.fetchGroup.Load(); n != 1 {
		t.Fatalf("%d store reads, want 1", n)
	}
}

// A Feed whose full read found Window messages unacknowledged (stalled)
// reads everything pending again at an acknowledgement only once fewer
// than Window of what it pushed remain unacknowledged, or when direct
// mail or a rescan asked for a read meanwhile: not at every
// acknowledgement of a device that stays behind a busy group, whose
// messages it pushes from offers anyway. A message of another group that
// it was never told of is found by the read that follows the device's
// catching up.
func TestFeedStalledReadsOnlyWhenBehindLess(t *testing.T) {
	x := newGapFixture(t)
	ctx := t.Context()
	other := bytes.Repeat([]byte{0xff}, 32) // after x.group in a full read
	if bytes.Compare(x.group, other) >= 0 {
		t.Skip("the random group id sorts last")
	}
	if err := x.st.CreateGroup(ctx, other, x.alice, 0, []store.DeviceID{x.alice, x.bob}); err != nil {
		t.Fatal(err)
	}
	unknown, err := x.st.AppendMessage(ctx, store.Message{GroupID: other, Sender: x.alice, ClientMsgID: "unknown", Kind: store.KindApplication, Payload: []byte{1}})
	if err != nil {
		t.Fatal(err)
	}
	live := func(n int) (last uint64) {
		for range n {
			m := x.append(t, x.alice)
			x.hand(m)
			last = m.Seq
		}
		if got := x.next(t); len(got) != n || got[n-1] != last {
			t.Fatalf("pushed %d offers (last %v), want %d up to %d", len(got), got[len(got)-1:], n, last)
		}
		return last
	}
	ack := func(seq uint64) {
		if err := x.s.Ack(ctx, x.bob, []proto.AckItem{{GroupID: x.group, Seq: seq}}); err != nil {
			t.Fatal(err)
		}
	}
	head := live(Window)
	x.f.rescan() // a full read: Window unacknowledged, all pushed already
	if got := x.next(t); len(got) != 0 {
		t.Fatalf("the full read pushed %d again", len(got))
	}
	reads := x.st.fetch.Load()
	// The device stays behind: it acknowledges 50, then 150, while 200
	// more arrive; more than Window stay unacknowledged each time.
	head = live(200)
	ack(50)
	x.next(t)
	ack(150)
	x.next(t)
	if n := x.st.fetch.Load() - reads; n != 0 {
		t.Fatalf("%d full reads at acknowledgements with more than Window unacknowledged, want none", n)
	}
	// Direct mail (here a rescan) while stalled: read at the next
	// acknowledgement, even one that leaves the device behind.
	x.f.rescan()
	x.next(t)
	ack(160)
	x.next(t)
	if n := x.st.fetch.Load() - reads; n != 1 {
		t.Fatalf("%d full reads after a rescan and an acknowledgement, want 1", n)
	}
	// The device catches up: the read at its acknowledgement finds the
	// other group's message.
	ack(head)
	if got := x.next(t); fmt.Sprint(got) != fmt.Sprint([]uint64{unknown.Seq}) {
		t.Fatalf("after catching up: pushed %v, want the other group's message %d", got, unknown.Seq)
	}
	if n := x.st.fetch.Load() - reads; n != 2 {
		t.Fatalf("%d full reads in all, want 2", n)
	}
}
