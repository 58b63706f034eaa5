package client

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Conversation is an MLS group as this device knows it.
type Conversation struct {
	ID   string           `json:"id"` // the MLS group id, hex
	Kind ConversationKind `json:"kind"`
	Name string           `json:"name,omitempty"` // groups
	Peer string           `json:"peer,omitempty"` // 1:1 chats: the other user
	// Active is false once this device was removed from the group (or
	// before it joined: a conversation learnt from another of our devices
	// while linking, whose Welcome has not arrived yet).
	Active  bool      `json:"active"`
	Created time.Time `json:"created"`
	Last    time.Time `json:"last"` // time of the latest message
	// Timer is the disappearing-message timer messages sent now get (0:
	// off), as the group's state says; see [Client.SetTimer].
	Timer time.Duration `json:"timer,omitempty"`
}

// Title is how a UI names the conversation.
func (cv *Conversation) Title() string {
	switch {
	case cv.Kind == KindDirect && cv.Peer != "":
		return "@" + cv.Peer
	case cv.Name != "":
		return cv.Name
	}
	return "group " + cv.ID[:8]
}

// Message is a text or attachment message with what happened to it since:
// replies point to it, reactions, edits, deletion, read receipts.
type Message struct {
	ID           string      `json:"id"`
	Conversation string      `json:"conversation"`
	Seq          uint64      `json:"seq"` // the server's order; 0 until the server has it
	Sender       string      `json:"sender"`
	SenderDevice string      `json:"sender_device"`
	Time         time.Time   `json:"time"`
	Type         ContentType `json:"type"` // TypeText or TypeAttachment
	Text         string      `json:"text,omitempty"`
	ReplyTo      string      `json:"reply_to,omitempty"`
	Attachment   *Attachment `json:"attachment,omitempty"`
	Reactions    []Reaction  `json:"reactions,omitempty"`
	Edited       bool        `json:"edited,omitempty"`
	Deleted      bool        `json:"deleted,omitempty"`
	// ReadBy lists who sent a read receipt for the message.
	ReadBy []string `json:"read_by,omitempty"`
	// Outgoing is set for messages sent by one of our devices; Read for
	// others' messages once we sent a receipt (from any of our devices).
	Outgoing bool `json:"outgoing,omitempty"`
	Read     bool `json:"read,omitempty"`
	// Pending is set until the server has accepted the message; Failed if
	// it refused it.
	Pending bool `json:"pending,omitempty"`
	Failed  bool `json:"failed,omitempty"`
	// Timer is the disappearing-message timer the message was sent with
	// (0: it stays). Expires is when it disappears from this device, with
	// its attachment, reactions and edits: its timer starts when it is
	// sent on the sender's devices, and when it is first shown (see
	// [Client.Shown]) on the others; Expires is zero until then. A reply
	// holds only the id of the message it quotes, never its text, so the
	// quote goes with the message.
	Timer   time.Duration `json:"timer,omitempty"`
	Expires time.Time     `json:"expires,omitzero"`
}

// Reaction is one user's emoji on a message.
type Reaction struct {
	Emoji string `json:"emoji"`
	User  string `json:"user"`
}

// Member is one device in a conversation.
type Member struct {
	User   string
	Device string
	// Verified: the device's certificate checks against the user's
	// pinned identity key.
	Verified bool
	Self     bool // this device
}

// EventType says what an Event reports.
type EventType string

// Event types.
const (
	EventMessage         EventType = "message"          // a new message (Message)
	EventEdit            EventType = "edit"             // Message was edited
	EventDelete          EventType = "delete"           // Message was deleted for everyone
	EventReaction        EventType = "reaction"         // User reacted to Message
	EventReceipt         EventType = "receipt"          // User read Message
	EventTyping          EventType = "typing"           // User is typing
	EventMemberAdded     EventType = "member_added"     // User joined (all the devices added in one commit)
	EventMemberRemoved   EventType = "member_removed"   // User left or was removed
	EventConversation    EventType = "conversation"     // a conversation was joined, named or ended
	EventIdentityChanged EventType = "identity_changed" // User's identity key changed: a warning
	EventWarning         EventType = "warning"          // something to show the user (Text)
	EventTimer           EventType = "timer"            // User set the disappearing-message timer (Text says to what)
	EventExpired         EventType = "expired"          // Message (its ID and Conversation) disappeared: its timer ran out
	EventCall            EventType = "call"             // User's Device sent call signalling: Text is the CallOp, CallID the call (calls.go)
	EventEpoch           EventType = "epoch"            // the conversation's MLS epoch moved (a commit merged): a call's keys follow
)

// Event is something a UI may want to show. Events are emitted after the
// change they report is saved.
type Event struct {
	Type         EventType
	Conversation string
	Message      *Message
	User         string
	Device       string
	Text         string
	CallID       string // with EventCall
}

// ErrNotFound is returned for a conversation or message that does not
// exist on this device.
var ErrNotFound = errors.New("client: not found")

func (tx *tx) conv(id string) (*Conversation, error) {
	var cv Conversation
	ok, err := tx.get(tableConvs, id, &cv)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%w: conversation %s", ErrNotFound, shortID(id))
	}
	return &cv, nil
}

