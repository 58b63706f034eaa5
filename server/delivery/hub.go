package delivery

import (
	"sync"

	"github.com/hush-chat/hush/store"
)

// hub is the set of this node's Feeds, by device.
type hub struct {
	mu sync.Mutex
	m  map[store.DeviceID]map[*Feed]struct{}
}

func (h *hub) add(f *Feed) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.m[f.dev] == nil {
		h.m[f.dev] = make(map[*Feed]struct{})
	}
	h.m[f.dev][f] = struct{}{}
}

func (h *hub) remove(f *Feed) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.m[f.dev], f)
	if len(h.m[f.dev]) == 0 {
		delete(h.m, f.dev)
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
