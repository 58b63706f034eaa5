// Package delivery is the heart of the delivery service: it accepts
// messages into groups' logs, routes Welcomes to devices' inboxes, hands
// each device what is pending after its cursors, and wakes the connections
// that push to online devices.
//
// # Ordering and storage
//
// Each group has one log, stored once for all its devices, with a cursor
// per device (see store.Groups). The store assigns sequence numbers, so the
// order of a group's log is the order in which the store committed its
// messages, on any number of server nodes. Commits are sequenced too, and
// exactly one commit is accepted per epoch: the others get an
// *store.EpochConflictError, which the API turns into CodeEpochConflict
// with the current epoch. The routing roster (who receives the log) is
// replaced by each accepted commit's Send.Roster.
//
// # Waking connections
//
// After a message is durable, Send publishes a bus.Event for each device
// on the group's roster (bus.Local in one process, natsbus across nodes).
// A Feed (one per open push connection) re-reads the store when woken,
// when the bus reconnects, and every PollInterval, so that a lost
// notification delays a push but never loses a message. A Feed keeps at
// most Window unacknowledged messages in flight: once that many are
// pushed it waits for an acknowledgement before reading more.
//
// Typing signals, acknowledgements and revocations reach the Feeds of this
// node directly, through the Service's hub; a revoked device's connections
// on other nodes close at their next poll.
//
// # Security considerations
//
// The service never sees keys. It checks with mls.UnmarshalMLSMessage that
// a payload is a well-formed MLS message of the declared kind, group and
// epoch, which needs none. It never logs payloads.
package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/hush-chat/hush/bus"
	"github.com/hush-chat/hush/proto"
	"github.com/hush-chat/hush/server/metrics"
	"github.com/hush-chat/hush/store"
)

// Options configure a Service.
type Options struct {
	// Grace is how long, beyond its timer, a disappearing message waits
	// for devices that are offline. Default proto.DeliveryGrace.
	Grace time.Duration
	// PollInterval is how often a Feed re-reads the store without being
	// woken. Default 30s.
	PollInterval time.Duration
	Logger       *slog.Logger
	Metrics      *metrics.Metrics
	// OnRoster, if set, is called after a commit accepted by this node
	// replaced a group's roster (the server evicts removed devices from
	// the group's calls).
	OnRoster func(group store.GroupID, roster []store.DeviceID)
}

// Service is the delivery service. It is safe for concurrent use.
type Service struct {
	store    store.Store
	bus      bus.Bus
	log      *slog.Logger
	m        *metrics.Metrics
	grace    time.Duration
	poll     time.Duration
	onRoster func(store.GroupID, []store.DeviceID)
	rosters  rosterCache
	hub      hub
}

// New returns a Service over st and b.
func New(st store.Store, b bus.Bus, o Options) *Service {
	if o.Grace <= 0 {
		o.Grace = proto.DeliveryGrace
	}
	if o.PollInterval <= 0 {
		o.PollInterval = 30 * time.Second
	}
	return &Service{
		store: st, bus: b, log: o.Logger, m: o.Metrics,
		grace: o.Grace, poll: o.PollInterval, onRoster: o.OnRoster,
		rosters: rosterCache{m: make(map[string]*roster), inflight: make(map[string]int)},
		hub:     hub{m: make(map[store.DeviceID]map[*Feed]struct{})},
	}
}

// Rescan wakes every Feed of this node, for when notifications may have
// been lost (the bus reconnected).
func (s *Service) Rescan() { s.hub.all((*Feed).rescan) }

// CreateGroup registers a new group at epoch 0 with creator as its only
// device.
func (s *Service) CreateGroup(ctx context.Context, creator store.DeviceID, group store.GroupID) error {
	if err := CheckGroupID(group); err != nil {
		return err
	}
	return s.store.CreateGroup(ctx, group, creator, 0, nil)
}

// Send accepts a message from sender into group: an application message
// or a proposal is appended to the log; a commit is appended only if it is
// for the group's current epoch, and then replaces the roster and delivers
// its Welcomes. Retries with the same ClientMsgID return the first result.
//
// Errors are a *proto.Error for a malformed request, or the store's
// (store.ErrNotMember, store.ErrNotFound, *store.EpochConflictError, ...).
func (s *Service) Send(ctx context.Context, sender store.DeviceID, group store.GroupID, req *proto.Send) (proto.Sent, error) {
	if req.Kind == proto.KindCommit {
		return s.sendCommit(ctx, sender, group, req)
	}
	wait, err := s.queue(ctx, sender, group, req)
	if err != nil {
		return proto.Sent{}, err
	}
	sent, deliver, err := wait()
	if deliver != nil {
		deliver()
	}
	return sent, err
}

