package client

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hush-chat/hush/proto"
)

// Disappearing messages (see timer.go for the conversation's timer).
//
// A message's timer starts, on each device and by that device's clock:
//
//   - on the device that sent it, when it is sent;
//   - on the sender's other devices, at its sending too: when the message
//     arrives, its age is measured with the server's clock alone (the
//     envelope's time against the time of the fetch, proto.Messages.Time),
//     so that neither the sender's clock nor this device's is trusted;
//   - on the recipients' devices, when it is first shown there
//     ([Client.Shown]).
//
// From then on the message has an expiry, kept in an index of the local
// store (tableExpiry) whose row keys hold the expiry time and the
// conversation and message ids in clear, and nothing else. When it
// passes, the message is deleted: its row, its attachment's local copy and
// key, its reactions and edits (which live in its row), an unsent copy in
// the outbox; replies quote it by id only. The deletion happens at Open,
// before anything can be shown, and then, while the client is open, at
// each expiry to within a second, timers started by another process on
// the same store included. A Storage that keeps copies of deleted rows is
// then asked to drop them ([Scrubber]).
//
// The server keeps a disappearing message for the devices that have not
// received it yet, and deletes it once every device has it, or at the
// latest its timer plus a grace after it accepted it (proto.Send.Timer).
// The MLS keys that decrypted it were deleted as soon as it was decrypted
// (forward secrecy): a saved copy of its ciphertext decrypts nowhere.

// Scrubber is implemented by a Storage that may keep copies of rows it
// deleted, as SQLite's write-ahead log does. After deleting expired
// messages the client calls Scrub, which leaves no copy of a deleted row
// anywhere in the storage's files.
type Scrubber interface {
	Scrub(ctx context.Context) error
}

// expiryKey is a message's row in tableExpiry: its expiry, in Unix
// nanoseconds zero-padded so that keys sort by time, then the
// conversation and the message.
func expiryKey(m *Message) string {
	return fmt.Sprintf("%020d/%s/%s", max(m.Expires.UnixNano(), 0), m.Conversation, m.ID)
}

// parseExpiryKey splits an expiryKey.
func parseExpiryKey(key string) (at time.Time, conv, id string, ok bool) {
	parts := strings.Split(key, "/")
	if len(parts) != 3 {
		return time.Time{}, "", "", false
	}
	ns, err := strconv.ParseInt(parts[0], 10, 64)
	if err != nil {
		return time.Time{}, "", "", false
	}
	return time.Unix(0, ns), parts[1], parts[2], true
}

func (tx *tx) putExpiry(m *Message) error { return tx.put(tableExpiry, expiryKey(m), true) }

// expiringSend starts the Send of a content with what the server needs to
// delete it in time: the timer of a disappearing message, and the blob of
// its attachment; for a reaction, an edit or a deletion, the timer of the
// message it is about.
func (tx *tx) expiringSend(conv string, ct *Content) (proto.Send, error) {
	switch ct.Type {
	case TypeText:
		return proto.Send{Timer: ct.Timer}, nil
	case TypeAttachment:
		s := proto.Send{Timer: ct.Timer}
		if ct.Timer > 0 {
			s.Blobs = []string{ct.Attachment.BlobID}
		}
		return s, nil
	case TypeReaction, TypeEdit, TypeDelete:
		m, err := tx.message(conv, ct.Target)
		if err != nil || m == nil {
			return proto.Send{}, err
		}
		return proto.Send{Timer: uint32(m.Timer / time.Second)}, nil
	}
	return proto.Send{}, nil
}

// Shown records that messages were shown to the user, and starts the
// timer of each disappearing message that had not started on this device
// (see [Message]): it sets their Expires, in msgs and in the store. UIs
// call it for what they display; a message that has disappeared meanwhile
// is left as it is.
func (c *Client) Shown(ctx context.Context, msgs ...*Message) error {
	if !slices.ContainsFunc(msgs, func(m *Message) bool { return m.Timer > 0 && m.Expires.IsZero() }) {
		return nil
	}
	now := c.o.Now().UTC()
	started := false
	err := c.db.update(ctx, func(tx *tx) error {
		for _, m := range msgs {
			if m.Timer == 0 || !m.Expires.IsZero() {
				continue
			}
			stored, err := tx.message(m.Conversation, m.ID)
			if err != nil {
				return err
			}
			if stored == nil {
				continue
			}
			if stored.Expires.IsZero() {
				stored.Expires, started = now.Add(stored.Timer), true
				if err := tx.putMessage(stored); err != nil {
					return err
				}
				if err := tx.putExpiry(stored); err != nil {
					return err
				}
			}
			m.Expires = stored.Expires
		}
		return nil
	})
	if started {
		c.expiryChanged()
	}
	return err
}

