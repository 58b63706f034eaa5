// Package natsbus implements bus.Bus over core NATS publish/subscribe, for
// several server nodes. Each device has a subject, hush.dev.<device id in
// hex>; a node subscribes to the devices connected to it and publishes to
// the recipients of each message it stores.
//
// Core NATS delivers at most once, which is all a wake-up needs (see
// package bus). While the connection is down, notifications are lost; the
// client reconnects for ever (MaxReconnects(-1)) and restores the
// subscriptions by itself, and Config.OnReconnect lets the server then
// re-scan the store for its connected devices, catching up on anything it
// was not told about.
//
// A subscription costs no goroutine: nats.go gives each subscription with a
// callback a goroutine of its own, which would put one back on every idle
// connection that the server holds without one. Subscriptions here are
// channel subscriptions instead, sharing a few channels, each read by one
// goroutine of the Bus (dispatchers) that calls the subscriber; a device's
// events keep their order, since its subscription always uses the same
// channel. When a channel is full, nats.go drops the event (a slow
// consumer); an event is only a wake-up, and the server's periodic poll
// catches up on a lost one.
package natsbus

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/hush-chat/hush/bus"
	"github.com/hush-chat/hush/store"
)

// Config configures Connect.
type Config struct {
	// URL of the NATS server(s), comma-separated; nats.DefaultURL if empty.
	URL string
	// Name identifies the connection in the server's monitoring.
	Name string
	// OnReconnect is called, on a goroutine of the NATS client, each time
	// the connection is re-established, after subscriptions are restored.
	// Notifications published while it was down are lost: re-scan the
	// store for the devices connected to this node.
	OnReconnect func()
	// Options are passed to nats.Connect after the package's own, so they
	// can override them (for example nats.ReconnectWait).
	Options []nats.Option
}

// subscribeTimeout bounds how long Subscribe waits for the server to
// confirm a subscription when ctx has no deadline.
const subscribeTimeout = 5 * time.Second

// dispatchQueue is the length of each dispatcher's channel: events
// waiting to be handed to their subscribers.
const dispatchQueue = 8192

// Bus is a bus.Bus over a NATS connection.
type Bus struct {
	nc *nats.Conn

	mu   sync.RWMutex
	subs map[*nats.Subscription]*subscriber

	queues []chan *nats.Msg // one per dispatcher
	stop   chan struct{}    // ends the dispatchers
	done   sync.WaitGroup
	closed sync.Once
}

// subscriber is one Subscribe's function, until it unsubscribes.
type subscriber struct {
	fn     func(bus.Event)
	active atomic.Bool
}

var _ bus.Bus = (*Bus)(nil)

// Connect connects to NATS. The initial connection must succeed; later
// disconnections are retried for ever.
func Connect(cfg Config) (*Bus, error) {
	url := cfg.URL
	if url == "" {
		url = nats.DefaultURL
	}
	opts := []nats.Option{
		nats.Name(cfg.Name),
		nats.MaxReconnects(-1),
		nats.NoCallbacksAfterClientClose(),
	}
	if cfg.OnReconnect != nil {
		opts = append(opts, nats.ReconnectHandler(func(*nats.Conn) { cfg.OnReconnect() }))
	}
	nc, err := nats.Connect(url, append(opts, cfg.Options...)...)
	if err != nil {
		return nil, fmt.Errorf("natsbus: %w", err)
	}
	b := &Bus{nc: nc, subs: make(map[*nats.Subscription]*subscriber), stop: make(chan struct{})}
	b.queues = make([]chan *nats.Msg, max(2, runtime.GOMAXPROCS(0)))
	for i := range b.queues {
		q := make(chan *nats.Msg, dispatchQueue)
		b.queues[i] = q
		b.done.Go(func() { b.dispatch(q) })
	}
	return b, nil
}

// dispatch hands the events that arrive on q to their subscribers, one at
// a time, until the Bus closes.
func (b *Bus) dispatch(q chan *nats.Msg) {
	for {
		select {
		case <-b.stop:
			return
		case m := <-q:
			b.mu.RLock()
			s := b.subs[m.Sub]
			b.mu.RUnlock()
			var ev bus.Event
			if s != nil && s.active.Load() && json.Unmarshal(m.Data, &ev) == nil {
				s.fn(ev)
			}
		}
	}
}

// queue returns the dispatcher channel of a device's subscriptions.
func (b *Bus) queue(device store.DeviceID) chan *nats.Msg {
	return b.queues[binary.LittleEndian.Uint64(device[:8])%uint64(len(b.queues))]
}

// Subject returns the subject on which a device's events travel.
func Subject(device store.DeviceID) string { return "hush.dev." + device.String() }

// Publish sends ev to the device's subscribers. It returns once the event
// is buffered for sending, not once it is delivered; while the connection
// is down, events are buffered up to the client's reconnect buffer.
func (b *Bus) Publish(ctx context.Context, device store.DeviceID, ev bus.Event) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	data, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("natsbus: %w", err)
	}
	return b.err(b.nc.Publish(Subject(device), data))
}

// Subscribe subscribes to the device's events and returns once the server
// has confirmed the subscription, so that an event published by any node
// after Subscribe returns is delivered. Events that fail to decode are
// dropped. fn is called on one of the Bus's dispatchers, one event at a
// time, and must not block (bus.Bus).
func (b *Bus) Subscribe(ctx context.Context, device store.DeviceID, fn func(bus.Event)) (func(), error) {
	s := &subscriber{fn: fn}
	s.active.Store(true)
	// Held while subscribing, so that a dispatcher that gets the first
	// event finds the subscriber.
	b.mu.Lock()
	sub, err := b.nc.ChanSubscribe(Subject(device), b.queue(device))
	if err == nil {
		b.subs[sub] = s
	}
	b.mu.Unlock()
	if err != nil {
		return nil, b.err(err)
	}
	unsubscribe := func() {
		s.active.Store(false)
		sub.Unsubscribe()
		b.mu.Lock()
		delete(b.subs, sub)
		b.mu.Unlock()
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, subscribeTimeout)
		defer cancel()
	}
	if err := b.nc.FlushWithContext(ctx); err != nil {
		unsubscribe()
		return nil, b.err(err)
	}
	var once sync.Once
	return func() { once.Do(unsubscribe) }, nil
}

// Close sends what is buffered, if it can within a second, and closes the
// connection.
func (b *Bus) Close() error {
	if !b.nc.IsClosed() {
		b.nc.FlushTimeout(time.Second) // best effort: events are lossy anyway
		b.nc.Close()
	}
	b.closed.Do(func() { close(b.stop) })
	b.done.Wait()
	return nil
}

// err maps the client's closed-connection error to bus.ErrClosed.
func (b *Bus) err(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, nats.ErrConnectionClosed):
		return bus.ErrClosed
	}
	return fmt.Errorf("natsbus: %w", err)
}