// QueueSend is Send in two steps, for a connection that pipelines its
// sends: QueueSend checks the request and queues the message's append in
// the store, and returns once it is queued; wait waits until the message
// is durable and returns what Send would have (call it exactly once), and
// deliver, when not nil (a message new to the log), hands the message to
// the devices: call it once, after answering the sender, so that the
// answers of a connection's sends that one commit made durable are ready
// together, not each behind the previous one's fan-out. Messages queued
// one after another by one caller are appended in that order (their
// sequence numbers increase in that order), whatever the other senders
// do, and none waits for the others' commits.
//
// Only application messages and proposals are queued so; a commit is
// sequenced against the group's epoch, so QueueSend handles it (and every
// send, with a store that is not a store.OrderedAppender) completely
// before returning, and wait only returns the result. A caller that wants
// a commit to follow its earlier sends must wait for them first.
//
// ctx must last until wait and deliver have returned.
func (s *Service) QueueSend(ctx context.Context, sender store.DeviceID, group store.GroupID, req *proto.Send) (wait func() (sent proto.Sent, deliver func(), err error), err error) {
	if req.Kind == proto.KindCommit {
		sent, err := s.sendCommit(ctx, sender, group, req)
		if err != nil {
			return nil, err
		}
		return func() (proto.Sent, func(), error) { return sent, nil, nil }, nil
	}
	return s.queue(ctx, sender, group, req)
}

// queue is QueueSend for everything but commits.
func (s *Service) queue(ctx context.Context, sender store.DeviceID, group store.GroupID, req *proto.Send) (func() (proto.Sent, func(), error), error) {
	_, err := checkSend(group, req)
	if err != nil {
		return nil, err
	}
	blobs, err := checkTimer(req)
	if err != nil {
		return nil, err
	}
	m := store.Message{
		GroupID: group, Sender: sender, ClientMsgID: req.ClientMsgID,
		Kind: storeKind(req.Kind), Epoch: req.Epoch, Payload: req.Payload, ExpiresAt: s.expiry(time.Now(), req.Timer),
	}
	var appended func() (store.Appended, error)
	if oa, ok := s.store.(store.OrderedAppender); ok {
		if appended, err = oa.QueueMessage(ctx, m); err != nil {
			return nil, err
		}
	} else {
		a, err := s.store.AppendMessage(ctx, m)
		if err != nil {
			return nil, err
		}
		appended = func() (store.Appended, error) { return a, nil }
	}
	return func() (proto.Sent, func(), error) {
		a, err := appended()
		if err != nil {
			return proto.Sent{}, nil, err
		}
		var deliver func()
		if !a.Duplicate {
			s.m.Accepted.WithLabelValues(string(req.Kind)).Inc()
			m.Seq, m.SentAt = a.Seq, a.SentAt
			deliver = func() { s.wakeGroup(ctx, &m) }
		}
		if err := s.expireBlobs(ctx, sender, req, blobs, m.ExpiresAt); err != nil {
			// Stored: delivered, even though the sender gets the error.
			return proto.Sent{}, deliver, err
		}
		return proto.Sent{Seq: a.Seq, Time: a.SentAt, Duplicate: a.Duplicate}, deliver, nil
	}, nil
}

// sendCommit is Send for a commit.
func (s *Service) sendCommit(ctx context.Context, sender store.DeviceID, group store.GroupID, req *proto.Send) (proto.Sent, error) {
	members, err := checkSend(group, req)
	if err != nil {
		return proto.Sent{}, err
	}
	if _, err := checkTimer(req); err != nil {
		return proto.Sent{}, err
	}
	m := store.Message{
		GroupID: group, Sender: sender, ClientMsgID: req.ClientMsgID,
		Kind: storeKind(req.Kind), Epoch: req.Epoch, Payload: req.Payload, ExpiresAt: s.expiry(time.Now(), req.Timer),
	}
	var a store.Appended
	s.rosters.begin(group)
	a, err = s.store.AppendCommit(ctx, m, req.Epoch, members)
	if err != nil || a.Duplicate {
		s.rosters.end(group, nil)
	} else {
		s.rosters.end(group, newRoster(dedupe(members), req.Epoch+1))
	}
	if err != nil {
		return proto.Sent{}, err
	}
	if !a.Duplicate {
		s.m.Accepted.WithLabelValues(string(req.Kind)).Inc()
		if s.onRoster != nil {
			s.onRoster(group, dedupe(members))
		}
	}
	// The commit is final; its Welcomes are delivered at least once: a
	// retried commit (Duplicate) delivers them again, in case the first
	// attempt stopped between the commit and its Welcomes.
	if err := s.deliverWelcomes(ctx, sender, group, req); err != nil {
		return proto.Sent{}, err
	}
	if !a.Duplicate {
		m.Seq, m.SentAt = a.Seq, a.SentAt
		s.wakeGroup(ctx, &m)
	}
	return proto.Sent{Seq: a.Seq, Time: a.SentAt, Duplicate: a.Duplicate}, nil
}

