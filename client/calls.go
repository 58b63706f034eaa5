package client

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/hush-chat/hush/proto"
)

// Call signalling, end to end encrypted: who calls, who rings, who joins,
// declines or leaves travel as MLS application messages of type "call"
// in the conversation (Content.Call), so the server learns none of it.
// Only what the SFU needs to route media (the room, SDP, ICE) goes to the
// server, in "call" WebSocket frames, which the media side (package
// client/call) exchanges through [Client.SendCallFrame] and
// [Client.OnCallFrame].
//
// Each device keeps the conversation's current call (its id and the
// devices in it) in its local store, from the call messages it sends and
// receives: an invite starts a call unless one is going on, a join adds
// the sending device, a leave removes it and ends the call once nobody is
// in it. A decline changes nothing but is reported.
//
// Two members may call at once (glare): each device has sent its invite
// before it saw the other's. The server's log orders the two invites, and
// the earlier one wins on every device: a device that reads an invite
// while a call is going on keeps that call, unless the invite precedes it
// in the log (its own invite, sent before it saw the other, is the only
// one it can read out of log order). [Client.StartCall] catches up after
// sending its invite, so the member whose invite lost joins the winning
// call instead of waiting alone in its own.

// CallOp is what a call signalling message says.
type CallOp string

// Call signalling operations.
const (
	CallInvite  CallOp = "invite"  // a new call: the sender is in it, the others' devices ring
	CallJoin    CallOp = "join"    // the sender's device joined the call
	CallDecline CallOp = "decline" // the sender will not join
	CallLeave   CallOp = "leave"   // the sender's device left (hung up)
)

// CallSignal is the body of a "call" content.
type CallSignal struct {
	// ID names the call within the conversation: the SFU's room is the
	// group id and this id. At most proto.MaxCallIDBytes.
	ID string `json:"id"`
	Op CallOp `json:"op"`
}

func (s *CallSignal) check() error {
	switch s.Op {
	case CallInvite, CallJoin, CallDecline, CallLeave:
	default:
		return fmt.Errorf("%w: unknown call op", ErrUnsupportedContent)
	}
	if s.ID == "" || len(s.ID) > proto.MaxCallIDBytes {
		return fmt.Errorf("%w: call has an invalid id", errBadContent)
	}
	return nil
}

// tableCalls holds each conversation's current call: group id (hex) →
// callRecord.
const tableCalls = "calls"

// CallState is a conversation's current call as this device knows it.
type CallState struct {
	ID      string    `json:"id"`
	Started time.Time `json:"started"` // when the invite was sent
	// Seq is the invite's position in the group's log: 0 for a call
	// learned from a join (its invite older than this device's history)
	// or while this device's own invite waits for the server's answer.
	Seq uint64 `json:"seq,omitempty"`
	// Devices in the call, each with its user.
	Devices map[string]string `json:"devices"`
}

// RingAgainAfter is how old a call's invite must be for a device that
// joins the call and finds nobody else's stream in it to invite the
// members again (client/call's Session, the web page): a call outlives a
// device that vanished without leaving, and joining it would ring nobody;
// in a younger call the caller may just not be sending yet.
const RingAgainAfter = 10 * time.Second

// RingIfEmpty reports whether this device, joining call callID of conv,
// should invite the members again should it find nobody else in the call:
// whether that call is the conversation's current one and its invite is
// older than after (0 selects RingAgainAfter).
func (c *Client) RingIfEmpty(ctx context.Context, conv, callID string, after time.Duration) bool {
	if after == 0 {
		after = RingAgainAfter
	}
	st, ok, err := c.CurrentCall(ctx, conv)
	return err == nil && ok && st.ID == callID && c.o.Now().Sub(st.Started) > after
}

// NewCallID returns a fresh random call id.
func NewCallID() string { return NewMessageID() }

