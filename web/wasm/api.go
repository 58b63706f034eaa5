//go:build js && wasm

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"syscall/js"
	"time"

	"rsc.io/qr"

	"github.com/hush-chat/hush/client"
	"github.com/hush-chat/hush/proto"
	"github.com/hush-chat/hush/web/idb"
)

// bridge holds the one client of the page.
type bridge struct {
	mu      sync.Mutex
	c       *client.Client
	server  string
	onEvent js.Value
	running context.CancelFunc
	live    *pushConn // the current push connection, for call signalling
}

func (b *bridge) setLive(p *pushConn) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.live = p
}

// dropLive forgets p if it is still the current push connection: it
// failed or closed, so call signalling fails at once (client.ErrOffline)
// until the next connection is up, instead of going to a dead one.
func (b *bridge) dropLive(p *pushConn) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.live == p {
		b.live = nil
	}
}

// event is what the page receives through host.onEvent, as JSON.
type event struct {
	Type         string       `json:"type"`
	Conversation string       `json:"conversation,omitempty"`
	Message      *messageJSON `json:"message,omitempty"`
	User         string       `json:"user,omitempty"`
	Device       string       `json:"device,omitempty"`
	Text         string       `json:"text,omitempty"`
	Done         int64        `json:"done,omitempty"`
	Total        int64        `json:"total,omitempty"`
	Upload       string       `json:"upload,omitempty"`
	Call         *proto.Call  `json:"call,omitempty"`
	CallID       string       `json:"callId,omitempty"`
}

func (b *bridge) emit(e event) {
	data, err := json.Marshal(e)
	if err != nil || b.onEvent.Type() != js.TypeFunction {
		return
	}
	b.onEvent.Invoke(string(data))
}

// open opens the client on the rows the page loaded, and starts syncing
// if the store holds an account.
func (b *bridge) open(ctx context.Context, host js.Value) (any, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.c != nil {
		return nil, errors.New("the core is already open")
	}
	rows, err := loadRows(host.Get("rows"))
	if err != nil {
		return nil, err
	}
	keyBytes := make([]byte, host.Get("storeKey").Length())
	js.CopyBytesToGo(keyBytes, host.Get("storeKey"))
	key, err := client.ParseStoreKey(keyBytes)
	clear(keyBytes)
	if err != nil {
		return nil, err
	}
	st, err := idb.New(rows, persister{fn: host.Get("persist")})
	if err != nil {
		return nil, err
	}
	b.onEvent = host.Get("onEvent")
	b.server = host.Get("server").String()
	upload := host.Get("upload")
	c, err := client.Open(ctx, client.Options{
		Storage: st,
		Key:     key,
		Transport: func(u string) (client.Transport, error) {
			// The page talks to the server it was served by.
			ht, err := client.NewHTTPTransport(b.server, nil)
			if err != nil {
				return nil, err
			}
			return &transport{HTTPTransport: ht, base: b.server, upload: upload, emit: b.emit, b: b}, nil
		},
		OnEvent: func(e client.Event) {
			typ := string(e.Type)
			if e.Type == client.EventCall {
				// call_invite, call_join, call_decline, call_leave: the
				// call signalling among the members (MLS messages).
				typ = "call_" + e.Text
			}
			b.emit(event{Type: typ, Conversation: e.Conversation, Message: msgJSON(e.Message), User: e.User, Device: e.Device, Text: e.Text, CallID: e.CallID})
		},
	})
	if err != nil {
		return nil, err
	}
	b.c = c
	a, err := c.Account()
	if errors.Is(err, client.ErrNoAccount) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	b.startLocked()
	return accountJSON(a), nil
}

// startLocked keeps the client connected in the background.
func (b *bridge) startLocked() {
	if b.running != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.running = cancel
	c := b.c
	go func() {
		err := c.Run(ctx)
		if ctx.Err() == nil && err != nil {
			b.emit(event{Type: "fatal", Text: err.Error()})
		}
	}()
}

var errUnknownMethod = errors.New("unknown method")

// call runs one method of the bridge.
func (b *bridge) call(ctx context.Context, method string, raw, data []byte) (any, error) {
	b.mu.Lock()
	c := b.c
	b.mu.Unlock()
	if c == nil {
		return nil, errors.New("the core is not open")
	}
	m, ok := methods[method]
	if !ok {
		return nil, fmt.Errorf("%w %q", errUnknownMethod, method)
	}
	return m(ctx, b, c, raw, data)
}