func (s *Service) deliverWelcomes(ctx context.Context, sender store.DeviceID, group store.GroupID, req *proto.Send) error {
	for _, w := range req.Welcomes {
		for _, id := range w.DeviceIDs {
			to, _ := store.ParseDeviceID(id) // checked by checkSend
			a, err := s.store.AppendDirect(ctx, store.Direct{
				To: to, Sender: sender, ClientMsgID: req.ClientMsgID, GroupID: group,
				Kind: store.KindWelcome, Payload: w.Payload,
			})
			if errors.Is(err, store.ErrNotFound) {
				continue // revoked since: it can do nothing with a Welcome
			}
			if err != nil {
				return err
			}
			if !a.Duplicate {
				s.m.Accepted.WithLabelValues(string(proto.KindWelcome)).Inc()
			}
			s.publish(ctx, to, bus.Event{Kind: bus.KindDirect, Seq: a.Seq})
		}
	}
	return nil
}

// wakeGroup tells every device on the group's roster but the sender that
// the log has grown to m.Seq, on every node. The Feeds of this node are
// also handed m itself, encoded once for all of them, so that they need
// not read it back from the store; that is done only for a message of an
// epoch the cached roster is known for (an application message or
// proposal no newer than the last commit this node knows), so that a
// roster changed by a commit stored elsewhere is never used for content.
func (s *Service) wakeGroup(ctx context.Context, m *store.Message) {
	r, err := s.rosters.get(ctx, s.store, m.GroupID)
	if err != nil {
		// The message is stored; the devices will find it at their next
		// poll or reconnect.
		s.log.Warn("wake group: read roster", "group", m.GroupID, "err", err)
		return
	}
	var frame []byte
	if m.Kind != store.KindCommit && m.Epoch <= r.epoch {
		frame = encodeMessage(m)
	}
	ev := bus.Event{Kind: bus.KindGroup, Group: m.GroupID, Seq: m.Seq}
	// Every Feed of this node on the roster learns of the seq (the
	// sender's as one to skip), before its notification, so that a Feed
	// can tell a gap that will fill from one to read (see Feed.Next).
	s.hub.each(m.Sender, func(f *Feed) { f.offer(m.GroupID, m.Seq, nil, true) })
	for _, d := range r.devices {
		if d == m.Sender {
			continue
		}
		s.hub.each(d, func(f *Feed) { f.offer(m.GroupID, m.Seq, frame, false) })
		s.publish(ctx, d, ev)
	}
}

func (s *Service) publish(ctx context.Context, dev store.DeviceID, ev bus.Event) {
	if err := s.bus.Publish(ctx, dev, ev); err != nil && ctx.Err() == nil {
		s.log.Warn("publish notification", "err", err)
	}
}

// Typing relays an ephemeral signal from sender to the group's other
// devices that are connected to this node now. Nothing is stored.
// store.ErrNotMember if the sender is not on the roster.
func (s *Service) Typing(ctx context.Context, sender store.DeviceID, t *proto.Typing) error {
	if err := CheckGroupID(t.GroupID); err != nil {
		return err
	}
	switch {
	case len(t.Payload) == 0:
		return badRequest("typing payload is missing")
	case len(t.Payload) > proto.MaxTypingBytes:
		return tooLarge("typing payload is larger than %d bytes", proto.MaxTypingBytes)
	}
	r, err := s.rosters.get(ctx, s.store, t.GroupID)
	if err != nil {
		return err
	}
	if !r.has(sender) {
		return store.ErrNotMember
	}
	relay := proto.Typing{GroupID: t.GroupID, Payload: t.Payload, Sender: sender.String()}
	for _, d := range r.devices {
		if d != sender {
			s.hub.each(d, func(f *Feed) { f.relayTyping(relay) })
		}
	}
	return nil
}

