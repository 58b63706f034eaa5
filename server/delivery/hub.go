package delivery

import (
	"sync"
	"time"

	"github.com/hush-chat/hush/store"
)

// pollSlots is how many slots the poll wheel has: every PollInterval /
// pollSlots one slot's Feeds are polled, so that the polls of many
// connections are spread over the interval instead of a ticker each.
const pollSlots = 16

// hub is the set of this node's Feeds, by device, and the poll wheel
// that asks each of them to poll every PollInterval. The wheel's
// goroutine runs only while there are Feeds.
type hub struct {
	mu    sync.Mutex
	m     map[store.DeviceID]map[*Feed]struct{}
	slots [pollSlots]map[*Feed]struct{}
	next  int           // the slot the next Feed goes to
	n     int           // Feeds in the hub
	stop  chan struct{} // closed to stop the wheel, nil when it is not running
}

func (h *hub) add(f *Feed) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.m[f.dev] == nil {
		h.m[f.dev] = make(map[*Feed]struct{})
	}
	h.m[f.dev][f] = struct{}{}
	f.slot = h.next
	h.next = (h.next + 1) % pollSlots
	if h.slots[f.slot] == nil {
		h.slots[f.slot] = make(map[*Feed]struct{})
	}
	h.slots[f.slot][f] = struct{}{}
	h.n++
	if h.stop == nil {
		h.stop = make(chan struct{})
		go h.wheel(f.s.poll/pollSlots, h.stop)
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
		h.mu.Lock()
		for f := range h.slots[slot] {
			f.pollNow()
		}
		h.mu.Unlock()
		slot = (slot + 1) % pollSlots
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