// args decodes a method's JSON arguments.
func args[T any](raw []byte) (T, error) {
	var v T
	if len(raw) == 0 {
		return v, nil
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return v, fmt.Errorf("bad arguments: %w", err)
	}
	return v, nil
}

type methodFunc func(ctx context.Context, b *bridge, c *client.Client, raw, data []byte) (any, error)

// with adapts a method taking typed arguments.
func with[T any](fn func(ctx context.Context, b *bridge, c *client.Client, a T, data []byte) (any, error)) methodFunc {
	return func(ctx context.Context, b *bridge, c *client.Client, raw, data []byte) (any, error) {
		a, err := args[T](raw)
		if err != nil {
			return nil, err
		}
		return fn(ctx, b, c, a, data)
	}
}

type (
	convArg struct {
		Conv string `json:"conv"`
	}
	userArg struct {
		User string `json:"user"`
	}
	idArg struct {
		ID string `json:"id"`
	}
)

// began starts the bridge's push loop for a device that has just got
// its account (registered, or linked), and returns the account.
func (b *bridge) began(acct *client.Account, err error) (any, error) {
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	b.startLocked()
	b.mu.Unlock()
	return accountJSON(acct), nil
}

// methods is the bridge's API; web/src/core/bridge.ts declares the same
// names with their argument and result types.
var methods = map[string]methodFunc{
	"account": func(ctx context.Context, b *bridge, c *client.Client, _, _ []byte) (any, error) {
		a, err := c.Account()
		if err != nil {
			return nil, err
		}
		return accountJSON(a), nil
	},
	"register": with(func(ctx context.Context, b *bridge, c *client.Client, a struct {
		Username string `json:"username"`
	}, _ []byte) (any, error) {
		return b.began(c.Register(ctx, b.server, a.Username))
	}),
	"linkNew": with(func(ctx context.Context, b *bridge, c *client.Client, a struct {
		Code string `json:"code"`
	}, _ []byte) (any, error) {
		return b.began(c.LinkNew(ctx, b.server, a.Code))
	}),
	"linkOffer": func(ctx context.Context, b *bridge, c *client.Client, _, _ []byte) (any, error) {
		o, err := c.Link(ctx)
		if err != nil {
			return nil, err
		}
		// Complete waits for the new device in the background, and
		// reports how it went as a "linked" or "link_failed" event.
		go func() {
			dev, err := o.Complete(context.Background())
			if err != nil {
				b.emit(event{Type: "link_failed", Text: err.Error()})
				return
			}
			b.emit(event{Type: "linked", Device: dev})
		}()
		return map[string]any{"code": o.Code, "expires": o.Expires, "server": b.server,
			"command": "hush link --code " + o.Code + " --server " + b.server}, nil
	},
	"conversations": func(ctx context.Context, b *bridge, c *client.Client, _, _ []byte) (any, error) {
		return conversations(ctx, c)
	},
	"messages": with(func(ctx context.Context, b *bridge, c *client.Client, a convArg, _ []byte) (any, error) {
		msgs, err := c.Messages(ctx, a.Conv)
		if err != nil {
			return nil, err
		}
		return msgsJSON(msgs), nil
	}),
	"shown": with(func(ctx context.Context, b *bridge, c *client.Client, a struct {
		Conv string   `json:"conv"`
		IDs  []string `json:"ids"`
	}, _ []byte) (any, error) {
		// Starts the timers of disappearing messages now on screen.
		msgs, err := c.Messages(ctx, a.Conv)
		if err != nil {
			return nil, err
		}
		var shown []*client.Message
		for _, m := range msgs {
			if slices.Contains(a.IDs, m.ID) {
				shown = append(shown, m)
			}
		}
		return nil, c.Shown(ctx, shown...)
	}),
	"setTimer": with(func(ctx context.Context, b *bridge, c *client.Client, a struct {
		Conv    string `json:"conv"`
		Seconds int64  `json:"seconds"`
	}, _ []byte) (any, error) {
		if err := c.SetTimer(ctx, a.Conv, time.Duration(a.Seconds)*time.Second); err != nil {
			return nil, err
		}
		cv, err := c.FindConversation(ctx, a.Conv)
		if err != nil {
			return nil, err
		}
		return convJSON(cv), nil
	}),
	"timerPresets": func(ctx context.Context, b *bridge, c *client.Client, _, _ []byte) (any, error) {
		out := []map[string]any{{"seconds": 0, "label": client.FormatTimer(0)}}
		for _, d := range client.TimerPresets {
			out = append(out, map[string]any{"seconds": int64(d / time.Second), "label": client.FormatTimer(d)})
		}
		return out, nil
	},
	"members": with(func(ctx context.Context, b *bridge, c *client.Client, a convArg, _ []byte) (any, error) {
		ms, err := c.Members(ctx, a.Conv)
		if err != nil {
			return nil, err
		}
		out := []memberJSON{}
		for _, m := range ms {
			out = append(out, memberJSON{User: m.User, Device: m.Device, Verified: m.Verified, Self: m.Self})
		}
		return out, nil
	}),
	"direct": with(func(ctx context.Context, b *bridge, c *client.Client, a userArg, _ []byte) (any, error) {
		cv, err := c.Direct(ctx, a.User)
		if err != nil {
			return nil, err
		}
		return convJSON(cv), nil
	}),
	"createGroup": with(func(ctx context.Context, b *bridge, c *client.Client, a struct {
		Name  string   `json:"name"`
		Users []string `json:"users"`
	}, _ []byte) (any, error) {
		cv, err := c.CreateGroup(ctx, a.Name, a.Users...)
		if err != nil {
			return nil, err
		}
		return convJSON(cv), nil
	}),
	"addMembers": with(func(ctx context.Context, b *bridge, c *client.Client, a struct {
		Conv  string   `json:"conv"`
		Users []string `json:"users"`
	}, _ []byte) (any, error) {
		return nil, c.AddMembers(ctx, a.Conv, a.Users...)
	}),
	"removeMember": with(func(ctx context.Context, b *bridge, c *client.Client, a struct {
		Conv string `json:"conv"`
		User string `json:"user"`
	}, _ []byte) (any, error) {
		return nil, c.RemoveMember(ctx, a.Conv, a.User)
	}),
	"send": with(func(ctx context.Context, b *bridge, c *client.Client, a struct {
		Conv    string `json:"conv"`
		Text    string `json:"text"`
		ReplyTo string `json:"replyTo"`
	}, _ []byte) (any, error) {
		if a.ReplyTo != "" {
			return one(c.Reply(ctx, a.ReplyTo, a.Text))
		}
		return one(c.SendText(ctx, a.Conv, a.Text))
	}),
	"react": with(func(ctx context.Context, b *bridge, c *client.Client, a struct {
		ID    string `json:"id"`
		Emoji string `json:"emoji"`
	}, _ []byte) (any, error) {
		return one(c.React(ctx, a.ID, a.Emoji))
	}),
	"edit": with(func(ctx context.Context, b *bridge, c *client.Client, a struct {
		ID   string `json:"id"`
		Text string `json:"text"`
	}, _ []byte) (any, error) {
		return one(c.Edit(ctx, a.ID, a.Text))
	}),
	"delete": with(func(ctx context.Context, b *bridge, c *client.Client, a idArg, _ []byte) (any, error) {
		return nil, c.Delete(ctx, a.ID)
	}),
	"markRead": with(func(ctx context.Context, b *bridge, c *client.Client, a convArg, _ []byte) (any, error) {
		n, err := c.MarkRead(ctx, a.Conv)
		return map[string]int{"count": n}, err
	}),
	"typing": with(func(ctx context.Context, b *bridge, c *client.Client, a convArg, _ []byte) (any, error) {
		err := c.SendTyping(ctx, a.Conv)
		if errors.Is(err, client.ErrOffline) {
			err = nil // typing is best effort
		}
		return nil, err
	}),
	"sendAttachment": with(func(ctx context.Context, b *bridge, c *client.Client, a struct {
		Conv        string `json:"conv"`
		Name        string `json:"name"`
		ContentType string `json:"contentType"`
		Caption     string `json:"caption"`
		Upload      string `json:"upload"` // the page's id for progress events
	}, data []byte) (any, error) {
		var last time.Time
		progress := func(done, total int64) {
			if now := time.Now(); done == total || now.Sub(last) > 50*time.Millisecond {
				last = now
				b.emit(event{Type: "upload", Conversation: a.Conv, Upload: a.Upload, Done: done, Total: total})
			}
		}
		ctx = context.WithValue(ctx, progressKey{}, progress)
		return one(c.SendAttachment(ctx, a.Conv, client.File{
			Name: a.Name, ContentType: a.ContentType, Size: int64(len(data)), Body: bytes.NewReader(data),
		}, a.Caption))
	}),
	"download": with(func(ctx context.Context, b *bridge, c *client.Client, a idArg, _ []byte) (any, error) {
		var buf bytes.Buffer
		if _, err := c.DownloadAttachment(ctx, a.ID, &buf, nil); err != nil {
			return nil, err
		}
		return buf.Bytes(), nil
	}),
	"contact": with(func(ctx context.Context, b *bridge, c *client.Client, a userArg, _ []byte) (any, error) {
		ct, err := c.Contact(ctx, a.User)
		if err != nil {
			return nil, err
		}
		return contactJSON(ct)
	}),
	"confirmVerified": with(func(ctx context.Context, b *bridge, c *client.Client, a userArg, _ []byte) (any, error) {
		ct, err := c.ConfirmVerified(ctx, a.User)
		if err != nil {
			return nil, err
		}
		return contactJSON(ct)
	}),
	"contacts": func(ctx context.Context, b *bridge, c *client.Client, _, _ []byte) (any, error) {
		cts, err := c.Contacts(ctx)
		if err != nil {
			return nil, err
		}
		out := []map[string]any{}
		for _, ct := range cts {
			out = append(out, map[string]any{"username": ct.Username, "verified": ct.Verified, "keyChanged": ct.KeyChanged})
		}
		return out, nil
	},
	"devices": func(ctx context.Context, b *bridge, c *client.Client, _, _ []byte) (any, error) {
		ds, err := c.Devices(ctx)
		if err != nil {
			return nil, err
		}
		out := []map[string]any{}
		for _, d := range ds {
			out = append(out, map[string]any{"id": d.ID, "issued": d.Issued, "current": d.Current, "verified": d.Verified})
		}
		return out, nil
	},
	"callKeys": with(func(ctx context.Context, b *bridge, c *client.Client, a convArg, _ []byte) (any, error) {
		// The conversation's current epoch, for the SFrame worker
		// (web/wasm/sframe), as package client/call keys a call.
		g, err := c.MLSGroup(ctx, a.Conv)
		if err != nil {
			return nil, err
		}
		defer g.Wipe()
		ms := g.Members()
		if !g.Active() || len(ms) == 0 {
			return nil, errors.New("not a member of this conversation")
		}
		key, err := g.Export(sframeBaseKeyLabel, nil, sframeBaseKeySize)
		if err != nil {
			return nil, err
		}
		return map[string]any{"epoch": g.Epoch(), "groupSize": ms[len(ms)-1].Index + 1, "leafIndex": g.Index(), "baseKey": key}, nil
	}),
	"callSend": with(func(ctx context.Context, b *bridge, c *client.Client, a struct {
		Conv   string        `json:"conv"`
		CallID string        `json:"callId"`
		Op     client.CallOp `json:"op"`
	}, _ []byte) (any, error) {
		// Call signalling among the members, end to end encrypted: invite
		// (ring the others), join, decline, leave.
		switch a.Op {
		case client.CallInvite, client.CallJoin, client.CallDecline, client.CallLeave:
		default:
			return nil, fmt.Errorf("unknown call op %q", a.Op)
		}
		return nil, c.SendCallSignal(ctx, a.Conv, a.CallID, a.Op)
	}),
	"callStart": with(func(ctx context.Context, b *bridge, c *client.Client, a convArg, _ []byte) (any, error) {
		// Place a call, or join the one going on; two members calling at
		// once end up in one call (client.StartCall).
		id, started, err := c.StartCall(ctx, a.Conv)
		if err != nil {
			return nil, err
		}
		// Joining a call that may have outlived everyone in it: the page
		// rings the members again if the SFU's first offer has nobody.
		return map[string]any{"callId": id, "started": started, "ringIfEmpty": !started && c.RingIfEmpty(ctx, a.Conv, id, 0)}, nil
	}),
	"currentCall": with(func(ctx context.Context, b *bridge, c *client.Client, a convArg, _ []byte) (any, error) {
		// The conversation's call going on, as far as this device knows.
		st, ok, err := c.CurrentCall(ctx, a.Conv)
		if err != nil || !ok {
			return nil, err
		}
		return map[string]any{"id": st.ID, "started": st.Started, "devices": st.Devices}, nil
	}),
	"callSignal": with(func(ctx context.Context, b *bridge, c *client.Client, a proto.Call, _ []byte) (any, error) {
		// A call signalling frame for the SFU (join, answer, leave).
		b.mu.Lock()
		live := b.live
		b.mu.Unlock()
		if live == nil {
			return nil, client.ErrOffline
		}
		return nil, live.Write(ctx, &proto.Frame{Type: proto.FrameCall, ID: callFrameID(), Call: &a})
	}),
	"sync": func(ctx context.Context, b *bridge, c *client.Client, _, _ []byte) (any, error) {
		return nil, c.Sync(ctx)
	},
}

