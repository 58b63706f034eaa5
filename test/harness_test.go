package test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/jackc/pgx/v5"

	"github.com/hush-chat/hush/proto"
	"github.com/hush-chat/hush/server"
)

// backend makes the Options of a fresh, empty server.
type backend func(tb testing.TB) server.Options

func sqliteBackend(tb testing.TB) server.Options {
	return server.Options{DataDir: tb.TempDir()}
}

// postgresBackend gives each server an empty schema of the test database,
// dropped afterwards, and its own blob directory.
func postgresBackend(tb testing.TB) server.Options {
	base := os.Getenv("HUSH_TEST_POSTGRES")
	if base == "" {
		base = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		if os.Getenv("CI") != "" {
			tb.Fatalf("PostgreSQL unreachable (CI is set, so this fails): %v", err)
		}
		tb.Skipf("skipping: PostgreSQL unreachable at 127.0.0.1:5432 and CI unset: %v", err)
	}
	schema := "hush_api_" + hex.EncodeToString(random(6))
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		admin.Close(ctx)
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := admin.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			tb.Errorf("dropping %s: %v", schema, err)
		}
		admin.Close(ctx)
	})
	return server.Options{DataDir: tb.TempDir(), Store: base + "&search_path=" + schema + "&pool_max_conns=8"}
}

func random(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// logBuffer collects a server's logs, for the tests that read them.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logBuffer) Bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return bytes.Clone(l.buf.Bytes())
}

// testServer is a server running in the test's process.
type testServer struct {
	*server.Server
	opts server.Options
	logs *logBuffer
	stop func() error // graceful shutdown; returns Run's error
}

// start runs a server with o (Addr 127.0.0.1:0 unless set, debug logs
// captured, generous rate limits unless set) until the test ends or stop.
func start(tb testing.TB, o server.Options) *testServer {
	tb.Helper()
	if o.Addr == "" {
		o.Addr = "127.0.0.1:0"
	}
	logs := &logBuffer{}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if o.DeviceRate == 0 {
		o.DeviceRate = -1
	}
	if o.IPRate == 0 {
		o.IPRate = -1
	}
	srv, err := server.New(context.Background(), o)
	if err != nil {
		tb.Fatalf("server.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() {
			cancel()
			runErr = <-done
		})
		return runErr
	}
	tb.Cleanup(func() {
		if err := stop(); err != nil {
			tb.Errorf("server shutdown: %v", err)
		}
	})
	return &testServer{Server: srv, opts: o, logs: logs, stop: stop}
}

// restart stops ts and starts a new server on the same data and address.
func (ts *testServer) restart(tb testing.TB) *testServer {
	tb.Helper()
	if err := ts.stop(); err != nil {
		tb.Fatalf("shutdown: %v", err)
	}
	o := ts.opts
	o.Addr = ts.Addr().String()
	return start(tb, o)
}

// client is one device, speaking the protocol over HTTP and WebSocket.
type client struct {
	tb       testing.TB
	base     string
	http     *http.Client
	username string
	user     string
	device   string
	secret   []byte
	token    string
}

var httpClient = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

// register creates a user with a random name and returns its first device.
func register(tb testing.TB, ts *testServer) *client {
	tb.Helper()
	c := &client{tb: tb, base: ts.URL(), http: httpClient, username: "u" + hex.EncodeToString(random(6)), secret: random(proto.AuthSecretBytes)}
	var reg proto.Registered
	if e := c.call("POST", proto.PathAccounts, proto.Register{
		Username: c.username, IdentityKey: random(32),
		Device: proto.NewDevice{Secret: c.secret, Certificate: random(64)},
	}, &reg); e != nil {
		tb.Fatalf("register: %v", e)
	}
	c.user, c.device = reg.UserID, reg.DeviceID
	c.token = "Bearer " + c.device + "." + base64.RawURLEncoding.EncodeToString(c.secret)
	return c
}