// Fetch returns up to limit pending messages of the device (at most
// proto.MaxFetch): its inbox first, then its groups' logs after its
// cursors.
func (s *Service) Fetch(ctx context.Context, dev store.DeviceID, limit int) (proto.Messages, error) {
	if limit <= 0 || limit > proto.MaxFetch {
		limit = proto.MaxFetch
	}
	p, err := s.store.Fetch(ctx, dev, limit+1)
	if err != nil {
		return proto.Messages{}, err
	}
	out := proto.Messages{Messages: make([]proto.Envelope, 0, min(limit, len(p.Direct)+len(p.Messages))), Time: time.Now().UTC()}
	for i := range p.Direct {
		out.Messages = append(out.Messages, directEnvelope(&p.Direct[i]))
	}
	for i := range p.Messages {
		out.Messages = append(out.Messages, messageEnvelope(&p.Messages[i]))
	}
	if len(out.Messages) > limit {
		out.Messages, out.More = out.Messages[:limit], true
	}
	s.m.Deliveries.WithLabelValues("fetch").Add(float64(len(out.Messages)))
	return out, nil
}

// Ack moves the device's cursors forward. The items are applied
// concurrently, so that the store commits them together (one transaction
// and one sync for the whole frame, rather than one per item); on an
// error the others may still be applied (acks are idempotent), and the
// error of the first failing item is returned.
func (s *Service) Ack(ctx context.Context, dev store.DeviceID, acks []proto.AckItem) error {
	switch {
	case len(acks) == 0:
		return badRequest("acks is empty")
	case len(acks) > proto.MaxAcks:
		return tooLarge("more than %d acks", proto.MaxAcks)
	}
	for i, a := range acks {
		if a.Inbox == (len(a.GroupID) > 0) {
			return badRequest("acks[%d] needs either group_id or inbox", i)
		}
		if !a.Inbox {
			if err := CheckGroupID(a.GroupID); err != nil {
				return err
			}
		}
	}
	defer s.hub.each(dev, func(f *Feed) { f.ackedGroups(acks) })
	ack := func(a proto.AckItem) error {
		if a.Inbox {
			return s.store.AckDirect(ctx, dev, a.Seq)
		}
		return s.store.Ack(ctx, dev, a.GroupID, a.Seq)
	}
	if len(acks) == 1 {
		return ack(acks[0])
	}
	errs := make([]error, len(acks))
	sem := make(chan struct{}, maxConcurrentAcks)
	var wg sync.WaitGroup
	for i, a := range acks {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			errs[i] = ack(a)
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// maxConcurrentAcks bounds the store calls one Ack has under way.
const maxConcurrentAcks = 64

// Revoke revokes a device and closes its push connections: at once on
// this node, at their next poll on others.
func (s *Service) Revoke(ctx context.Context, dev store.DeviceID) error {
	if err := s.store.RevokeDevice(ctx, dev); err != nil {
		return err
	}
	s.hub.each(dev, (*Feed).revoke)
	return nil
}

func storeKind(k proto.Kind) store.Kind {
	switch k {
	case proto.KindApplication:
		return store.KindApplication
	case proto.KindProposal:
		return store.KindProposal
	case proto.KindCommit:
		return store.KindCommit
	}
	return store.KindWelcome
}

func protoKind(k store.Kind) proto.Kind {
	switch k {
	case store.KindApplication:
		return proto.KindApplication
	case store.KindProposal:
		return proto.KindProposal
	case store.KindCommit:
		return proto.KindCommit
	}
	return proto.KindWelcome
}

// encodeMessage encodes the message frame that pushes m.
func encodeMessage(m *store.Message) []byte {
	env := messageEnvelope(m)
	b, err := json.Marshal(proto.Frame{Type: proto.FrameMessage, Message: &env})
	if err != nil {
		panic(err) // cannot fail: the envelope has only marshalable fields
	}
	return b
}

func messageEnvelope(m *store.Message) proto.Envelope {
	return proto.Envelope{
		GroupID: m.GroupID, Seq: m.Seq, Sender: m.Sender.String(), Kind: protoKind(m.Kind),
		Epoch: m.Epoch, Payload: m.Payload, Time: m.SentAt, Expires: m.ExpiresAt,
	}
}

func directEnvelope(d *store.Direct) proto.Envelope {
	return proto.Envelope{
		GroupID: d.GroupID, Seq: d.Seq, Inbox: true, Sender: d.Sender.String(), Kind: protoKind(d.Kind),
		Payload: d.Payload, Time: d.SentAt, Expires: d.ExpiresAt,
	}
}
