package delivery

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/hush-chat/hush/store"
)

// The poll wheel turns one slot every pollTick (PollInterval is split in
// that many slots, at most maxSlots), and asks that slot's Feeds to poll:
// the polls of many connections are spread evenly over the interval,
// without a ticker each. While maxPolls polls are under way the wheel
// waits, so that a store slower than the polls come stretches the
// interval instead of piling up goroutines waiting for it.
const (
	pollTick = 100 * time.Millisecond
	maxSlots = 3000
	maxPolls = 32
)

// hub is the set of this node's Feeds, by device, and the poll wheel
// that asks each of them to poll every PollInterval. The wheel's
// goroutine runs only while there are Feeds.
type hub struct {
	mu    sync.Mutex
	m     map[store.DeviceID]map[*Feed]struct{}
	slots []map[*Feed]struct{}
	next  int           // the slot the next Feed goes to
	n     int           // Feeds in the hub
	stop  chan struct{} // closed to stop the wheel, nil when it is not running

	polls atomic.Int64 // polls asked for and not yet done
}

func (h *hub) add(f *Feed) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.m[f.dev] == nil {
		h.m[f.dev] = make(map[*Feed]struct{})
	}
	h.m[f.dev][f] = struct{}{}
	if h.slots == nil {
		h.slots = make([]map[*Feed]struct{}, min(max(int(f.s.poll/pollTick), 1), maxSlots))
	}
	f.slot = h.next
	h.next = (h.next + 1) % len(h.slots)
	if h.slots[f.slot] == nil {
		h.slots[f.slot] = make(map[*Feed]struct{})
	}
	h.slots[f.slot][f] = struct{}{}
	h.n++
	if h.stop == nil {
		h.stop = make(chan struct{})
		go h.wheel(f.s.poll/time.Duration(len(h.slots)), h.stop)
	}
}

func (h *hub) remove(f *Feed) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.m[f.dev][f]; !ok {
		return
	}
	delete(h.m[f.dev], f)
	if len(h.m[f.dev]) == 0 {
		delete(h.m, f.dev)
	}
	delete(h.slots[f.slot], f)
	h.n--
	if h.n == 0 && h.stop != nil {
		close(h.stop)
		h.stop = nil
	}
}

// wheel asks one slot's Feeds to poll every tick, until stop is closed.
func (h *hub) wheel(tick time.Duration, stop <-chan struct{}) {
	t := time.NewTicker(max(tick, time.Millisecond))
	defer t.Stop()
	slot := 0
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		if h.polls.Load() >= maxPolls {
			continue // the store is behind: this slot waits a tick
		}
		h.mu.Lock()
		for f := range h.slots[slot] {
			f.pollNow()
		}
		h.mu.Unlock()
		slot = (slot + 1) % len(h.slots)
	}
}

// each calls fn, which must not block, for each Feed of dev.
func (h *hub) each(dev store.DeviceID, fn func(*Feed)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for f := range h.m[dev] {
		fn(f)
	}
}

// all calls fn, which must not block, for every Feed.
func (h *hub) all(fn func(*Feed)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, fs := range h.m {
		for f := range fs {
			fn(f)
		}
	}
}