// applyCall records a call message in the conversation's call state and
// reports it. c.mu is held (or the sync's transaction is).
func (c *Client) applyCall(tx *tx, cv *Conversation, o origin, s *CallSignal, events *[]Event) error {
	var st CallState
	ok, err := tx.get(tableCalls, cv.ID, &st)
	if err != nil {
		return err
	}
	changed := true
	switch s.Op {
	case CallInvite:
		if ok && len(st.Devices) > 0 && st.ID != s.ID && !(o.seq != 0 && st.Seq != 0 && o.seq < st.Seq) {
			// A call is going on and this invite does not precede it in
			// the log: the invite lost (glare), and its sender joins ours.
			// Nothing rings for it, so it is no event either.
			return nil
		}
		st = CallState{ID: s.ID, Started: o.time, Seq: o.seq, Devices: map[string]string{o.device: o.user}}
	case CallJoin:
		if !ok || st.ID != s.ID {
			// A join for a call we did not see start (its invite is older
			// than this device's history): it is the current call now.
			st = CallState{ID: s.ID, Started: o.time, Devices: map[string]string{}}
		}
		st.Devices[o.device] = o.user
	case CallLeave:
		if ok && st.ID == s.ID {
			delete(st.Devices, o.device)
		} else {
			changed = false
		}
	default:
		changed = false
	}
	if changed {
		if len(st.Devices) == 0 {
			err = tx.delete(tableCalls, cv.ID)
		} else {
			err = tx.put(tableCalls, cv.ID, &st)
		}
		if err != nil {
			return err
		}
	}
	*events = append(*events, Event{Type: EventCall, Conversation: cv.ID, User: o.user, Device: o.device, Text: string(s.Op), CallID: s.ID})
	return nil
}

// callSequenced records the log position of this device's own invite to
// callID, once the server answered it.
func (tx *tx) callSequenced(conv, callID string, seq uint64) error {
	var st CallState
	ok, err := tx.get(tableCalls, conv, &st)
	if err != nil || !ok || st.ID != callID || st.Seq != 0 {
		return err
	}
	st.Seq = seq
	return tx.put(tableCalls, conv, &st)
}

// CurrentCall returns the conversation's current call, if one is going
// on as far as this device knows (after its last sync).
func (c *Client) CurrentCall(ctx context.Context, conv string) (*CallState, bool, error) {
	var st CallState
	var ok bool
	err := c.db.view(ctx, func(tx *tx) error {
		var err error
		ok, err = tx.get(tableCalls, conv, &st)
		return err
	})
	if err != nil || !ok {
		return nil, false, err
	}
	return &st, true, nil
}

// SendCallSignal sends a call signalling message to the conversation's
// members (end to end encrypted, through the group's log).
func (c *Client) SendCallSignal(ctx context.Context, conv, callID string, op CallOp) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, err := c.sendContent(ctx, conv, &Content{Type: TypeCall, Call: &CallSignal{ID: callID, Op: op}})
	return err
}

// StartCall places a call in conversation conv, or joins the one going
// on, and tells the members (an invite, or a join). It returns the call's
// id and whether this device started it. It catches up with the
// conversation before and after sending an invite: another member who
// called at the same moment (glare) has either invited first, and this
// device joins that call, or reads this invite as the earlier one and
// joins it, so both end up in one call.
func (c *Client) StartCall(ctx context.Context, conv string) (id string, started bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.syncLocked(ctx); err != nil {
		return "", false, err
	}
	join := func(id string) (string, bool, error) {
		if _, err := c.sendContent(ctx, conv, &Content{Type: TypeCall, Call: &CallSignal{ID: id, Op: CallJoin}}); err != nil {
			return "", false, err
		}
		return id, false, nil
	}
	if cur, ok, err := c.CurrentCall(ctx, conv); err != nil {
		return "", false, err
	} else if ok {
		return join(cur.ID)
	}
	if c.beforeCallInvite != nil {
		c.beforeCallInvite()
	}
	id = NewCallID()
	if _, err := c.sendContent(ctx, conv, &Content{Type: TypeCall, Call: &CallSignal{ID: id, Op: CallInvite}}); err != nil {
		return "", false, err
	}
	// Everything the server sequenced before our invite is readable now:
	// an invite among it wins over ours.
	if err := c.syncLocked(ctx); err != nil {
		return "", false, err
	}
	if cur, ok, err := c.CurrentCall(ctx, conv); err != nil {
		return "", false, err
	} else if ok && cur.ID != id {
		return join(cur.ID)
	}
	return id, true, nil
}

// DeviceID returns this device's id, as the server and the SFU name it.
func (c *Client) DeviceID() (string, error) {
	a, err := c.account()
	if err != nil {
		return "", err
	}
	return a.DeviceID, nil
}

// callHooks are the media side's subscriptions: SFU frames, the
// conversations whose epoch moved, and new push connections.
type callHooks struct {
	mu     sync.Mutex
	next   int
	frames map[int]func(*proto.Call)
	epochs map[int]func(conv string)
	conns  map[int]func()
}

// addHook adds fn to one of h's sets and returns what removes it.
func addHook[F any](h *callHooks, set *map[int]F, fn F) (stop func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if *set == nil {
		*set = make(map[int]F)
	}
	id := h.next
	h.next++
	(*set)[id] = fn
	return func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		delete(*set, id)
	}
}

