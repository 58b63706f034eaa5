package client

import (
	"slices"
	"time"
)

// origin is who sent a content, and when the server accepted it.
type origin struct {
	user, device string
	time         time.Time
	seq          uint64
	self         bool // sent by one of our devices
	// start is when the timer of a disappearing message starts on this
	// device, by its clock: its sending, on the sender's devices; zero
	// on the others, where it starts when the message is first shown.
	start time.Time
}

// apply records the effect of a content on the conversation: the one
// path for what we receive and for what we send ourselves. members lists
// the users in the group, for a 1:1 chat's meta.
func (c *Client) apply(tx *tx, cv *Conversation, o origin, ct *Content, members []string, events *[]Event) error {
	ev := func(t EventType, m *Message, text string) {
		*events = append(*events, Event{Type: t, Conversation: cv.ID, Message: m, User: o.user, Device: o.device, Text: text})
	}
	switch ct.Type {
	case TypeText, TypeAttachment:
		// A repeated id is a duplicate: the first message keeps it, in
		// whichever conversation it came, so that a member of one
		// conversation cannot redirect replies to a message of another.
		if _, ok, err := tx.raw.Get(tableMessageConv, ct.ID); err != nil || ok {
			return err
		}
		m := &Message{ID: ct.ID, Conversation: cv.ID, Seq: o.seq, Sender: o.user, SenderDevice: o.device, Time: o.time,
			Type: ct.Type, Text: ct.Text, ReplyTo: ct.ReplyTo, Attachment: ct.Attachment, Outgoing: o.self, Timer: ct.timer()}
		if m.Timer > 0 && !o.start.IsZero() {
			m.Expires = o.start.Add(m.Timer)
			if !m.Expires.After(c.o.Now()) {
				return nil // sent by another of our devices, and gone there already
			}
			if err := tx.putExpiry(m); err != nil {
				return err
			}
		}
		if err := tx.putMessage(m); err != nil {
			return err
		}
		if o.time.After(cv.Last) {
			cv.Last = o.time
			if err := tx.putConv(cv); err != nil {
				return err
			}
		}
		ev(EventMessage, m, "")
	case TypeReaction:
		m, err := tx.message(cv.ID, ct.Target)
		if err != nil || m == nil || m.Deleted {
			return err
		}
		m.Reactions = slices.DeleteFunc(m.Reactions, func(r Reaction) bool { return r.User == o.user && r.Emoji == ct.Emoji })
		if !ct.Remove {
			m.Reactions = append(m.Reactions, Reaction{Emoji: ct.Emoji, User: o.user})
		}
		if err := tx.putMessage(m); err != nil {
			return err
		}
		ev(EventReaction, m, "")
	case TypeEdit, TypeDelete:
		m, err := tx.message(cv.ID, ct.Target)
		if err != nil || m == nil || m.Deleted {
			return err
		}
		if m.Sender != o.user {
			c.log.Warn("ignoring an edit or delete of another user's message", "conversation", cv.ID)
			return nil
		}
		if ct.Type == TypeEdit {
			m.Text, m.Edited = ct.Text, true
		} else {
			m.Deleted, m.Text, m.Attachment, m.Reactions = true, "", nil, nil
		}
		if err := tx.putMessage(m); err != nil {
			return err
		}
		ev(map[ContentType]EventType{TypeEdit: EventEdit, TypeDelete: EventDelete}[ct.Type], m, "")
	case TypeReceipt:
		for _, id := range ct.Targets {
			m, err := tx.message(cv.ID, id)
			if err != nil {
				return err
			}
			if m == nil {
				continue
			}
			switch {
			case o.self && !m.Outgoing && !m.Read:
				m.Read = true
			case !o.self && !slices.Contains(m.ReadBy, o.user):
				m.ReadBy = append(m.ReadBy, o.user)
			default:
				continue
			}
			if err := tx.putMessage(m); err != nil {
				return err
			}
			if !o.self {
				ev(EventReceipt, m, "")
			}
		}
	case TypeMeta:
		cv.Kind, cv.Name = ct.Meta.Kind, ct.Meta.Name
		if cv.Kind == KindDirect {
			me, _ := c.account()
			for _, u := range members {
				if me != nil && u != me.Username {
					cv.Peer = u
				}
			}
		}
		if err := tx.putConv(cv); err != nil {
			return err
		}
		ev(EventConversation, nil, "conversation: "+cv.Title())
	case TypeTyping:
		ev(EventTyping, nil, "")
	case TypeCall:
		return c.applyCall(tx, cv, o, ct.Call, events)
	}
	return nil
}