// errStop ends a scan early.
var errStop = errors.New("stop")

// expire deletes the messages whose timer has run out, and returns when
// the next one does (zero if none has started). It is called by Open and
// then by expireLoop only, never concurrently.
func (c *Client) expire(ctx context.Context) (next time.Time, err error) {
	now := c.o.Now()
	// Find out whether anything is due without taking the write lock.
	due := false
	err = c.db.view(ctx, func(tx *tx) error {
		return scanExpiry(tx, func(at time.Time, _, _, _ string) error {
			if at.After(now) {
				next = at
			} else {
				due = true
			}
			return errStop
		})
	})
	if err != nil || !due && !c.unscrubbed {
		return next, err
	}
	type expired struct{ key, conv, id string }
	var gone []expired
	if due {
		err = c.db.update(ctx, func(tx *tx) error {
			next, gone = time.Time{}, nil
			err := scanExpiry(tx, func(at time.Time, key, conv, id string) error {
				if at.After(now) {
					next = at
					return errStop
				}
				gone = append(gone, expired{key, conv, id})
				return nil
			})
			if err != nil {
				return err
			}
			for _, e := range gone {
				if err := tx.forget(e.conv, e.id); err != nil {
					return err
				}
				if err := tx.delete(tableExpiry, e.key); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return next, err
		}
		c.unscrubbed = true
	}
	if s, ok := c.db.st.(Scrubber); ok {
		if err := s.Scrub(ctx); err != nil {
			return next, fmt.Errorf("client: scrub the local store: %w", err)
		}
	}
	c.unscrubbed = false
	events := make([]Event, len(gone))
	for i, e := range gone {
		events[i] = Event{Type: EventExpired, Conversation: e.conv, Message: &Message{ID: e.id, Conversation: e.conv}}
	}
	c.emit(events)
	return next, nil
}

// scanExpiry calls fn for the expiry index in time order, until fn
// returns an error; errStop ends it without one.
func scanExpiry(tx *tx, fn func(at time.Time, key, conv, id string) error) error {
	err := tx.raw.Scan(tableExpiry, "", func(key string, _ []byte) error {
		at, conv, id, ok := parseExpiryKey(key)
		if !ok {
			return errCorrupt
		}
		return fn(at, key, conv, id)
	})
	if errors.Is(err, errStop) {
		return nil
	}
	return err
}

// forget deletes a message and all that goes with it: its row (with its
// attachment's key, its reactions and edits), its attachment's local copy,
// and its send if it is still in the outbox.
func (tx *tx) forget(conv, id string) error {
	if err := tx.delete(tableMessages, messageKey(conv, id)); err != nil {
		return err
	}
	if err := tx.delete(tableMessageConv, id); err != nil {
		return err
	}
	if err := tx.dropLocalFile(id); err != nil {
		return err
	}
	var unsent []string
	err := tx.scan(tableOutbox, conv+"/", func(key string, decode func(any) error) error {
		var ob outboxRecord
		if err := decode(&ob); err != nil {
			return err
		}
		if ob.MessageID == id {
			unsent = append(unsent, key)
		}
		return nil
	})
	for _, key := range unsent {
		err = errors.Join(err, tx.delete(tableOutbox, key))
	}
	return err
}

// expiryChanged wakes the expiry loop after a timer started.
func (c *Client) expiryChanged() {
	select {
	case c.expiryWake <- struct{}{}:
	default:
	}
}

// expiryRescan is how often the expiry loop looks again at the index for
// timers that another process on the same store started (say, `hush read`
// while `hush watch` runs): often enough to find one before it runs out,
// as no timer is shorter than MinTimer.
const expiryRescan = MinTimer - time.Second

// expireLoop deletes messages as their timers run out, until ctx ends.
func (c *Client) expireLoop(ctx context.Context) {
	defer close(c.expiryDone)
	wait := time.NewTimer(0)
	defer wait.Stop()
	for {
		next, err := c.expire(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			c.log.Warn("deleting disappearing messages failed; retrying", "err", err)
			wait.Reset(time.Second)
		case next.IsZero():
			wait.Reset(expiryRescan)
		default:
			wait.Reset(min(max(next.Sub(c.o.Now()), 0), expiryRescan))
		}
		select {
		case <-ctx.Done():
			return
		case <-c.expiryWake:
		case <-wait.C:
		}
	}
}
