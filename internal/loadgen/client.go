package loadgen

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/hush-chat/hush/proto"
)

// Device is a registered device and the server it talks to.
type Device struct {
	Server   string // base URL
	UserID   string
	DeviceID string
	Token    string // Authorization header value: "Bearer …"
	hc       *http.Client
}

// NewHTTPClient returns an HTTP client fit for many concurrent requests to
// a few servers.
func NewHTTPClient() *http.Client {
	return &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{
		MaxIdleConns: 1024, MaxIdleConnsPerHost: 256, IdleConnTimeout: 30 * time.Second,
	}}
}

// Register creates a user with a random name and its first device on
// server.
func Register(ctx context.Context, hc *http.Client, server string) (*Device, error) {
	secret := randomBytes(proto.AuthSecretBytes)
	name := "b" + base64.RawURLEncoding.EncodeToString(randomBytes(12))
	name = strings.NewReplacer("-", "x", "_", "y").Replace(name)
	d := &Device{Server: server, hc: hc}
	var reg proto.Registered
	err := d.Call(ctx, "POST", proto.PathAccounts, proto.Register{
		Username: strings.ToLower(name), IdentityKey: randomBytes(32),
		Device: proto.NewDevice{Secret: secret, Certificate: randomBytes(64)},
	}, &reg)
	if err != nil {
		return nil, fmt.Errorf("register: %w", err)
	}
	d.UserID, d.DeviceID = reg.UserID, reg.DeviceID
	d.Token = "Bearer " + reg.DeviceID + "." + base64.RawURLEncoding.EncodeToString(secret)
	return d, nil
}

// On returns a copy of d that talks to another server of the cluster.
func (d *Device) On(server string) *Device {
	c := *d
	c.Server = server
	return &c
}

// Call makes one request with d's credentials (if any) and decodes the
// answer into out. An error answer is returned as a *proto.Error.
func (d *Device) Call(ctx context.Context, method, path string, body, out any) error {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, d.Server+path, r)
	if err != nil {
		return err
	}
	if d.Token != "" {
		req.Header.Set(proto.HeaderAuthorization, d.Token)
	}
	req.Header.Set(proto.HeaderVersion, "1")
	req.Header.Set("Content-Type", proto.ContentTypeJSON)
	resp, err := d.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		var pe proto.Error
		if json.Unmarshal(data, &pe) != nil || pe.Code == "" {
			return fmt.Errorf("%s %s: status %d", method, path, resp.StatusCode)
		}
		return &pe
	}
	if out != nil && len(data) > 0 {
		return json.Unmarshal(data, out)
	}
	return nil
}

// GroupPath is the messages path of a group.
func GroupPath(gid []byte) string {
	return strings.Replace(proto.PathGroupMessages, "{id}", base64.RawURLEncoding.EncodeToString(gid), 1)
}

// Conn is a device's push WebSocket: it receives pushed messages, which it
// hands to OnMessage and acknowledges, and correlates sends with their
// answers.
type Conn struct {
	dev  *Device
	conn *websocket.Conn

	mu      sync.Mutex
	nextID  uint64
	pending map[uint64]chan *proto.Frame
	last    map[string]uint64 // highest seq received, by group ("" for the inbox)
	acked   map[string]uint64

	onMessage func(*proto.Envelope, time.Time)
	closed    chan struct{}
	err       error
}

// Dial opens d's push connection. onMessage, if not nil, is called on the
// connection's reader goroutine with each pushed message and the time it
// arrived; it must be quick.
// Like the client package, it takes batch frames (several pushes in one
// WebSocket message).
func Dial(ctx context.Context, d *Device, onMessage func(*proto.Envelope, time.Time)) (*Conn, error) {
	return dial(ctx, d, "?"+proto.WebSocketBatchQuery, onMessage)
}

// DialSendOnly opens a send-only connection of d (?push=0): the server
// pushes nothing on it, only answers its frames.
func DialSendOnly(ctx context.Context, d *Device) (*Conn, error) {
	return dial(ctx, d, "?push=0&"+proto.WebSocketBatchQuery, nil)
}

func dial(ctx context.Context, d *Device, query string, onMessage func(*proto.Envelope, time.Time)) (*Conn, error) {
	url := "ws" + strings.TrimPrefix(d.Server, "http") + proto.PathWebSocket + query
	conn, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{
		HTTPClient:   d.hc,
		HTTPHeader:   http.Header{proto.HeaderAuthorization: {d.Token}, proto.HeaderVersion: {"1"}},
		Subprotocols: []string{proto.WebSocketProtocol},
	})
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", d.Server, err)
	}
	conn.SetReadLimit(proto.MaxRequestBytes)
	c := &Conn{
		dev: d, conn: conn, pending: map[uint64]chan *proto.Frame{},
		last: map[string]uint64{}, acked: map[string]uint64{},
		onMessage: onMessage, closed: make(chan struct{}),
	}
	_, data, err := conn.Read(ctx)
	var hello proto.Frame
	if err == nil {
		err = json.Unmarshal(data, &hello)
	}
	if err == nil && hello.Type != proto.FrameHello {
		err = fmt.Errorf("first frame is %q, not hello", hello.Type)
	}
	if err != nil {
		conn.CloseNow()
		return nil, fmt.Errorf("dial %s: %w", d.Server, err)
	}
	go c.read()
	go c.ackLoop()
	return c, nil
}