// hooks returns the functions of one of h's sets, to be called outside
// its lock.
func hooks[F any](h *callHooks, set *map[int]F) []F {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Collect(maps.Values(*set))
}

// OnCallFrame calls fn with every "call" frame the server pushes (SFU
// offers, ended) while [Client.Run] holds the push connection, on the
// connection's reader goroutine: fn must not block. Call the returned
// function to stop.
func (c *Client) OnCallFrame(fn func(*proto.Call)) (stop func()) {
	return addHook(&c.hooks, &c.hooks.frames, fn)
}

// OnEpoch calls fn with a conversation's id after this device merged a
// commit of its group (a member added or removed, keys updated): a call's
// media keys must follow (client/call's Keys.Update). fn runs after the
// change is saved, on the goroutine that made it; it may read the group
// (Client.MLSGroup) but must not change the client's state.
func (c *Client) OnEpoch(fn func(conv string)) (stop func()) {
	return addHook(&c.hooks, &c.hooks.epochs, fn)
}

// OnConnect calls fn each time [Client.Run] has opened a push connection,
// once it can carry call frames (before it catches up). The server ends
// a device's part in every call when its connection closes, so a call
// going on must join again (client/call does). fn must not block. Call
// the returned function to stop.
func (c *Client) OnConnect(fn func()) (stop func()) {
	return addHook(&c.hooks, &c.hooks.conns, fn)
}

// connected tells the OnConnect subscribers of a new push connection.
func (c *Client) connected() {
	fns := hooks(&c.hooks, &c.hooks.conns)
	for _, fn := range fns {
		fn()
	}
}

// callFrame hands a pushed call frame to the subscribers.
func (c *Client) callFrame(f *proto.Call) {
	fns := hooks(&c.hooks, &c.hooks.frames)
	for _, fn := range fns {
		fn(f)
	}
}

// epochChanged tells the subscribers which conversations' epochs moved,
// from the events of a change that is saved.
func (c *Client) epochChanged(events []Event) {
	var convs []string
	for _, e := range events {
		if e.Type == EventEpoch && !slices.Contains(convs, e.Conversation) {
			convs = append(convs, e.Conversation)
		}
	}
	if len(convs) == 0 {
		return
	}
	fns := hooks(&c.hooks, &c.hooks.epochs)
	for _, conv := range convs {
		for _, fn := range fns {
			fn(conv)
		}
	}
}

// SendCallFrame sends a "call" frame to the server (the SFU) over the
// push connection of [Client.Run]; ErrOffline without one.
func (c *Client) SendCallFrame(ctx context.Context, f *proto.Call) error {
	c.amu.Lock()
	conn := c.live
	c.amu.Unlock()
	if conn == nil {
		return ErrOffline
	}
	return conn.Write(ctx, &proto.Frame{Type: proto.FrameCall, Call: f})
}

// GroupID returns the MLS group id of a conversation, which names its
// calls' rooms at the SFU.
func GroupID(conv string) ([]byte, error) {
	b, err := hex.DecodeString(conv)
	if err != nil || len(b) == 0 {
		return nil, errors.New("client: not a conversation id")
	}
	return b, nil
}

// Online reports whether [Client.Run] holds a push connection now, which
// call signalling with the SFU needs.
func (c *Client) Online() bool {
	c.amu.Lock()
	defer c.amu.Unlock()
	return c.live != nil
}

// DialCallServer opens a push connection to another node of this
// device's server, authenticated as this device, for a call whose room
// that node hosts (the server's CallMoved frame names it). The URL must
// use the scheme of the account's server, so a plain-HTTP URL never gets
// the device's credentials when the account uses HTTPS. The caller reads
// only "call" frames from it; the messages stay on the main connection.
func (c *Client) DialCallServer(ctx context.Context, serverURL string) (PushConn, error) {
	a, err := c.account()
	if err != nil {
		return nil, err
	}
	home, err1 := url.Parse(a.Server)
	there, err2 := url.Parse(serverURL)
	if err1 != nil || err2 != nil || there.Host == "" || there.Scheme != home.Scheme {
		return nil, errors.New("client: the server pointed the call at a URL of another scheme or none")
	}
	tr, err := c.o.Transport(serverURL)
	if err != nil {
		return nil, err
	}
	auth, err := c.authorization()
	if err != nil {
		return nil, err
	}
	return tr.Connect(ctx, auth)
}
