package client

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hush-chat/hush/mls"
	"github.com/hush-chat/hush/proto"
)

// Sending is two-phase. A message is encrypted, and the group state that
// encrypting advanced is saved together with the message and an outbox
// entry, in one transaction; only then is it sent. Were the group state
// not saved first, a crash after sending would make the device encrypt
// its next message with the same ratchet key and nonce. The outbox entry
// is resent until the server answers; the resend carries the same client
// message id, so the server stores it once. A commit is merged into the
// group only after the server accepted it.

// outboxRecord is a send waiting for the server's answer.
type outboxRecord struct {
	Group     string     `json:"group"`
	Send      proto.Send `json:"send"`
	Commit    bool       `json:"commit,omitempty"`
	MessageID string     `json:"message_id,omitempty"` // the Message to mark sent
	Added     []string   `json:"added,omitempty"`      // users a commit adds
	Removed   []string   `json:"removed,omitempty"`    // users a commit removes
	// CallInvite is the id of the call this send invites to: once the
	// server has sequenced it, the call's state learns the invite's seq.
	CallInvite string `json:"call_invite,omitempty"`
}

// queue adds a send to the outbox. Keys order sends within a group.
func (tx *tx) queue(ob *outboxRecord) (string, error) {
	var n uint64
	if _, err := tx.get(tableMeta, "outbox-seq", &n); err != nil {
		return "", err
	}
	n++
	if err := tx.put(tableMeta, "outbox-seq", n); err != nil {
		return "", err
	}
	key := fmt.Sprintf("%s/%020d", ob.Group, n)
	return key, tx.put(tableOutbox, key, ob)
}

// flushOutbox delivers every queued send, in order. A send the server
// refused for good is dropped; a commit that lost its epoch is discarded.
// It stops at the first error that a retry may cure, such as the network.
func (c *Client) flushOutbox(ctx context.Context) error {
	type entry struct {
		key string
		ob  *outboxRecord
	}
	var queued []entry
	err := c.db.view(ctx, func(tx *tx) error {
		return tx.scan(tableOutbox, "", func(key string, decode func(any) error) error {
			var ob outboxRecord
			if err := decode(&ob); err != nil {
				return err
			}
			queued = append(queued, entry{key, &ob})
			return nil
		})
	})
	if err != nil {
		return err
	}
	for _, e := range queued {
		err := c.deliver(ctx, e.key, e.ob)
		if err != nil && !errors.Is(err, errEpochConflict) && !permanent(err) {
			return err
		}
	}
	return nil
}

// deliver sends one queued entry and records the outcome: the message is
// marked sent (or failed), a commit merged (or discarded).
func (c *Client) deliver(ctx context.Context, key string, ob *outboxRecord) error {
	var sent proto.Sent
	sendErr := c.call(ctx, "POST", groupPath(ob.Group), true, ob.Send, &sent)
	if sendErr != nil && !permanent(sendErr) {
		return sendErr
	}
	conflict := isCode(sendErr, proto.CodeEpochConflict)
	var events []Event
	uerr := c.db.update(ctx, func(tx *tx) error {
		if _, ok, err := tx.raw.Get(tableOutbox, key); err != nil || !ok {
			return err // another process finished it
		}
		if err := tx.delete(tableOutbox, key); err != nil {
			return err
		}
		if ob.Commit {
			g, err := tx.group(ob.Group)
			if err != nil || g == nil || !g.HasPendingCommit() {
				return err
			}
			defer g.Wipe()
			if sendErr == nil {
				return c.mergeOwnCommit(tx, ob, g, &events)
			}
			g.DiscardPendingCommit()
			return tx.putGroup(ob.Group, g)
		}
		if ob.CallInvite != "" && sendErr == nil {
			return tx.callSequenced(ob.Group, ob.CallInvite, sent.Seq)
		}
		if ob.MessageID == "" {
			return nil
		}
		m, err := tx.message(ob.Group, ob.MessageID)
		if err != nil || m == nil {
			return err
		}
		m.Pending = false
		if sendErr != nil {
			m.Failed = true
		} else {
			m.Seq, m.Time = sent.Seq, sent.Time
		}
		return tx.putMessage(m)
	})
	if uerr != nil {
		return uerr
	}
	c.emit(events)
	switch {
	case conflict:
		return errEpochConflict
	case sendErr != nil:
		return fmt.Errorf("client: the server refused a message: %w", sendErr)
	}
	return nil
}

// mergeOwnCommit applies our commit once the server accepted it.
func (c *Client) mergeOwnCommit(tx *tx, ob *outboxRecord, g *mls.Group, events *[]Event) error {
	if err := g.MergePendingCommit(); err != nil {
		return fmt.Errorf("client: merge our commit: %w", err)
	}
	if err := tx.putGroup(ob.Group, g); err != nil {
		return err
	}
	*events = append(*events, Event{Type: EventEpoch, Conversation: ob.Group})
	for _, u := range ob.Added {
		*events = append(*events, Event{Type: EventMemberAdded, Conversation: ob.Group, User: u})
	}
	for _, u := range ob.Removed {
		*events = append(*events, Event{Type: EventMemberRemoved, Conversation: ob.Group, User: u})
	}
	timer, err := timerOf(g.Extensions())
	if err != nil {
		return err
	}
	cv, err := tx.conv(ob.Group)
	if err != nil {
		return err
	}
	a, err := c.account()
	if err != nil {
		return err
	}
	return tx.noteTimer(cv, timer, a.Username, events)
}

