package delivery

import (
	"bytes"
	"context"
	"slices"
	"sync"
	"time"

	"github.com/hush-chat/hush/store"
)

// maxCachedRosters bounds the roster cache; past it, arbitrary entries
// are dropped and reloaded on their next use.
const maxCachedRosters = 100_000

// rosterTTL is how long a cached roster is used. A commit accepted by
// this node replaces its entry at once; one accepted by another node is
// seen here within rosterTTL.
const rosterTTL = 2 * time.Second

// roster is a group's routing roster, and the epoch it belongs to, as
// read at a time.
type roster struct {
	devices []store.DeviceID
	epoch   uint64
	loaded  time.Time
}

func newRoster(devices []store.DeviceID, epoch uint64) *roster {
	return &roster{devices: devices, epoch: epoch, loaded: time.Now()}
}

func (r *roster) has(d store.DeviceID) bool {
	for _, x := range r.devices {
		if x == d {
			return true
		}
	}
	return false
}

// rosterCache keeps groups' rosters in memory so that waking a group's
// devices costs no store read per message. The store stays authoritative:
// senders are checked by the store, and a stale roster only misroutes
// wake-ups and typing signals for at most rosterTTL, which the feeds'
// periodic re-reads make good.
//
// While a commit of this node is being stored, its group's roster is read
// from the store, not the cache, so that a message sequenced after the
// commit is never routed by the roster before it.
type rosterCache struct {
	mu       sync.Mutex
	gen      uint64 // bumped by every set
	m        map[string]*roster
	inflight map[string]int // commits being stored, by group
}

func (c *rosterCache) get(ctx context.Context, st store.Store, group store.GroupID) (*roster, error) {
	c.mu.Lock()
	r, gen, busy := c.m[string(group)], c.gen, c.inflight[string(group)] > 0
	c.mu.Unlock()
	if r != nil && !busy && time.Since(r.loaded) < rosterTTL {
		return r, nil
	}
	g, err := st.Group(ctx, group)
	if err != nil {
		return nil, err
	}
	r = newRoster(g.Roster, g.Epoch)
	c.mu.Lock()
	if c.gen == gen && c.inflight[string(group)] == 0 { // no local commit raced with the read
		c.put(string(group), r)
	}
	c.mu.Unlock()
	return r, nil
}

// begin marks a commit of the group as being stored; end (with the new
// roster, or nil if the commit failed) must follow.
func (c *rosterCache) begin(group store.GroupID) {
	c.mu.Lock()
	c.gen++
	c.inflight[string(group)]++
	delete(c.m, string(group))
	c.mu.Unlock()
}

func (c *rosterCache) end(group store.GroupID, r *roster) {
	c.mu.Lock()
	c.gen++
	if c.inflight[string(group)]--; c.inflight[string(group)] == 0 {
		delete(c.inflight, string(group))
		if r != nil {
			c.put(string(group), r)
		}
	}
	c.mu.Unlock()
}

// put stores r; c.mu is held.
func (c *rosterCache) put(group string, r *roster) {
	if len(c.m) >= maxCachedRosters {
		for k := range c.m {
			delete(c.m, k)
			if len(c.m) < maxCachedRosters*9/10 {
				break
			}
		}
	}
	c.m[group] = r
}

// dedupe sorts ids and removes repeats, as the store does with rosters.
func dedupe(ids []store.DeviceID) []store.DeviceID {
	out := slices.Clone(ids)
	slices.SortFunc(out, func(a, b store.DeviceID) int { return bytes.Compare(a[:], b[:]) })
	return slices.Compact(out)
}
