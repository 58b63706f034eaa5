// Package notify carries the delivery service's wake-up notifications
// between the goroutines and server nodes that hold devices' connections.
//
// A notification says only "look at the store again" (or carries an
// ephemeral typing signal): durability lives in the store, so a lost
// notification delays a push but never loses a message. Connection holders
// also re-read the store on a timer for that reason.
//
// Two implementations: Local, in-process, for a single node (the default),
// and NATS (DialNATS), which fans notifications out to every node.
//
// Subjects are dot-separated tokens, as in NATS: "hush.dev.<device id>"
// for one device and "hush.roster" for roster changes.
package notify

import (
	"sync"
)

// Bus publishes notifications and delivers them to subscribers.
// Implementations are safe for concurrent use.
type Bus interface {
	// Publish sends data to the subscribers of subject, on every node.
	// It does not wait for them; data may be lost (see the package doc).
	Publish(subject string, data []byte) error
	// Subscribe calls fn with the data of each notification on subject,
	// one at a time. fn must not block. The returned function ends the
	// subscription.
	Subscribe(subject string, fn func(data []byte)) (unsubscribe func(), err error)
	// Close releases the bus. Subscriptions end.
	Close() error
}

// Local is the in-process Bus: Publish calls the subject's subscribers
// directly, in the publisher's goroutine.
type Local struct {
	mu   sync.RWMutex
	next uint64
	subs map[string]map[uint64]func([]byte)
}

// NewLocal returns an empty in-process bus.
func NewLocal() *Local { return &Local{subs: make(map[string]map[uint64]func([]byte))} }

var _ Bus = (*Local)(nil)

// Publish implements Bus.
func (l *Local) Publish(subject string, data []byte) error {
	l.mu.RLock()
	defer l.mu.RUnlock()
	for _, fn := range l.subs[subject] {
		fn(data)
	}
	return nil
}

// Subscribe implements Bus.
func (l *Local) Subscribe(subject string, fn func([]byte)) (func(), error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.next++
	id := l.next
	m := l.subs[subject]
	if m == nil {
		m = make(map[uint64]func([]byte))
		l.subs[subject] = m
	}
	m[id] = fn
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		delete(l.subs[subject], id)
		if len(l.subs[subject]) == 0 {
			delete(l.subs, subject)
		}
	}, nil
}

// Close implements Bus.
func (l *Local) Close() error { return nil }
