package client

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/hush-chat/hush/mls"
	"github.com/hush-chat/hush/proto"
)

// Receiving is exactly-once. A fetched batch is processed in one
// transaction that saves, together, the MLS state of every group it
// advanced, the messages it decrypted and the cursor (the last sequence
// number processed) of every log it read; only after that transaction
// commits is the server acknowledged. A crash before the commit loses
// nothing: the server has not been acknowledged and hands the batch out
// again. A crash after it and before the acknowledgement makes the server
// hand out messages already processed: the cursors, checked in the same
// transaction, skip them.

// inboxCursor is the cursor key of the device's inbox (Welcomes).
const inboxCursor = "inbox"

// Sync fetches and processes everything the server holds for this
// device, then tops up its KeyPackages if they run low (checked at most
// once a minute).
func (c *Client) Sync(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.syncLocked(ctx); err != nil {
		return err
	}
	if now := c.o.Now(); now.Sub(c.refilled) >= refillInterval {
		if err := c.refillKeyPackages(ctx); err != nil {
			return err
		}
		c.refilled = now
	}
	return nil
}

// refillInterval spaces the KeyPackage checks of a device that syncs
// often (on every push, under Run).
const refillInterval = time.Minute

// maxSyncRounds bounds the fetches of one sync.
const maxSyncRounds = 1000

// syncLocked is Sync without the KeyPackage refill; c.mu is held.
func (c *Client) syncLocked(ctx context.Context) error {
	var joined []string
	err := c.fetchAll(ctx, &joined)
	for _, conv := range joined {
		if aerr := c.addOwnDevices(ctx, conv); aerr != nil {
			c.log.Warn("could not add this account's other devices to a conversation it joined", "conversation", shortID(conv), "err", aerr)
		}
	}
	return err
}