// link adds a device to c's user.
func (c *client) link() *client {
	c.tb.Helper()
	n := &client{tb: c.tb, base: c.base, http: c.http, username: c.username, user: c.user, secret: random(proto.AuthSecretBytes)}
	var reg proto.Registered
	if e := c.call("POST", proto.PathDevices, proto.NewDevice{Secret: n.secret, Certificate: random(64)}, &reg); e != nil {
		c.tb.Fatalf("link: %v", e)
	}
	n.device = reg.DeviceID
	n.token = "Bearer " + n.device + "." + base64.RawURLEncoding.EncodeToString(n.secret)
	return n
}

// request sends a request with c's credentials (if any) and returns the
// response, whose body the caller closes.
func (c *client) request(method, path, contentType string, body io.Reader) *http.Response {
	c.tb.Helper()
	req, err := http.NewRequest(method, c.base+path, body)
	if err != nil {
		c.tb.Fatal(err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", c.token)
	}
	req.Header.Set(proto.HeaderVersion, "1")
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.tb.Fatalf("%s %s: %v", method, path, err)
	}
	return resp
}

// callRaw sends body as is and decodes the answer into out, or returns
// the status and error answer.
func (c *client) callRaw(method, path string, body []byte, out any) (int, *proto.Error) {
	c.tb.Helper()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	resp := c.request(method, path, proto.ContentTypeJSON, r)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		c.tb.Fatalf("%s %s: reading answer: %v", method, path, err)
	}
	if resp.StatusCode >= 300 {
		var e proto.Error
		if err := json.Unmarshal(data, &e); err != nil || e.Code == "" {
			c.tb.Fatalf("%s %s: status %d with a body that is not a proto.Error: %q", method, path, resp.StatusCode, data)
		}
		return resp.StatusCode, &e
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			c.tb.Fatalf("%s %s: decoding answer: %v", method, path, err)
		}
	}
	return resp.StatusCode, nil
}

// call sends body as JSON.
func (c *client) call(method, path string, body, out any) *proto.Error {
	c.tb.Helper()
	var b []byte
	if body != nil {
		var err error
		if b, err = json.Marshal(body); err != nil {
			c.tb.Fatal(err)
		}
	}
	_, e := c.callRaw(method, path, b, out)
	return e
}

func groupPath(gid []byte) string {
	return strings.Replace(proto.PathGroupMessages, "{id}", base64.RawURLEncoding.EncodeToString(gid), 1)
}

func (c *client) createGroup(gid []byte) {
	c.tb.Helper()
	if e := c.call("POST", proto.PathGroups, proto.CreateGroup{GroupID: gid}, nil); e != nil {
		c.tb.Fatalf("create group: %v", e)
	}
}

func (c *client) send(gid []byte, s proto.Send) (proto.Sent, *proto.Error) {
	c.tb.Helper()
	var sent proto.Sent
	e := c.call("POST", groupPath(gid), s, &sent)
	return sent, e
}

func (c *client) mustSend(gid []byte, s proto.Send) proto.Sent {
	c.tb.Helper()
	sent, e := c.send(gid, s)
	if e != nil {
		c.tb.Fatalf("send: %v", e)
	}
	return sent
}

func (c *client) fetch() proto.Messages {
	c.tb.Helper()
	var m proto.Messages
	if e := c.call("GET", proto.PathMessages, nil, &m); e != nil {
		c.tb.Fatalf("fetch: %v", e)
	}
	return m
}

func (c *client) ack(items ...proto.AckItem) {
	c.tb.Helper()
	if e := c.call("POST", proto.PathAck, proto.Ack{Acks: items}, nil); e != nil {
		c.tb.Fatalf("ack: %v", e)
	}
}

// fetchAll fetches and acknowledges until nothing is pending.
func (c *client) fetchAll() []proto.Envelope {
	c.tb.Helper()
	var all []proto.Envelope
	for {
		m := c.fetch()
		if len(m.Messages) == 0 {
			return all
		}
		all = append(all, m.Messages...)
		c.ack(acksFor(m.Messages)...)
	}
}