func (tx *tx) convs() ([]*Conversation, error) {
	var out []*Conversation
	err := tx.scan(tableConvs, "", func(_ string, decode func(any) error) error {
		var cv Conversation
		if err := decode(&cv); err != nil {
			return err
		}
		out = append(out, &cv)
		return nil
	})
	return out, err
}

func (tx *tx) putConv(cv *Conversation) error { return tx.put(tableConvs, cv.ID, cv) }

func messageKey(conv, id string) string { return conv + "/" + id }

// message returns a message of a conversation, or nil.
func (tx *tx) message(conv, id string) (*Message, error) {
	var m Message
	ok, err := tx.get(tableMessages, messageKey(conv, id), &m)
	if err != nil || !ok {
		return nil, err
	}
	return &m, nil
}

func (tx *tx) putMessage(m *Message) error {
	if err := tx.put(tableMessages, messageKey(m.Conversation, m.ID), m); err != nil {
		return err
	}
	return tx.put(tableMessageConv, m.ID, m.Conversation)
}

func shortID(id string) string { return id[:min(len(id), 8)] }

// Conversations lists this device's conversations, most recent first.
func (c *Client) Conversations(ctx context.Context) ([]*Conversation, error) {
	var out []*Conversation
	err := c.db.view(ctx, func(tx *tx) error {
		var err error
		out, err = tx.convs()
		return err
	})
	slices.SortStableFunc(out, func(a, b *Conversation) int { return b.Last.Compare(a.Last) })
	return out, err
}

// FindConversation finds a conversation by id or unique id prefix (at
// least 4 hex digits), by group name, or, for "@user" or a username, the
// 1:1 chat with that user.
func (c *Client) FindConversation(ctx context.Context, ref string) (*Conversation, error) {
	all, err := c.Conversations(ctx)
	if err != nil {
		return nil, err
	}
	var match []*Conversation
	pick := func(f func(*Conversation) bool) {
		if len(match) == 0 {
			for _, cv := range all {
				if f(cv) {
					match = append(match, cv)
				}
			}
		}
	}
	lower := strings.ToLower(ref)
	pick(func(cv *Conversation) bool { return cv.ID == lower })
	pick(func(cv *Conversation) bool { return cv.Kind == KindGroup && strings.EqualFold(cv.Name, ref) })
	user := strings.TrimPrefix(lower, "@")
	pick(func(cv *Conversation) bool { return cv.Kind == KindDirect && cv.Peer == user && cv.Active })
	if len(ref) >= 4 {
		pick(func(cv *Conversation) bool { return strings.HasPrefix(cv.ID, lower) })
	}
	switch len(match) {
	case 0:
		return nil, fmt.Errorf("%w: no conversation %q", ErrNotFound, ref)
	case 1:
		return match[0], nil
	}
	if match[0].Kind == KindDirect {
		return match[0], nil // the most recent 1:1 chat with the user
	}
	return nil, fmt.Errorf("client: %q names %d conversations; use its id", ref, len(match))
}

// Messages returns a conversation's messages in order: those the server
// has, by its sequence number, then those still pending.
func (c *Client) Messages(ctx context.Context, conv string) ([]*Message, error) {
	var out []*Message
	err := c.db.view(ctx, func(tx *tx) error {
		if _, err := tx.conv(conv); err != nil {
			return err
		}
		return tx.scan(tableMessages, conv+"/", func(_ string, decode func(any) error) error {
			var m Message
			if err := decode(&m); err != nil {
				return err
			}
			out = append(out, &m)
			return nil
		})
	})
	slices.SortStableFunc(out, func(a, b *Message) int {
		if (a.Seq == 0) != (b.Seq == 0) {
			if a.Seq == 0 {
				return 1
			}
			return -1
		}
		if a.Seq != b.Seq {
			if a.Seq < b.Seq {
				return -1
			}
			return 1
		}
		return a.Time.Compare(b.Time)
	})
	return out, err
}

// Message finds a message by id or unique id prefix (at least 4 hex
// digits).
func (c *Client) Message(ctx context.Context, id string) (*Message, error) {
	id = strings.ToLower(id)
	if len(id) < 4 {
		return nil, fmt.Errorf("client: message id %q is too short", id)
	}
	var out *Message
	err := c.db.view(ctx, func(tx *tx) error {
		var convs, ids []string
		err := tx.scan(tableMessageConv, id, func(key string, decode func(any) error) error {
			var conv string
			if err := decode(&conv); err != nil {
				return err
			}
			convs, ids = append(convs, conv), append(ids, key)
			return nil
		})
		if err != nil {
			return err
		}
		switch len(ids) {
		case 0:
			return fmt.Errorf("%w: no message %s", ErrNotFound, id)
		case 1:
		default:
			return fmt.Errorf("client: %d messages start with %s; give more of the id", len(ids), id)
		}
		out, err = tx.message(convs[0], ids[0])
		if err == nil && out == nil {
			err = fmt.Errorf("%w: no message %s", ErrNotFound, id)
		}
		return err
	})
	return out, err
}
