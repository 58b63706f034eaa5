package test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	hush "github.com/hush-chat/hush/client"
	"github.com/hush-chat/hush/client/profile"
	"github.com/hush-chat/hush/proto"
	"github.com/hush-chat/hush/server"
)

// The end-to-end tests drive real clients (package client, with their
// profiles on disk) against a real server in this process.

// e2eServer is a server on 127.0.0.1:0 whose logs are captured.
type e2eServer struct {
	*server.Server
	dir  string
	logs *logBuffer
}

// startE2E starts a server; opts change its options.
func startE2E(t *testing.T, opts ...func(*server.Options)) *e2eServer {
	t.Helper()
	s := &e2eServer{dir: t.TempDir(), logs: &logBuffer{}}
	o := server.Options{
		Addr: "127.0.0.1:0", DataDir: s.dir, DeviceRate: -1, IPRate: -1,
		Logger: slog.New(slog.NewJSONHandler(s.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	for _, f := range opts {
		f(&o)
	}
	srv, err := server.New(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	s.Server = srv
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server: %v", err)
		}
	})
	return s
}

// wire records every byte that crosses a client's connections, both
// ways, HTTP and WebSocket alike.
type wire struct{ logBuffer }

type recordedConn struct {
	net.Conn
	w *wire
}

func (c *recordedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.w.Write(p[:n])
	return n, err
}

func (c *recordedConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.w.Write(p[:n])
	return n, err
}

// sends captures the Send bodies a client posts to group logs, so that a
// test can hold real ciphertext.
type sends struct {
	http.RoundTripper
	mu  sync.Mutex
	all []proto.Send
	// drop, when set, loses the answer to the next send (the server
	// stores it; the client sees a dropped connection).
	drop bool
}

func (s *sends) RoundTrip(r *http.Request) (*http.Response, error) {
	isSend := r.Method == "POST" && strings.HasSuffix(r.URL.Path, "/messages")
	if isSend && r.Body != nil {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return nil, err
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		var sd proto.Send
		if json.Unmarshal(body, &sd) == nil {
			s.mu.Lock()
			s.all = append(s.all, sd)
			s.mu.Unlock()
		}
	}
	resp, err := s.RoundTripper.RoundTrip(r)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil && isSend && s.drop {
		s.drop = false
		resp.Body.Close()
		return nil, io.ErrUnexpectedEOF
	}
	return resp, err
}

// lastApplication returns the payload of the last application message
// sent.
func (s *sends) lastApplication(t *testing.T) []byte {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := len(s.all) - 1; i >= 0; i-- {
		if s.all[i].Kind == proto.KindApplication {
			return s.all[i].Payload
		}
	}
	t.Fatal("no application message was sent")
	return nil
}

// e2eDevice is one device: a client on a profile of its own.
type e2eDevice struct {
	*hush.Client
	t     *testing.T
	dir   string
	wire  *wire
	sends *sends

	mu     sync.Mutex
	events []hush.Event
	at     []time.Time // when each event arrived
}

// device opens a device with a new profile; opts change its client's
// options.
func (s *e2eServer) device(t *testing.T, opts ...func(*hush.Options)) *e2eDevice {
	t.Helper()
	d := &e2eDevice{t: t, dir: filepath.Join(t.TempDir(), "profile"), wire: &wire{}}
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	d.sends = &sends{RoundTripper: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := dialer.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return &recordedConn{Conn: c, w: d.wire}, nil
		},
	}}
	o := hush.Options{HTTPClient: &http.Client{Transport: d.sends}, OnEvent: d.onEvent, KeyPackageBatch: 10}
	for _, f := range opts {
		f(&o)
	}
	c, err := profile.Open(context.Background(), d.dir, profile.Options{Create: true, Client: o})
	if err != nil {
		t.Fatal(err)
	}
	d.Client = c
	t.Cleanup(func() { c.Close() })
	return d
}

func (s *e2eServer) register(t *testing.T, name string, opts ...func(*hush.Options)) *e2eDevice {
	t.Helper()
	d := s.device(t, opts...)
	if _, err := d.Register(context.Background(), s.URL(), name); err != nil {
		t.Fatal(err)
	}
	return d
}

func (d *e2eDevice) onEvent(e hush.Event) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.events = append(d.events, e)
	d.at = append(d.at, time.Now())
}

// eventAt returns when the first event of typ that match accepts arrived.
func (d *e2eDevice) eventAt(typ hush.EventType, match func(hush.Event) bool) (time.Time, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i, e := range d.events {
		if e.Type == typ && match(e) {
			return d.at[i], true
		}
	}
	return time.Time{}, false
}

func (d *e2eDevice) eventsOf(typ hush.EventType) []hush.Event {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []hush.Event
	for _, e := range d.events {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

func (d *e2eDevice) sync() {
	d.t.Helper()
	if err := d.Sync(context.Background()); err != nil {
		d.t.Fatal(err)
	}
}

func (d *e2eDevice) send(conv, text string) *hush.Message {
	d.t.Helper()
	m, err := d.SendText(context.Background(), conv, text)
	if err != nil {
		d.t.Fatal(err)
	}
	return m
}

// direct returns d's 1:1 conversation with user, started if need be.
func (d *e2eDevice) direct(user string) *hush.Conversation {
	d.t.Helper()
	cv, err := d.Direct(context.Background(), user)
	if err != nil {
		d.t.Fatal(err)
	}
	return cv
}

// newGroup creates a group of d's account with the users.
func (d *e2eDevice) newGroup(name string, users ...string) *hush.Conversation {
	d.t.Helper()
	cv, err := d.CreateGroup(context.Background(), name, users...)
	if err != nil {
		d.t.Fatal(err)
	}
	return cv
}

// lines lists a conversation as "sender: text" in order.
func (d *e2eDevice) lines(conv string) []string {
	d.t.Helper()
	msgs, err := d.Messages(context.Background(), conv)
	if err != nil {
		d.t.Fatal(err)
	}
	var out []string
	for _, m := range msgs {
		switch {
		case m.Deleted:
			out = append(out, m.Sender+": (deleted)")
		case m.Attachment != nil:
			out = append(out, m.Sender+": [file "+m.Attachment.Name+"]")
		default:
			out = append(out, m.Sender+": "+m.Text)
		}
	}
	return out
}

func wantLines(t *testing.T, who string, got []string, want ...string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("%s sees:\n  %s\nwant:\n  %s", who, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}