// acksFor acknowledges the highest seq of each log in envs.
func acksFor(envs []proto.Envelope) []proto.AckItem {
	top := map[string]uint64{}
	var inbox uint64
	for _, e := range envs {
		if e.Inbox {
			inbox = max(inbox, e.Seq)
		} else {
			top[string(e.GroupID)] = max(top[string(e.GroupID)], e.Seq)
		}
	}
	var out []proto.AckItem
	if inbox > 0 {
		out = append(out, proto.AckItem{Inbox: true, Seq: inbox})
	}
	for g, s := range top {
		out = append(out, proto.AckItem{GroupID: []byte(g), Seq: s})
	}
	return out
}

// ws is a push connection. Frames arrive on frames until it closes.
type ws struct {
	tb     testing.TB
	conn   *websocket.Conn
	frames chan proto.Frame
	closed chan struct{}
	mu     sync.Mutex
	nextID uint64
}

func (c *client) dial() *ws { c.tb.Helper(); return c.dialQuery("") }

// dialQuery is dial with a query ("push=0") on the WebSocket's URL.
func (c *client) dialQuery(query string) *ws {
	c.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	url := "ws" + strings.TrimPrefix(c.base, "http") + proto.PathWebSocket
	if query != "" {
		url += "?" + query
	}
	conn, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{
		HTTPHeader:   http.Header{"Authorization": {c.token}},
		Subprotocols: []string{proto.WebSocketProtocol},
	})
	if err != nil {
		c.tb.Fatalf("dial: %v", err)
	}
	conn.SetReadLimit(proto.MaxRequestBytes)
	w := &ws{tb: c.tb, conn: conn, frames: make(chan proto.Frame, 4096), closed: make(chan struct{})}
	go func() {
		defer close(w.closed)
		defer close(w.frames)
		for {
			_, data, err := conn.Read(context.Background())
			if err != nil {
				return
			}
			var f proto.Frame
			if err := json.Unmarshal(data, &f); err != nil {
				return
			}
			w.frames <- f
		}
	}()
	hello := w.next(5 * time.Second)
	if hello.Type != proto.FrameHello || hello.Hello.Version != proto.Version || hello.Hello.DeviceID != c.device {
		c.tb.Fatalf("first frame: %+v", hello)
	}
	c.tb.Cleanup(func() { conn.CloseNow() })
	return w
}

// next returns the next frame, failing the test after timeout.
func (w *ws) next(timeout time.Duration) proto.Frame {
	w.tb.Helper()
	select {
	case f, ok := <-w.frames:
		if !ok {
			w.tb.Fatal("connection closed while waiting for a frame")
		}
		return f
	case <-time.After(timeout):
		w.tb.Fatalf("no frame within %v", timeout)
	}
	return proto.Frame{}
}

// nextOf skips frames until one of type typ.
func (w *ws) nextOf(typ string, timeout time.Duration) proto.Frame {
	w.tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		f := w.next(time.Until(deadline))
		if f.Type == typ {
			return f
		}
	}
}

// write sends f with the next id, failing the test if it cannot: call it
// from the test's goroutine only.
func (w *ws) write(f proto.Frame) uint64 {
	w.tb.Helper()
	id, err := w.tryWrite(f)
	if err != nil {
		w.tb.Fatalf("write frame: %v", err)
	}
	return id
}

// tryWrite sends f with the next id.
func (w *ws) tryWrite(f proto.Frame) (uint64, error) {
	w.mu.Lock()
	w.nextID++
	f.ID = w.nextID
	w.mu.Unlock()
	b, _ := json.Marshal(f)
	return f.ID, w.conn.Write(context.Background(), websocket.MessageText, b)
}

func (w *ws) close() { w.conn.Close(websocket.StatusNormalClosure, "") }

func must(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}

func fmtErr(e *proto.Error) string {
	if e == nil {
		return "ok"
	}
	return fmt.Sprintf("%s (%s)", e.Code, e.Message)
}