// Closed is closed when the connection has ended.
func (c *Conn) Closed() <-chan struct{} { return c.closed }

// Close closes the connection.
func (c *Conn) Close() {
	c.conn.Close(websocket.StatusNormalClosure, "")
	<-c.closed
}

func (c *Conn) read() {
	defer close(c.closed)
	for {
		_, data, err := c.conn.Read(context.Background())
		if err != nil {
			c.mu.Lock()
			c.err = err
			for id, ch := range c.pending {
				close(ch)
				delete(c.pending, id)
			}
			c.mu.Unlock()
			return
		}
		now := time.Now()
		f := new(proto.Frame)
		if json.Unmarshal(data, f) != nil {
			continue
		}
		if f.Type != proto.FrameBatch {
			c.handle(f, now)
			continue
		}
		for i := range f.Frames {
			c.handle(&f.Frames[i], now)
		}
	}
}

// handle handles one frame from the server.
func (c *Conn) handle(f *proto.Frame, now time.Time) {
	switch f.Type {
	case proto.FrameMessage:
		if f.Message == nil {
			return
		}
		if c.onMessage != nil {
			c.onMessage(f.Message, now)
		}
		key := string(f.Message.GroupID)
		if f.Message.Inbox {
			key = ""
		}
		c.mu.Lock()
		c.last[key] = max(c.last[key], f.Message.Seq)
		behind := c.last[key] - c.acked[key]
		c.mu.Unlock()
		if behind >= 64 {
			c.ack()
		}
	case proto.FrameSent, proto.FrameError, proto.FramePong:
		c.mu.Lock()
		ch := c.pending[f.ID]
		delete(c.pending, f.ID)
		c.mu.Unlock()
		if ch != nil {
			ch <- f
		}
	}
}

// ackLoop acknowledges what arrived, every 20 ms (or after 64 messages), so that the
// server's window of unacknowledged pushes never fills.
func (c *Conn) ackLoop() {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-c.closed:
			return
		case <-t.C:
			c.ack()
		}
	}
}

func (c *Conn) ack() {
	c.mu.Lock()
	var items []proto.AckItem
	for k, seq := range c.last {
		if seq > c.acked[k] {
			if k == "" {
				items = append(items, proto.AckItem{Inbox: true, Seq: seq})
			} else {
				items = append(items, proto.AckItem{GroupID: []byte(k), Seq: seq})
			}
			c.acked[k] = seq
		}
	}
	c.mu.Unlock()
	if len(items) == 0 {
		return
	}
	data, _ := json.Marshal(proto.Frame{Type: proto.FrameAck, Ack: &proto.Ack{Acks: items}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c.conn.Write(ctx, websocket.MessageText, data)
}

// errClosed is returned by requests on a connection that ended.
var errClosed = errors.New("loadgen: connection closed")

// request writes f with a fresh id and waits for the frame answering it.
func (c *Conn) request(ctx context.Context, f *proto.Frame) (*proto.Frame, error) {
	ch := make(chan *proto.Frame, 1)
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return nil, errClosed
	}
	c.nextID++
	f.ID = c.nextID
	c.pending[f.ID] = ch
	c.mu.Unlock()
	data, err := json.Marshal(f)
	if err != nil {
		return nil, err
	}
	if err := c.conn.Write(ctx, websocket.MessageText, data); err != nil {
		return nil, err
	}
	select {
	case r, ok := <-ch:
		if !ok {
			return nil, errClosed
		}
		if r.Type == proto.FrameError {
			return nil, r.Error
		}
		return r, nil
	case <-ctx.Done():
		c.mu.Lock()
		delete(c.pending, f.ID)
		c.mu.Unlock()
		return nil, ctx.Err()
	}
}

// Send sends a message to a group over the connection and waits for the
// server's answer.
func (c *Conn) Send(ctx context.Context, gid []byte, s proto.Send) (proto.Sent, error) {
	r, err := c.request(ctx, &proto.Frame{Type: proto.FrameSend, Send: &proto.SendFrame{GroupID: gid, Send: s}})
	if err != nil {
		return proto.Sent{}, err
	}
	if r.Sent == nil {
		return proto.Sent{}, fmt.Errorf("answer %q without sent", r.Type)
	}
	return *r.Sent, nil
}

// Ping sends an application-level ping (which the server's idle timeout
// counts) and waits for the pong.
func (c *Conn) Ping(ctx context.Context) error {
	_, err := c.request(ctx, &proto.Frame{Type: proto.FramePing})
	return err
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}
