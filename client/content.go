package client

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
)

// Content is what one MLS application message carries: the message model,
// end to end encrypted, never visible to the server. It is encoded as JSON
// (see [EncodeContent]); Type says which fields are set:
//
//	text        Text; ReplyTo when it answers another message; Timer
//	attachment  Attachment; Text is an optional caption; ReplyTo; Timer
//	reaction    Target, Emoji; Remove takes the reaction back
//	edit        Target, Text: new text for a message of the same sender
//	delete      Target: delete a message of the same sender for everyone
//	receipt     Targets: messages the sender has read
//	typing      nothing: sent live over the WebSocket, never stored
//	meta        Meta: the conversation's kind and name
//	call        Call: call signalling (invite, join, decline, leave; calls.go)
//
// Every content has a fresh random ID (16 bytes, hex), which is also the
// client message id that makes the send idempotent. Timer, in seconds, is
// the disappearing-message timer in force when a message was sent (0: it
// stays); the message keeps it whatever the conversation's timer becomes.
// Version 1 is the only version; a content of a later version, or of a
// type this client does not know (as "call" is to older clients), fails to decode with [ErrUnsupportedContent] and is skipped.
type Content struct {
	Version    int         `json:"v"`
	ID         string      `json:"id"`
	Type       ContentType `json:"t"`
	Text       string      `json:"text,omitempty"`
	ReplyTo    string      `json:"reply_to,omitempty"`
	Target     string      `json:"target,omitempty"`
	Targets    []string    `json:"targets,omitempty"`
	Emoji      string      `json:"emoji,omitempty"`
	Remove     bool        `json:"remove,omitempty"`
	Attachment *Attachment `json:"attachment,omitempty"`
	Meta       *Meta       `json:"meta,omitempty"`
	Call       *CallSignal `json:"call,omitempty"`
	Timer      uint32      `json:"timer,omitempty"`
}

// ContentType is the kind of a [Content].
type ContentType string

// Content types.
const (
	TypeText       ContentType = "text"
	TypeAttachment ContentType = "attachment"
	TypeReaction   ContentType = "reaction"
	TypeEdit       ContentType = "edit"
	TypeDelete     ContentType = "delete"
	TypeReceipt    ContentType = "receipt"
	TypeTyping     ContentType = "typing"
	TypeMeta       ContentType = "meta"
	TypeCall       ContentType = "call"
)

// ContentVersion is the version of the encoding.
const ContentVersion = 1

// Limits of a content.
const (
	MaxTextBytes    = 64 << 10
	MaxEmojiBytes   = 32
	MaxNameBytes    = 128
	MaxFileName     = 255
	MaxReceiptBatch = 500
	// MaxContentBytes bounds an encoded content; an MLS message must fit
	// in proto.MaxMessageBytes with room for its framing.
	MaxContentBytes = 128 << 10
)

// Meta describes a conversation. It travels inside the group, so the
// server never learns a group's name.
type Meta struct {
	Kind ConversationKind `json:"kind"`
	Name string           `json:"name,omitempty"`
}

// ConversationKind says whether a conversation is a 1:1 chat or a group.
type ConversationKind string

// Conversation kinds.
const (
	KindDirect ConversationKind = "direct"
	KindGroup  ConversationKind = "group"
)

// Attachment describes an encrypted file (see [EncryptAttachment]). Its
// Key is secret.
type Attachment struct {
	BlobID      string `json:"blob_id"`
	Key         []byte `json:"key"`
	Size        int64  `json:"size"` // plaintext bytes
	ContentType string `json:"content_type,omitempty"`
	Name        string `json:"name,omitempty"`
	SHA256      []byte `json:"sha256"` // of the plaintext
}

// ErrUnsupportedContent is returned by [DecodeContent] for a valid content
// of a version or type this client does not know.
var ErrUnsupportedContent = errors.New("client: unsupported content")

// errBadContent is returned by DecodeContent for malformed content.
var errBadContent = errors.New("client: malformed content")