// fetchAll fetches, processes and acknowledges everything pending, and
// adds to joined the conversations this device joined meanwhile.
func (c *Client) fetchAll(ctx context.Context, joined *[]string) error {
	if err := c.flushOutbox(ctx); err != nil {
		return err
	}
	for range maxSyncRounds {
		var msgs proto.Messages
		if err := c.call(ctx, "GET", proto.PathMessages, true, nil, &msgs); err != nil {
			return fmt.Errorf("client: fetch: %w", err)
		}
		if len(msgs.Messages) == 0 {
			return nil
		}
		clk := clocks{local: c.o.Now(), server: msgs.Time}
		acks, fresh, events, err := c.processBatch(ctx, msgs.Messages, clk)
		if errors.Is(err, errPendingCommit) {
			// Another process of this device has a commit in flight:
			// learn its fate before reading the group on.
			if err := c.flushOutbox(ctx); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		c.expiryChanged()
		c.emit(events)
		for _, e := range events {
			if e.Type == EventConversation && e.Text == joinedText && !slices.Contains(*joined, e.Conversation) {
				*joined = append(*joined, e.Conversation)
			}
		}
		// The server deletes a disappearing message's attachment once
		// every device has acknowledged the message.
		if err := c.fetchAttachments(ctx); err != nil {
			return err
		}
		if err := c.ack(ctx, acks); err != nil {
			return err
		}
		if !msgs.More || fresh == 0 {
			return nil
		}
	}
	return nil
}

// ack acknowledges processed logs. A log the server refuses to
// acknowledge for good (this device left its roster meanwhile) is
// skipped: it will not be handed out again.
func (c *Client) ack(ctx context.Context, acks proto.Ack) error {
	if len(acks.Acks) == 0 {
		return nil
	}
	err := c.call(ctx, "POST", proto.PathAck, true, acks, nil)
	switch {
	case err == nil:
		return nil
	case !permanent(err):
		return fmt.Errorf("client: ack: %w", err)
	case len(acks.Acks) == 1:
		c.log.Info("acknowledgement refused", "err", err)
		return nil
	}
	for _, item := range acks.Acks {
		if err := c.ack(ctx, proto.Ack{Acks: []proto.AckItem{item}}); err != nil {
			return err
		}
	}
	return nil
}

// errPendingCommit stops a batch that reaches a group whose own commit
// awaits the server's answer.
var errPendingCommit = errors.New("client: a commit of this device awaits the server's answer")

// clocks are the two readings of a fetch: this device's clock when it
// got the answer, and the server's when it sent it (zero from a server
// that does not say).
type clocks struct{ local, server time.Time }

// sent is when a message the server accepted at accepted was sent, by
// the local clock: the message's age is measured on the server's clock
// alone.
func (k clocks) sent(accepted time.Time) time.Time {
	if k.server.IsZero() {
		return k.local
	}
	return k.local.Add(-max(k.server.Sub(accepted), 0))
}

// batch is the state of one processing transaction.
type batch struct {
	c       *Client
	ctx     context.Context
	tx      *tx
	acct    *accountRecord
	clocks  clocks
	groups  map[string]*mls.Group // loaded and possibly advanced
	dirty   map[string]bool
	cursors map[string]uint64
	events  []Event
}

// processBatch processes envelopes in one transaction. It returns the
// acknowledgements to send and how many envelopes were new.
func (c *Client) processBatch(ctx context.Context, envs []proto.Envelope, clk clocks) (proto.Ack, int, []Event, error) {
	a, err := c.account()
	if err != nil {
		return proto.Ack{}, 0, nil, err
	}
	var acks proto.Ack
	fresh := 0
	var events []Event
	err = c.db.update(ctx, func(tx *tx) error {
		b := &batch{c: c, ctx: ctx, tx: tx, acct: a, clocks: clk, groups: map[string]*mls.Group{}, dirty: map[string]bool{}, cursors: map[string]uint64{}}
		defer func() {
			for _, g := range b.groups {
				g.Wipe()
			}
		}()
		ackAt := map[string]uint64{}
		var order []string
		for i := range envs {
			env := &envs[i]
			key := inboxCursor
			if !env.Inbox {
				key = hex.EncodeToString(env.GroupID)
			}
			cur, err := b.cursor(key)
			if err != nil {
				return err
			}
			if env.Seq > cur {
				fresh++
				if err := b.process(env, key); err != nil {
					return err
				}
				b.cursors[key] = env.Seq
			}
			if _, ok := ackAt[key]; !ok {
				order = append(order, key)
			}
			ackAt[key] = max(ackAt[key], env.Seq)
		}
		for id := range b.dirty {
			if err := tx.putGroup(id, b.groups[id]); err != nil {
				return err
			}
		}
		for key, seq := range b.cursors {
			if err := tx.put(tableCursors, key, seq); err != nil {
				return err
			}
		}
		for _, key := range order {
			if key == inboxCursor {
				acks.Acks = append(acks.Acks, proto.AckItem{Inbox: true, Seq: ackAt[key]})
			} else {
				gid, _ := hex.DecodeString(key)
				acks.Acks = append(acks.Acks, proto.AckItem{GroupID: gid, Seq: ackAt[key]})
			}
		}
		events = b.events
		return nil
	})
	return acks, fresh, events, err
}

func (b *batch) cursor(key string) (uint64, error) {
	if v, ok := b.cursors[key]; ok {
		return v, nil
	}
	var v uint64
	_, err := b.tx.get(tableCursors, key, &v)
	return v, err
}

// group returns the batch's copy of a group, or nil.
func (b *batch) group(id string) (*mls.Group, error) {
	if g, ok := b.groups[id]; ok {
		return g, nil
	}
	g, err := b.tx.group(id)
	if err != nil || g == nil {
		return nil, err
	}
	if g.HasPendingCommit() {
		g.Wipe()
		return nil, errPendingCommit
	}
	b.groups[id] = g
	return g, nil
}

// process handles one new envelope. Errors from MLS or malformed content
// skip the envelope (it can never succeed); errors from the store or the
// network abort the batch, to be retried.
func (b *batch) process(env *proto.Envelope, key string) error {
	var err error
	switch {
	case env.Inbox && env.Kind == proto.KindWelcome:
		err = b.welcome(env)
	case env.Inbox:
		err = skip("unexpected %s in the inbox", env.Kind)
	default:
		err = b.groupMessage(env, key)
	}
	var s skipError
	if !errors.As(err, &s) {
		return err
	}
	b.c.log.Warn("skipping a message that does not process", "log", shortID(key), "seq", env.Seq, "reason", s.reason)
	if env.Kind == proto.KindCommit && !env.Inbox {
		b.events = append(b.events, Event{Type: EventWarning, Conversation: key,
			Text: "a change to this conversation could not be applied; messages after it may not decrypt on this device"})
	}
	return nil
}

// skipError marks an envelope that cannot be processed, ever.
type skipError struct{ reason string }

func (s skipError) Error() string { return "client: skipped: " + s.reason }

func skip(format string, args ...any) error { return skipError{fmt.Sprintf(format, args...)} }

// joinedText is the text of the event of a Welcome that joined a group.
const joinedText = "this device joined the conversation"

// welcome joins a group from a Welcome made for one of our KeyPackages.
func (b *batch) welcome(env *proto.Envelope) error {
	m, err := mls.UnmarshalMLSMessage(env.Payload)
	if err != nil || m.WireFormat != mls.WireFormatWelcome {
		return skip("malformed Welcome")
	}
	var kp *mls.KeyPackagePrivate
	var ref string
	for _, s := range m.Welcome.Secrets {
		ref = hex.EncodeToString(s.NewMember)
		var data []byte
		ok, err := b.tx.get(tableKeyPackages, ref, &data)
		if err != nil {
			return err
		}
		if ok {
			kp, err = mls.UnmarshalKeyPackagePrivate(data)
			clear(data)
			if err != nil {
				return err
			}
			break
		}
	}
	if kp == nil {
		return skip("Welcome for none of our KeyPackages")
	}
	lastResort := kp.KeyPackage.IsLastResort()
	g, err := mls.Join(m.Welcome, kp, mls.JoinOptions{})
	kp.Wipe()
	if err != nil {
		return skip("Welcome does not join: %v", err)
	}
	timer, err := timerOf(g.Extensions())
	if err != nil {
		g.Wipe()
		return skip("Welcome to a group with an invalid timer: %v", err)
	}
	if !lastResort {
		if err := b.tx.delete(tableKeyPackages, ref); err != nil {
			g.Wipe()
			return err
		}
	}
	id := hex.EncodeToString(g.GroupID())
	if old, ok := b.groups[id]; ok {
		old.Wipe()
	}
	b.groups[id], b.dirty[id] = g, true
	cv, err := b.tx.conv(id)
	if errors.Is(err, ErrNotFound) {
		// Until the group's meta message arrives, a group of two users
		// looks like a 1:1 chat.
		cv, err = &Conversation{ID: id, Kind: KindGroup, Created: env.Time}, nil
	}
	if err != nil {
		return err
	}
	cv.Active, cv.Last = true, env.Time
	if err := b.tx.putConv(cv); err != nil {
		return err
	}
	b.events = append(b.events, Event{Type: EventConversation, Conversation: id, Text: joinedText})
	if err := b.tx.noteTimer(cv, timer, "", &b.events); err != nil {
		return err
	}
	for _, mem := range g.Members() {
		if mem.Index == g.Index() {
			continue
		}
		if err := b.c.checkMember(b.ctx, b.tx, id, mem, &b.events); err != nil {
			return err
		}
	}
	return nil
}

// groupMessage processes a message of a group's log.
func (b *batch) groupMessage(env *proto.Envelope, id string) error {
	g, err := b.group(id)
	if err != nil {
		return err
	}
	if g == nil {
		return skip("message for a group this device is not in")
	}
	m, err := mls.UnmarshalMLSMessage(env.Payload)
	if err != nil {
		return skip("malformed MLS message")
	}
	ev, err := g.Process(m)
	if err != nil {
		return skip("MLS: %v", err)
	}
	b.dirty[id] = true
	cv, err := b.tx.conv(id)
	if err != nil {
		return err
	}
	switch ev := ev.(type) {
	case *mls.ApplicationMessage:
		return b.application(g, cv, env, ev)
	case *mls.StagedCommit:
		return b.commit(g, cv, ev)
	}
	return nil // a proposal, now cached in the group
}

func (b *batch) application(g *mls.Group, cv *Conversation, env *proto.Envelope, am *mls.ApplicationMessage) error {
	defer clear(am.Data)
	o, err := senderOf(g, am.Sender, b.acct)
	if err != nil {
		return err
	}
	o.time, o.seq = env.Time, env.Seq
	ct, err := DecodeContent(am.Data)
	if err != nil {
		return skip("content: %v", err)
	}
	if ct.Type == TypeTyping {
		return nil // live only; never stored
	}
	if o.self {
		o.start = b.clocks.sent(env.Time) // a disappearing message's timer runs from its sending
	}
	if err := b.c.apply(b.tx, cv, o, ct, usersOf(g), &b.events); err != nil {
		return err
	}
	if ct.Type != TypeAttachment || ct.Timer == 0 {
		return nil
	}
	if m, err := b.tx.message(cv.ID, ct.ID); err != nil || m == nil {
		return err
	}
	return b.tx.queueFetch(cv.ID, ct.ID)
}

// senderOf names the member at a leaf.
func senderOf(g *mls.Group, leaf uint32, a *accountRecord) (origin, error) {
	m, ok := g.Member(leaf)
	if !ok {
		return origin{}, skip("sender is not a member")
	}
	user, dev, ok := parseCredential(m.Credential)
	if !ok {
		return origin{}, skip("sender has a malformed credential")
	}
	return origin{user: user, device: dev, self: user == a.Username}, nil
}

func (b *batch) commit(g *mls.Group, cv *Conversation, sc *mls.StagedCommit) error {
	// The timer is checked before the commit is merged: one that sets a
	// value out of range is refused like any bad commit.
	timer, err := timerOf(sc.Extensions())
	if err != nil {
		return skip("commit sets an invalid timer: %v", err)
	}
	var committer string
	if sc.Committer.Type == mls.SenderMember {
		if o, err := senderOf(g, sc.Committer.Index, b.acct); err == nil {
			committer = o.user
		}
	}
	before := usersOf(g)
	if err := g.Merge(sc); err != nil {
		return skip("merge: %v", err)
	}
	if err := b.tx.dropQueuedCommits(cv.ID); err != nil {
		return err
	}
	b.events = append(b.events, Event{Type: EventEpoch, Conversation: cv.ID})
	if sc.SelfRemoved || !g.Active() {
		cv.Active = false
		b.events = append(b.events, Event{Type: EventConversation, Conversation: cv.ID, Text: "this device was removed from the conversation"})
		return b.tx.putConv(cv)
	}
	for _, i := range sc.Added {
		if m, ok := g.Member(i); ok {
			if err := b.c.checkMember(b.ctx, b.tx, cv.ID, m, &b.events); err != nil {
				return err
			}
		}
	}
	after := usersOf(g)
	for _, u := range after {
		if !slices.Contains(before, u) {
			b.events = append(b.events, Event{Type: EventMemberAdded, Conversation: cv.ID, User: u})
		}
	}
	for _, u := range before {
		if !slices.Contains(after, u) {
			b.events = append(b.events, Event{Type: EventMemberRemoved, Conversation: cv.ID, User: u})
		}
	}
	return b.tx.noteTimer(cv, timer, committer, &b.events)
}

// dropQueuedCommits forgets our queued commits to a group once another
// commit won their epoch.
func (tx *tx) dropQueuedCommits(group string) error {
	var drop []string
	err := tx.scan(tableOutbox, group+"/", func(key string, decode func(any) error) error {
		var ob outboxRecord
		if err := decode(&ob); err != nil {
			return err
		}
		if ob.Commit {
			drop = append(drop, key)
		}
		return nil
	})
	for _, k := range drop {
		err = errors.Join(err, tx.delete(tableOutbox, k))
	}
	return err
}

// Run keeps this device in sync until ctx ends: it holds a WebSocket
// open, catches up on connecting, processes what the server pushes, and
// reconnects with backoff when the connection drops. Events reach
// Options.OnEvent.
func (c *Client) Run(ctx context.Context) error {
	backoff := time.Second
	for {
		start := time.Now()
		err := c.runOnce(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if isCode(err, proto.CodeUnauthorized) {
			return err // this device was revoked
		}
		if time.Since(start) > time.Minute {
			backoff = time.Second
		}
		c.log.Info("push connection lost; reconnecting", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

// runOnce serves one push connection.
func (c *Client) runOnce(ctx context.Context) error {
	tr, err := c.transport()
	if err != nil {
		return err
	}
	auth, err := c.authorization()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	conn, err := tr.Connect(ctx, auth)
	if err != nil {
		return err
	}
	defer conn.Close()
	c.amu.Lock()
	c.live = conn
	c.amu.Unlock()
	defer func() {
		c.amu.Lock()
		if c.live == conn {
			c.live = nil
		}
		c.amu.Unlock()
	}()
	c.connected()
	wake := make(chan struct{}, 1)
	wake <- struct{}{} // catch up first
	readErr := make(chan error, 1)
	go func() { readErr <- c.readPush(ctx, conn, wake) }()
	ping := time.NewTicker(pingInterval)
	defer ping.Stop()
	for {
		select {
		case err := <-readErr:
			return err
		case <-wake:
			if err := c.Sync(ctx); err != nil {
				return err
			}
		case <-ping.C:
			// The server closes connections idle for 90 seconds.
			if err := conn.Write(ctx, &proto.Frame{Type: proto.FramePing}); err != nil {
				return err
			}
		}
	}
}

// pingInterval is how often Run pings the server.
const pingInterval = 30 * time.Second

// readPush reads frames: a pushed message wakes the sync loop (which
// fetches in order, so a push never overtakes the log), typing is
// decrypted and shown, pings are answered.
func (c *Client) readPush(ctx context.Context, conn PushConn, wake chan<- struct{}) error {
	for {
		f, err := conn.Read(ctx)
		if err != nil {
			return err
		}
		switch f.Type {
		case proto.FrameMessage:
			select {
			case wake <- struct{}{}:
			default:
			}
		case proto.FrameTyping:
			if f.Typing != nil {
				c.typing(ctx, f.Typing)
			}
		case proto.FrameCall:
			if f.Call != nil {
				c.callFrame(f.Call)
			}
		case proto.FramePing:
			if err := conn.Write(ctx, &proto.Frame{Type: proto.FramePong, ID: f.ID}); err != nil {
				return err
			}
		case proto.FrameError:
			if f.Error != nil {
				c.log.Warn("push connection error", "code", f.Error.Code)
			}
		}
	}
}

// typing decrypts a typing signal with a copy of the group that is not
// saved: the signal is live only, and what it consumed of the sender's
// ratchet is a key the stored group keeps as skipped.
func (c *Client) typing(ctx context.Context, t *proto.Typing) {
	a, err := c.account()
	if err != nil {
		return
	}
	id := hex.EncodeToString(t.GroupID)
	g, err := c.MLSGroup(ctx, id)
	if err != nil {
		return
	}
	defer g.Wipe()
	m, err := mls.UnmarshalMLSMessage(t.Payload)
	if err != nil {
		return
	}
	ev, err := g.Process(m)
	am, ok := ev.(*mls.ApplicationMessage)
	if err != nil || !ok {
		return
	}
	ct, err := DecodeContent(am.Data)
	if err != nil || ct.Type != TypeTyping {
		return
	}
	o, err := senderOf(g, am.Sender, a)
	if err != nil || o.device == a.DeviceID {
		return
	}
	c.emit([]Event{{Type: EventTyping, Conversation: id, User: o.user, Device: o.device}})
}

// ErrOffline is returned by SendTyping when no push connection is open
// (see Run).
var ErrOffline = errors.New("client: no live connection")

// SendTyping tells the conversation's online members that we are typing.
// It needs the push connection of Run; nothing is stored anywhere.
func (c *Client) SendTyping(ctx context.Context, conv string) error {
	c.amu.Lock()
	conn := c.live
	c.amu.Unlock()
	if conn == nil {
		return ErrOffline
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	ct := &Content{Version: ContentVersion, ID: NewMessageID(), Type: TypeTyping}
	data, err := EncodeContent(ct)
	if err != nil {
		return err
	}
	var payload []byte
	err = c.db.update(ctx, func(tx *tx) error {
		g, err := tx.group(conv)
		if err != nil || g == nil || !g.Active() {
			return errors.Join(err, ErrInactive)
		}
		defer g.Wipe()
		msg, err := g.Encrypt(data, nil)
		if err != nil {
			return err
		}
		if payload, err = msg.Marshal(); err != nil {
			return err
		}
		return tx.putGroup(conv, g) // the ratchet moved on
	})
	if err != nil {
		return err
	}
	gid, _ := hex.DecodeString(conv)
	return conn.Write(ctx, &proto.Frame{Type: proto.FrameTyping, Typing: &proto.Typing{GroupID: gid, Payload: payload}})
}
