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
package natsbus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
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

// Bus is a bus.Bus over a NATS connection.
type Bus struct {
	nc *nats.Conn
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
	return &Bus{nc: nc}, nil
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
// dropped. fn is called on the subscription's own goroutine, one event at a
// time.
func (b *Bus) Subscribe(ctx context.Context, device store.DeviceID, fn func(bus.Event)) (func(), error) {
	sub, err := b.nc.Subscribe(Subject(device), func(m *nats.Msg) {
		var ev bus.Event
		if json.Unmarshal(m.Data, &ev) == nil {
			fn(ev)
		}
	})
	if err != nil {
		return nil, b.err(err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, subscribeTimeout)
		defer cancel()
	}
	if err := b.nc.FlushWithContext(ctx); err != nil {
		sub.Unsubscribe()
		return nil, b.err(err)
	}
	var once sync.Once
	return func() { once.Do(func() { sub.Unsubscribe() }) }, nil
}

// Close sends what is buffered, if it can within a second, and closes the
// connection.
func (b *Bus) Close() error {
	if !b.nc.IsClosed() {
		b.nc.FlushTimeout(time.Second) // best effort: events are lossy anyway
		b.nc.Close()
	}
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