// NewMessageID returns a fresh message id: 16 random bytes in hex.
func NewMessageID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func validID(id string) bool {
	if len(id) != 32 {
		return false
	}
	for i := range len(id) {
		if c := id[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// EncodeContent encodes c after checking it.
func EncodeContent(c *Content) ([]byte, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	b, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	if len(b) > MaxContentBytes {
		return nil, fmt.Errorf("%w: content is %d bytes, more than %d", errBadContent, len(b), MaxContentBytes)
	}
	return b, nil
}

// DecodeContent decodes and checks a content. Unknown fields are ignored,
// so that a later version may add some.
func DecodeContent(data []byte) (*Content, error) {
	if len(data) > MaxContentBytes {
		return nil, errBadContent
	}
	d := json.NewDecoder(bytes.NewReader(data))
	var c Content
	if err := d.Decode(&c); err != nil {
		return nil, errBadContent
	}
	if d.More() {
		return nil, errBadContent
	}
	if c.Version != ContentVersion {
		return nil, fmt.Errorf("%w: version %d", ErrUnsupportedContent, c.Version)
	}
	if err := c.check(); err != nil {
		return nil, err
	}
	return &c, nil
}

// check enforces what each type must and must not carry.
func (c *Content) check() error {
	switch c.Type {
	case TypeText, TypeAttachment, TypeReaction, TypeEdit, TypeDelete, TypeReceipt, TypeTyping, TypeMeta, TypeCall:
	default:
		// The type is not echoed: errors are logged, and it came from
		// another member.
		return fmt.Errorf("%w: unknown type", ErrUnsupportedContent)
	}
	bad := func(why string) error { return fmt.Errorf("%w: %s %s", errBadContent, c.Type, why) }
	if c.Version != ContentVersion {
		return bad("has an unknown version")
	}
	if !validID(c.ID) {
		return bad("has an invalid id")
	}
	if !utf8.ValidString(c.Text) || len(c.Text) > MaxTextBytes {
		return bad("text is not UTF-8 or too long")
	}
	if c.ReplyTo != "" && (c.Type != TypeText && c.Type != TypeAttachment || !validID(c.ReplyTo)) {
		return bad("has an invalid reply")
	}
	if c.Timer != 0 && (c.Type != TypeText && c.Type != TypeAttachment || CheckTimer(c.timer()) != nil) {
		return bad("has an invalid timer")
	}
	needTarget := c.Type == TypeReaction || c.Type == TypeEdit || c.Type == TypeDelete
	if needTarget != (c.Target != "") || c.Target != "" && !validID(c.Target) {
		return bad("has an invalid target")
	}
	if (c.Type == TypeReceipt) != (len(c.Targets) > 0) || len(c.Targets) > MaxReceiptBatch {
		return bad("has invalid receipt targets")
	}
	for _, t := range c.Targets {
		if !validID(t) {
			return bad("has an invalid receipt target")
		}
	}
	if (c.Type == TypeReaction) != (c.Emoji != "") || len(c.Emoji) > MaxEmojiBytes || !utf8.ValidString(c.Emoji) {
		return bad("has an invalid emoji")
	}
	if c.Remove && c.Type != TypeReaction {
		return bad("has a stray remove flag")
	}
	if (c.Type == TypeAttachment) != (c.Attachment != nil) {
		return bad("has a stray or missing attachment")
	}
	if c.Attachment != nil {
		if err := c.Attachment.check(); err != nil {
			return err
		}
	}
	if (c.Type == TypeMeta) != (c.Meta != nil) {
		return bad("has a stray or missing meta")
	}
	if c.Meta != nil && (c.Meta.Kind != KindDirect && c.Meta.Kind != KindGroup ||
		len(c.Meta.Name) > MaxNameBytes || !utf8.ValidString(c.Meta.Name)) {
		return bad("has an invalid meta")
	}
	if (c.Type == TypeCall) != (c.Call != nil) {
		return bad("has a stray or missing call")
	}
	if c.Call != nil {
		if err := c.Call.check(); err != nil {
			return err
		}
	}
	switch c.Type {
	case TypeText, TypeEdit:
		if c.Text == "" {
			return bad("has no text")
		}
	case TypeReaction, TypeDelete, TypeReceipt, TypeTyping, TypeMeta, TypeCall:
		if c.Text != "" {
			return bad("has stray text")
		}
	}
	return nil
}

// timer is the content's Timer as a duration.
func (c *Content) timer() time.Duration { return time.Duration(c.Timer) * time.Second }

func (a *Attachment) check() error {
	if a.BlobID == "" || len(a.BlobID) > 128 || len(a.Key) != attachmentKeySize || a.Size < 0 ||
		len(a.SHA256) != 32 || len(a.Name) > MaxFileName || len(a.ContentType) > 255 ||
		!utf8.ValidString(a.Name) || !utf8.ValidString(a.ContentType) {
		return fmt.Errorf("%w: invalid attachment", errBadContent)
	}
	return nil
}