// The SFrame base key of an MLS epoch (RFC 9605 §5.2) in the suite of
// Hush calls, AES_128_GCM_SHA256_128 (Nk = 16): see client/call.
const (
	sframeBaseKeyLabel = "SFrame 1.0 Base Key"
	sframeBaseKeySize  = 16
)

func accountJSON(a *client.Account) map[string]any {
	return map[string]any{"server": a.Server, "username": a.Username, "userId": a.UserID, "deviceId": a.DeviceID, "created": a.Created}
}

type memberJSON struct {
	User     string `json:"user"`
	Device   string `json:"device"`
	Verified bool   `json:"verified"`
	Self     bool   `json:"self"`
}

// conversationJSON is a conversation as the list shows it, its timer in
// seconds.
type conversationJSON struct {
	*client.Conversation
	Title   string       `json:"title"`
	Timer   int64        `json:"timer,omitempty"`
	Unread  int          `json:"unread"`
	Preview *messageJSON `json:"preview,omitempty"`
}

func convJSON(cv *client.Conversation) *conversationJSON {
	return &conversationJSON{Conversation: cv, Title: strings.TrimPrefix(cv.Title(), "@"), Timer: int64(cv.Timer / time.Second)}
}

// messageJSON is a message with its timer in seconds and without its
// attachment's key, which the page never needs.
type messageJSON struct {
	*client.Message
	Timer      int64           `json:"timer,omitempty"`
	Attachment *attachmentJSON `json:"attachment,omitempty"`
}

