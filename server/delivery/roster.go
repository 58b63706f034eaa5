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

// roster is a group's routing roster as read at a time.
type roster struct {
	devices []store.DeviceID
	loaded  time.Time
}

func newRoster(devices []store.DeviceID) *roster {
	return &roster{devices: devices, loaded: time.Now()}
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
type rosterCache struct {
	mu  sync.Mutex
	gen uint64 // bumped by every set
	m   map[string]*roster
}

func (c *rosterCache) get(ctx context.Context, st store.Store, group store.GroupID) (*roster, error) {
	c.mu.Lock()
	r, gen := c.m[string(group)], c.gen
	c.mu.Unlock()
	if r != nil && time.Since(r.loaded) < rosterTTL {
		return r, nil
	}
	g, err := st.Group(ctx, group)
	if err != nil {
		return nil, err
	}
	r = newRoster(g.Roster)
	c.mu.Lock()
	if c.gen == gen { // no local commit raced with the read
		c.put(string(group), r)
	}
	c.mu.Unlock()
	return r, nil
}

// set installs a roster known to be current.
func (c *rosterCache) set(group store.GroupID, r *roster) {
	c.mu.Lock()
	c.gen++
	c.put(string(group), r)
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
