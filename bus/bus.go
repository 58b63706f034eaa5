// Package bus carries wake-up notifications between server nodes: "group
// G has new messages up to seq N", "device D has direct mail". A node that
// holds a device's connection subscribes to that device; a node that
// appends a message publishes to each recipient device.
//
// Notifications only wake nodes up; they carry no message and no
// guarantee. Delivery is at most once, may be lost (a node restarting, the
// NATS connection dropping), and may arrive late or out of order. The store
// is the source of truth: on a notification, the node fetches from the
// store after the device's cursors, so a notification that never arrives
// delays a message, and never loses it. To bound the delay, a node also
// fetches when a device connects, when the bus reconnects (see
// natsbus.Config.OnReconnect) and, as a safety net, periodically.
//
// NewLocal is the in-process bus for a single node; package natsbus
// implements Bus over NATS for several.
package bus

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"github.com/hush-chat/hush/store"
)

// Kind says what an Event is about.
type Kind uint8

// Event kinds.
const (
	// KindGroup: Group has messages up to Seq.
	KindGroup Kind = 1 + iota
	// KindDirect: the device has direct mail up to inbox Seq.
	KindDirect
)

// Event is a notification for one device.
type Event struct {
	Kind  Kind          `json:"k"`
	Group store.GroupID `json:"g,omitempty"` // KindGroup only
	Seq   uint64        `json:"s"`
}

// Bus publishes and subscribes to per-device notifications. Implementations
// are safe for concurrent use.
type Bus interface {
	// Publish sends ev to the device's subscribers, on any node. It does
	// not wait for them to receive it.
	Publish(ctx context.Context, device store.DeviceID, ev Event) error

	// Subscribe calls fn with each event published to the device from
	// now on, until unsubscribe is called; unsubscribe is idempotent, and
	// after it returns no new call of fn starts. fn must not block: it
	// should hand the event over (for example with a non-blocking send on
	// a channel of size 1, since any event means "fetch") and return. Calls
	// may come from any goroutine, and fn must be safe for concurrent use.
	Subscribe(ctx context.Context, device store.DeviceID, fn func(Event)) (unsubscribe func(), err error)

	// Close releases the bus; Publish and Subscribe then fail with
	// ErrClosed.
	Close() error
}

// ErrClosed is returned by a closed bus.
var ErrClosed = errors.New("bus: closed")

// Local is an in-process Bus: Publish calls the device's subscribers
// directly, in the publisher's goroutine.
type Local struct {
	mu     sync.RWMutex
	subs   map[store.DeviceID]map[*localSub]struct{}
	closed bool
}

type localSub struct {
	fn     func(Event)
	active atomic.Bool
}

var _ Bus = (*Local)(nil)

// NewLocal returns an empty in-process bus.
func NewLocal() *Local {
	return &Local{subs: make(map[store.DeviceID]map[*localSub]struct{})}
}

func (b *Local) Publish(ctx context.Context, device store.DeviceID, ev Event) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.mu.RLock()
	if b.closed {
		b.mu.RUnlock()
		return ErrClosed
	}
	subs := make([]*localSub, 0, len(b.subs[device]))
	for s := range b.subs[device] {
		subs = append(subs, s)
	}
	b.mu.RUnlock()
	// Called without the lock, so that fn may subscribe or unsubscribe.
	for _, s := range subs {
		if s.active.Load() {
			s.fn(ev)
		}
	}
	return nil
}

func (b *Local) Subscribe(ctx context.Context, device store.DeviceID, fn func(Event)) (func(), error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s := &localSub{fn: fn}
	s.active.Store(true)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, ErrClosed
	}
	if b.subs[device] == nil {
		b.subs[device] = make(map[*localSub]struct{})
	}
	b.subs[device][s] = struct{}{}
	return func() {
		s.active.Store(false)
		b.mu.Lock()
		defer b.mu.Unlock()
		delete(b.subs[device], s)
		if len(b.subs[device]) == 0 {
			delete(b.subs, device)
		}
	}, nil
}

// Close drops every subscription.
func (b *Local) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, subs := range b.subs {
		for s := range subs {
			s.active.Store(false)
		}
	}
	b.subs, b.closed = nil, true
	return nil
}