type attachmentJSON struct {
	BlobID      string `json:"blob_id"`
	Size        int64  `json:"size"`
	ContentType string `json:"content_type,omitempty"`
	Name        string `json:"name,omitempty"`
}

func msgJSON(m *client.Message) *messageJSON {
	if m == nil {
		return nil
	}
	j := &messageJSON{Message: m, Timer: int64(m.Timer / time.Second)}
	if a := m.Attachment; a != nil {
		j.Attachment = &attachmentJSON{BlobID: a.BlobID, Size: a.Size, ContentType: a.ContentType, Name: a.Name}
	}
	return j
}

func msgsJSON(msgs []*client.Message) []*messageJSON {
	out := make([]*messageJSON, 0, len(msgs))
	for _, m := range msgs {
		out = append(out, msgJSON(m))
	}
	return out
}

// one converts the result of a call that returns a message.
func one(m *client.Message, err error) (any, error) {
	if err != nil {
		return nil, err
	}
	return msgJSON(m), nil
}

// conversations lists the conversations with their unread counts and
// latest message.
func conversations(ctx context.Context, c *client.Client) (any, error) {
	cvs, err := c.Conversations(ctx)
	if err != nil {
		return nil, err
	}
	out := []*conversationJSON{}
	for _, cv := range cvs {
		j := convJSON(cv)
		msgs, err := c.Messages(ctx, cv.ID)
		if err != nil {
			return nil, err
		}
		for _, m := range msgs {
			if !m.Outgoing && !m.Read && !m.Deleted {
				j.Unread++
			}
		}
		if len(msgs) > 0 {
			j.Preview = msgJSON(msgs[len(msgs)-1])
		}
		out = append(out, j)
	}
	return out, nil
}

// contactJSON is a contact with its safety number, formatted, and the
// same number as a QR code (as `hush verify` shows it): size×size
// modules, "1" for a dark one, row by row.
func contactJSON(ct *client.Contact) (any, error) {
	number := ct.SafetyNumber
	if ct.KeyChanged {
		number = ct.ChangedSafetyNumber
	}
	code, err := qr.Encode(number, qr.M)
	if err != nil {
		return nil, err
	}
	var bits strings.Builder
	for y := range code.Size {
		for x := range code.Size {
			if code.Black(x, y) {
				bits.WriteByte('1')
			} else {
				bits.WriteByte('0')
			}
		}
	}
	return map[string]any{
		"username":     ct.Username,
		"verified":     ct.Verified,
		"keyChanged":   ct.KeyChanged,
		"safetyNumber": number,
		"formatted":    client.FormatSafetyNumber(number),
		"qr":           map[string]any{"size": code.Size, "bits": bits.String()},
	}, nil
}