// ErrInactive is returned when sending to a conversation this device is
// no longer (or not yet) a member of.
var ErrInactive = errors.New("client: this device is not a member of the conversation")

// sendContent encrypts a content to the conversation, applies it locally
// and delivers it. c.mu is held.
func (c *Client) sendContent(ctx context.Context, conv string, ct *Content) (*Message, error) {
	a, err := c.account()
	if err != nil {
		return nil, err
	}
	if err := c.flushOutbox(ctx); err != nil {
		return nil, err
	}
	if ct.ID == "" {
		ct.ID = NewMessageID()
	}
	ct.Version = ContentVersion
	var key string
	var ob *outboxRecord
	var events []Event
	err = c.db.update(ctx, func(tx *tx) error {
		cv, err := tx.conv(conv)
		if err != nil {
			return err
		}
		g, err := tx.group(conv)
		if err != nil {
			return err
		}
		if g == nil || !g.Active() || !cv.Active {
			return ErrInactive
		}
		defer g.Wipe()
		users := usersOf(g)
		if ct.Type != TypeMeta && ct.Type != TypeReceipt {
			if err := refuseChangedKeys(tx, users); err != nil {
				return err
			}
		}
		// A message carries the timer in force as it is encrypted.
		timer, err := timerOf(g.Extensions())
		if err != nil {
			return err
		}
		if ct.Type == TypeText || ct.Type == TypeAttachment {
			ct.Timer = uint32(timer / time.Second)
		}
		send, err := tx.expiringSend(conv, ct)
		if err != nil {
			return err
		}
		data, err := EncodeContent(ct)
		if err != nil {
			return err
		}
		defer clear(data)
		msg, err := g.Encrypt(data, nil)
		if err != nil {
			return fmt.Errorf("client: encrypt: %w", err)
		}
		if send.Payload, err = msg.Marshal(); err != nil {
			return err
		}
		if err := tx.putGroup(conv, g); err != nil {
			return err
		}
		now := c.o.Now().UTC()
		o := origin{user: a.Username, device: a.DeviceID, time: now, start: now, self: true}
		if err := c.apply(tx, cv, o, ct, users, &events); err != nil {
			return err
		}
		send.ClientMsgID, send.Kind, send.Epoch = ct.ID, proto.KindApplication, g.Epoch()
		ob = &outboxRecord{Group: conv, Send: send}
		if ct.Type == TypeCall && ct.Call.Op == CallInvite {
			ob.CallInvite = ct.Call.ID
		}
		if ct.Type == TypeText || ct.Type == TypeAttachment {
			ob.MessageID = ct.ID
			m, err := tx.message(conv, ct.ID)
			if err != nil {
				return err
			}
			m.Pending = true
			if err := tx.putMessage(m); err != nil {
				return err
			}
		}
		key, err = tx.queue(ob)
		return err
	})
	if err != nil {
		return nil, err
	}
	if ct.Timer > 0 {
		c.expiryChanged()
	}
	if err := c.deliver(ctx, key, ob); err != nil {
		c.emit(events) // the message is saved, pending or failed
		if !permanent(err) {
			return nil, fmt.Errorf("client: message saved, to be sent on the next sync: %w", err)
		}
		return nil, err
	}
	var m *Message
	if ob.MessageID != "" {
		if err := c.db.view(ctx, func(tx *tx) error {
			m, err = tx.message(conv, ob.MessageID)
			return err
		}); err != nil {
			return nil, err
		}
		if m == nil {
			return nil, fmt.Errorf("%w: the message was sent, and its timer has run out already", ErrNotFound)
		}
	}
	for i := range events {
		if events[i].Message != nil && m != nil && events[i].Message.ID == m.ID {
			events[i].Message = m
		}
	}
	c.emit(events)
	return m, nil
}

// refuseChangedKeys fails if a user of the group has an identity key
// that changed and was not accepted yet.
func refuseChangedKeys(tx *tx, users []string) error {
	var changed []string
	for _, u := range users {
		cr, err := tx.contact(u)
		if err != nil {
			return err
		}
		if cr != nil && cr.ChangedKey != nil {
			changed = append(changed, u)
		}
	}
	if len(changed) > 0 {
		return fmt.Errorf("%w: %s; compare safety numbers (hush verify) and accept the new key before sending", ErrIdentityChanged, strings.Join(changed, ", "))
	}
	return nil
}

// groupPath is the path of a group's log: the group id in unpadded
// base64url.
func groupPath(hexID string) string {
	gid, _ := hex.DecodeString(hexID)
	return pathWith(proto.PathGroupMessages, "id", base64.RawURLEncoding.EncodeToString(gid))
}
