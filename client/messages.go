package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/hush-chat/hush/proto"
)

// SendText sends a text message to a conversation.
func (c *Client) SendText(ctx context.Context, conv, text string) (*Message, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sendContent(ctx, conv, &Content{Type: TypeText, Text: text})
}

// Reply sends a text message that quotes another message, in that
// message's conversation.
func (c *Client) Reply(ctx context.Context, to, text string) (*Message, error) {
	m, err := c.Message(ctx, to)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sendContent(ctx, m.Conversation, &Content{Type: TypeText, Text: text, ReplyTo: m.ID})
}

// React toggles our reaction with emoji on a message: it adds it, or
// takes it back if we had already reacted so. It returns the message as
// it now stands.
func (c *Client) React(ctx context.Context, to, emoji string) (*Message, error) {
	m, err := c.Message(ctx, to)
	if err != nil {
		return nil, err
	}
	a, err := c.account()
	if err != nil {
		return nil, err
	}
	remove := slices.Contains(m.Reactions, Reaction{Emoji: emoji, User: a.Username})
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := c.sendContent(ctx, m.Conversation, &Content{Type: TypeReaction, Target: m.ID, Emoji: emoji, Remove: remove}); err != nil {
		return nil, err
	}
	return c.Message(ctx, m.ID)
}

// ownMessage finds a message we sent (from any of our devices).
func (c *Client) ownMessage(ctx context.Context, id string) (*Message, error) {
	m, err := c.Message(ctx, id)
	if err != nil {
		return nil, err
	}
	a, err := c.account()
	if err != nil {
		return nil, err
	}
	if m.Sender != a.Username {
		return nil, errors.New("client: only its sender can edit or delete a message")
	}
	if m.Deleted {
		return nil, errors.New("client: the message was deleted")
	}
	return m, nil
}

// Edit replaces the text of a message we sent, for everyone.
func (c *Client) Edit(ctx context.Context, id, text string) (*Message, error) {
	m, err := c.ownMessage(ctx, id)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := c.sendContent(ctx, m.Conversation, &Content{Type: TypeEdit, Target: m.ID, Text: text}); err != nil {
		return nil, err
	}
	return c.Message(ctx, m.ID)
}

// Delete deletes a message we sent, for everyone: every device that
// receives the deletion forgets the message's content.
func (c *Client) Delete(ctx context.Context, id string) error {
	m, err := c.ownMessage(ctx, id)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	_, err = c.sendContent(ctx, m.Conversation, &Content{Type: TypeDelete, Target: m.ID})
	return err
}

// MarkRead sends a read receipt for the conversation's messages from
// others that we have not acknowledged yet (from any of our devices),
// and returns how many it covered.
func (c *Client) MarkRead(ctx context.Context, conv string) (int, error) {
	msgs, err := c.Messages(ctx, conv)
	if err != nil {
		return 0, err
	}
	var ids []string
	for _, m := range msgs {
		if !m.Outgoing && !m.Read && !m.Deleted {
			ids = append(ids, m.ID)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for batch := range slices.Chunk(ids, MaxReceiptBatch) {
		if _, err := c.sendContent(ctx, conv, &Content{Type: TypeReceipt, Targets: batch}); err != nil {
			return 0, err
		}
	}
	return len(ids), nil
}

// File is an attachment to send.
type File struct {
	Name        string
	ContentType string
	Size        int64
	Body        io.Reader
	// Progress, if set, is called as the encrypted upload goes, with
	// the bytes sent so far and the total.
	Progress func(done, total int64)
}

// SendAttachment encrypts a file with a fresh key, uploads the
// ciphertext as an opaque blob, and sends the key, digest and file name
// to the conversation inside the group. caption may be empty.
func (c *Client) SendAttachment(ctx context.Context, conv string, f File, caption string) (*Message, error) {
	if f.Size < 0 || EncryptedSize(f.Size) > proto.MaxBlobBytes {
		return nil, fmt.Errorf("client: attachments are limited to about %d MiB", proto.MaxBlobBytes>>20)
	}
	if len(f.Name) > MaxFileName {
		return nil, errors.New("client: file name too long")
	}
	enc, key, err := newAttachmentEncrypter(io.LimitReader(f.Body, f.Size+1))
	if err != nil {
		return nil, err
	}
	total := EncryptedSize(f.Size)
	var body io.Reader = enc
	if f.Progress != nil {
		body = &progressReader{r: enc, total: total, fn: f.Progress}
	}
	auth, err := c.authorization()
	if err != nil {
		return nil, err
	}
	tr, err := c.transport()
	if err != nil {
		return nil, err
	}
	resp, err := tr.Do(ctx, &Request{Method: "POST", Path: proto.PathBlobs, Auth: auth, Body: body, Size: total, ContentType: proto.ContentTypeBlob})
	if err != nil {
		return nil, fmt.Errorf("client: upload attachment: %w", err)
	}
	var ref proto.BlobRef
	err = decodeJSON(resp, &ref)
	if err != nil {
		return nil, fmt.Errorf("client: upload attachment: %w", err)
	}
	if enc.n != f.Size {
		return nil, fmt.Errorf("client: file changed while it was sent (%d bytes, expected %d)", enc.n, f.Size)
	}
	att := &Attachment{BlobID: ref.ID, Key: key, Size: f.Size, ContentType: f.ContentType, Name: f.Name, SHA256: enc.h.Sum(nil)}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sendContent(ctx, conv, &Content{Type: TypeAttachment, Text: caption, Attachment: att})
}

// DownloadAttachment decrypts a message's attachment to w and checks its
// size and digest: from this device's copy for a disappearing message
// received here, from the server otherwise. On error, w may have received
// unverified data, which the caller must discard.
func (c *Client) DownloadAttachment(ctx context.Context, msgID string, w io.Writer, progress func(done, total int64)) (*Message, error) {
	m, err := c.Message(ctx, msgID)
	if err != nil {
		return nil, err
	}
	if m.Attachment == nil {
		return nil, errors.New("client: the message has no attachment")
	}
	decrypt := func(src io.Reader) error {
		src = io.LimitReader(src, EncryptedSize(m.Attachment.Size)+1)
		if progress != nil {
			src = &progressReader{r: src, total: EncryptedSize(m.Attachment.Size), fn: progress}
		}
		return decryptAttachment(w, src, m.Attachment)
	}
	local := false
	err = c.db.view(ctx, func(tx *tx) error {
		f, err := tx.localFile(m.ID)
		if err != nil || f == nil {
			return err
		}
		local = true
		return decrypt(f)
	})
	if err != nil {
		return nil, err
	}
	if local {
		return m, nil
	}
	body, err := c.getBlob(ctx, m.Attachment.BlobID)
	if err != nil {
		return nil, fmt.Errorf("client: download attachment: %w", err)
	}
	defer body.Close()
	if err := decrypt(body); err != nil {
		return nil, err
	}
	return m, nil
}

type progressReader struct {
	r           io.Reader
	done, total int64
	fn          func(done, total int64)
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.done += int64(n)
	if n > 0 {
		p.fn(p.done, p.total)
	}
	return n, err
}
