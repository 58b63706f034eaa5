package test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/hush-chat/hush/proto"
	"github.com/hush-chat/hush/server"
)

func TestRateLimit(t *testing.T) {
	ts := start(t, server.Options{DataDir: t.TempDir(), DeviceRate: 0.01, DeviceBurst: 4, IPRate: 0.01, IPBurst: 3})
	a := register(t, ts) // 1 of the IP's 3
	for i := range 4 {
		if e := a.call("GET", proto.PathMessages, nil, nil); e != nil {
			t.Fatalf("request %d within the burst: %v", i, e)
		}
	}
	wantCode(t, "past the device's burst", a.call("GET", proto.PathMessages, nil, nil), proto.CodeRateLimited)
	// WebSocket frames count too; pings do not.
	b := register(t, ts) // 2 of 3
	w := b.dial()
	for range 4 {
		w.write(proto.Frame{Type: proto.FrameAck, Ack: &proto.Ack{}})
	}
	id := w.write(proto.Frame{Type: proto.FrameAck, Ack: &proto.Ack{}})
	for {
		f := w.nextOf(proto.FrameError, 5*time.Second)
		if f.ID == id {
			if f.Error.Code != proto.CodeRateLimited {
				t.Fatalf("frame past the burst: %+v", f.Error)
			}
			break
		}
	}
	id = w.write(proto.Frame{Type: proto.FramePing})
	if f := w.nextOf(proto.FramePong, 5*time.Second); f.ID != id {
		t.Fatalf("ping: %+v", f)
	}
	// Unauthenticated requests are limited per address, failed
	// authentications included.
	register(t, ts) // 3 of 3
	anon := &client{tb: t, base: ts.URL(), http: httpClient}
	e := anon.call("POST", proto.PathAccounts, proto.Register{Username: "one_more"}, nil)
	wantCode(t, "registration past the IP's burst", e, proto.CodeRateLimited)
	bad := &client{tb: t, base: ts.URL(), http: httpClient, token: "Bearer " + a.device + ".AAAA"}
	wantCode(t, "failed authentication past the IP's burst", bad.call("GET", proto.PathMessages, nil, nil), proto.CodeRateLimited)
}

// burst is a sender that records which of its messages the server
// answered; the others are in an unknown state and are retried.
type burst struct {
	mu       sync.Mutex
	payloads map[string][]byte // client id → payload
	answered map[string]uint64 // client id → seq
}

func newBurst(m *member, prefix string, n int) *burst {
	b := &burst{payloads: map[string][]byte{}, answered: map[string]uint64{}}
	for i := range n {
		b.payloads[fmt.Sprintf("%s-%04d", prefix, i)] = m.app(fmt.Sprint(prefix, " message ", i))
	}
	return b
}

func (b *burst) ids() []string {
	var ids []string
	for id := range b.payloads {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// sendHTTP sends the messages in order over HTTP until one fails.
func (b *burst) sendHTTP(c *client, gid []byte, epoch uint64) {
	for _, id := range b.ids() {
		body, _ := json.Marshal(proto.Send{ClientMsgID: id, Kind: proto.KindApplication, Epoch: epoch, Payload: b.payloads[id]})
		req, _ := http.NewRequest("POST", c.base+groupPath(gid), bytes.NewReader(body))
		req.Header.Set("Authorization", c.token)
		resp, err := httpClient.Do(req)
		if err != nil {
			return
		}
		var sent proto.Sent
		err = json.NewDecoder(resp.Body).Decode(&sent)
		resp.Body.Close()
		if resp.StatusCode != 200 || err != nil {
			return
		}
		b.mu.Lock()
		b.answered[id] = sent.Seq
		b.mu.Unlock()
	}
}

// retry sends every message not yet answered, again, until answered.
func (b *burst) retry(t *testing.T, c *client, gid []byte, epoch uint64) {
	for _, id := range b.ids() {
		if _, ok := b.answered[id]; ok {
			continue
		}
		sent := c.mustSend(gid, proto.Send{ClientMsgID: id, Kind: proto.KindApplication, Epoch: epoch, Payload: b.payloads[id]})
		b.answered[id] = sent.Seq
	}
}

// check verifies that got holds every message of the bursts exactly once,
// under the seq its send was answered with, in seq order.
func check(t *testing.T, got []proto.Envelope, bursts ...*burst) {
	t.Helper()
	byPayload := map[string]uint64{}
	var last uint64
	for _, env := range got {
		if env.Seq <= last {
			t.Fatalf("seq %d after %d: out of order or duplicated", env.Seq, last)
		}
		last = env.Seq
		if _, dup := byPayload[string(env.Payload)]; dup {
			t.Fatalf("payload delivered twice (seq %d)", env.Seq)
		}
		byPayload[string(env.Payload)] = env.Seq
	}
	n := 0
	for _, b := range bursts {
		for id, payload := range b.payloads {
			seq, ok := byPayload[string(payload)]
			if !ok {
				t.Fatalf("message %s lost", id)
			}
			if seq != b.answered[id] {
				t.Fatalf("message %s stored at seq %d, answered with %d", id, seq, b.answered[id])
			}
			n++
		}
	}
	if n != len(got) {
		t.Fatalf("%d messages stored, %d sent", len(got), n)
	}
}

// TestGracefulShutdown stops the server while HTTP and WebSocket senders
// are busy: every answered message survives, and the unanswered ones,
// retried on the restarted server, are stored exactly once.
func TestGracefulShutdown(t *testing.T) {
	ts := start(t, server.Options{DataDir: t.TempDir()})
	p := newPair(t, ts)
	const senders, each = 6, 150
	var bursts []*burst
	for i := range senders {
		bursts = append(bursts, newBurst(p.ma, fmt.Sprint("s", i), each))
	}
	wsBurst := newBurst(p.ma, "ws", each)
	var wg sync.WaitGroup
	for _, b := range bursts {
		wg.Go(func() { b.sendHTTP(p.a, p.gid, 1) })
	}
	w := p.a.dial()
	wg.Go(func() { wsBurst.sendWS(w, p.gid, 1) })
	time.Sleep(150 * time.Millisecond)
	if err := ts.stop(); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	wg.Wait()
	answered := len(wsBurst.answered)
	for _, b := range bursts {
		answered += len(b.answered)
	}
	t.Logf("%d of %d messages answered before the shutdown", answered, (senders+1)*each)

	ts = ts.restart(t)
	for _, b := range append(bursts, wsBurst) {
		b.retry(t, p.a, p.gid, 1)
	}
	check(t, p.b.fetchAll(), append(bursts, wsBurst)...)
}

// sendWS sends the messages in order over a WebSocket, each after the
// previous one's answer, until the connection closes.
func (b *burst) sendWS(w *ws, gid []byte, epoch uint64) {
	for _, id := range b.ids() {
		f := proto.Frame{Type: proto.FrameSend, ID: 1, Send: &proto.SendFrame{GroupID: gid,
			Send: proto.Send{ClientMsgID: id, Kind: proto.KindApplication, Epoch: epoch, Payload: b.payloads[id]}}}
		data, _ := json.Marshal(f)
		if w.conn.Write(context.Background(), websocket.MessageText, data) != nil {
			return
		}
		for {
			f, ok := <-w.frames
			if !ok {
				return
			}
			if f.Type == proto.FrameSent {
				b.mu.Lock()
				b.answered[id] = f.Sent.Seq
				b.mu.Unlock()
				break
			}
			if f.Type == proto.FrameError {
				return
			}
		}
	}
}

// TestRestartMidBurst restarts the server in the middle of a burst sent
// over WebSockets to an online receiver: the sender retries what was not
// answered, and the receiver ends up with every message once, in order.
func TestRestartMidBurst(t *testing.T) {
	ts := start(t, server.Options{DataDir: t.TempDir()})
	p := newPair(t, ts)
	b := newBurst(p.ma, "r", 400)
	recv := p.b.dial()
	received := map[uint64][]byte{}
	collect := func(w *ws, until time.Duration) {
		deadline := time.After(until)
		for {
			select {
			case f, ok := <-w.frames:
				if !ok {
					return
				}
				if f.Type == proto.FrameMessage {
					if prev, ok := received[f.Message.Seq]; ok && !bytes.Equal(prev, f.Message.Payload) {
						t.Errorf("seq %d pushed with two payloads", f.Message.Seq)
					}
					received[f.Message.Seq] = f.Message.Payload
					// The connection may be closing: an ack that fails is
					// made again after the reconnection.
					w.tryWrite(proto.Frame{Type: proto.FrameAck, Ack: &proto.Ack{Acks: []proto.AckItem{{GroupID: p.gid, Seq: f.Message.Seq}}}})
				}
			case <-deadline:
				return
			}
		}
	}
	done := make(chan struct{})
	go func() { collect(recv, time.Minute); close(done) }()
	send := p.a.dial()
	sent := make(chan struct{})
	go func() { b.sendWS(send, p.gid, 1); close(sent) }()
	time.Sleep(100 * time.Millisecond)
	ts = ts.restart(t)
	<-sent
	<-done // the restart closed the receiver's connection
	t.Logf("%d of %d answered before the restart", len(b.answered), len(b.payloads))
	recv = p.b.dial()
	b.retry(t, p.a, p.gid, 1)
	collect(recv, 2*time.Second)
	var got []proto.Envelope
	for seq := uint64(0); seq < 10000 && len(got) < len(received); seq++ {
		if payload, ok := received[seq]; ok {
			got = append(got, proto.Envelope{Seq: seq, Payload: payload})
		}
	}
	check(t, got, b)
}

// TestLogsHoldNoSecrets runs every kind of request with debug logs on and
// checks that no secret, token or payload byte reached the log.
func TestLogsHoldNoSecrets(t *testing.T) {
	ts := start(t, server.Options{DataDir: t.TempDir()})
	p := newPair(t, ts)
	var secrets [][]byte
	secrets = append(secrets, p.a.secret, p.b.secret)
	linked := p.a.link()
	secrets = append(secrets, linked.secret)
	for i := range 5 {
		payload, _ := p.text(p.a, p.ma, fmt.Sprint("log", i), "secret plaintext is never here anyway")
		secrets = append(secrets, payload)
	}
	w := p.b.dial()
	w.nextOf(proto.FrameMessage, 5*time.Second)
	typing := p.mb.app("typing")
	w.write(proto.Frame{Type: proto.FrameTyping, Typing: &proto.Typing{GroupID: p.gid, Payload: typing}})
	secrets = append(secrets, typing)
	blob := random(4096)
	resp := p.a.request("POST", proto.PathBlobs, proto.ContentTypeBlob, bytes.NewReader(blob))
	resp.Body.Close()
	secrets = append(secrets, blob)
	var ch proto.ProvisionChannel
	p.a.call("POST", proto.PathProvision, nil, &ch)
	sealed := random(100)
	anon := &client{tb: t, base: ts.URL(), http: httpClient}
	anon.call("PUT", strings.Replace(proto.PathProvisionBox, "{id}", ch.ID, 1), proto.ProvisionBox{Box: "new", Data: sealed}, nil)
	secrets = append(secrets, sealed)
	wrong := &client{tb: t, base: ts.URL(), http: httpClient, token: "Bearer " + p.a.device + "." + base64.RawURLEncoding.EncodeToString(random(32))}
	wrong.call("GET", proto.PathMessages, nil, nil)
	w.close()
	must(t, ts.stop())

	logs := ts.logs.String()
	if !strings.Contains(logs, p.a.device) || !strings.Contains(logs, `"status":401`) {
		t.Fatalf("the logs miss what they should hold:\n%s", logs)
	}
	for _, tok := range []string{p.a.token, p.b.token, linked.token, wrong.token, ch.ID} {
		if strings.Contains(logs, strings.TrimPrefix(tok, "Bearer ")) {
			t.Fatalf("a token or capability reached the logs")
		}
	}
	for i, s := range secrets {
		for _, enc := range []string{
			base64.StdEncoding.EncodeToString(s), base64.RawURLEncoding.EncodeToString(s),
			hex.EncodeToString(s), string(s[:16]),
		} {
			if strings.Contains(logs, enc[:min(len(enc), 24)]) {
				t.Fatalf("secret or payload %d reached the logs", i)
			}
		}
	}
}

// TestPurge: undelivered messages older than the retention period and
// expired disappearing messages are dropped by the periodic purge, blobs
// with their bytes.
func TestPurge(t *testing.T) {
	dir := t.TempDir()
	ts := start(t, server.Options{DataDir: dir, Retention: 7 * time.Second, PurgeInterval: 200 * time.Millisecond, DeliveryGrace: time.Millisecond})
	p := newPair(t, ts)
	p.a.mustSend(p.gid, proto.Send{ClientMsgID: "vanish", Kind: proto.KindApplication, Epoch: 1, Payload: p.ma.app("gone soon"), Timer: 5})
	p.text(p.a, p.ma, "old", "kept 7s")
	resp := p.a.request("POST", proto.PathBlobs, proto.ContentTypeBlob, bytes.NewReader(random(100)))
	var ref proto.BlobRef
	json.NewDecoder(resp.Body).Decode(&ref)
	resp.Body.Close()
	if _, err := os.Stat(filepath.Join(dir, "blobs", ref.ID)); err != nil {
		t.Fatalf("blob file: %v", err)
	}
	time.Sleep(5500 * time.Millisecond)
	if got := p.b.fetch().Messages; len(got) != 1 {
		t.Fatalf("after the disappearing message expired: %d messages", len(got))
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(p.b.fetch().Messages) > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the undelivered message outlived the retention period")
		}
		time.Sleep(100 * time.Millisecond)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "blobs", ref.ID)); os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the blob outlived the retention period")
		}
		time.Sleep(100 * time.Millisecond)
	}
	status, e := p.a.callRaw("GET", strings.Replace(proto.PathBlob, "{id}", ref.ID, 1), nil, nil)
	if status != 404 {
		t.Fatalf("purged blob: %d %v", status, e)
	}
}

// TestMultiNode runs two nodes over one store and NATS: a message sent
// through one node is pushed at once to a device connected to the other.
func TestMultiNode(t *testing.T) {
	const natsAddr = "127.0.0.1:4222"
	conn, err := net.DialTimeout("tcp", natsAddr, 2*time.Second)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("NATS unreachable at %s (CI is set, so this fails): %v", natsAddr, err)
		}
		t.Skipf("skipping: NATS unreachable at %s and CI unset: %v", natsAddr, err)
	}
	conn.Close()
	db := "sqlite:" + filepath.Join(t.TempDir(), "shared.db")
	n1 := start(t, server.Options{DataDir: t.TempDir(), Store: db, Bus: "nats://" + natsAddr})
	n2 := start(t, server.Options{DataDir: t.TempDir(), Store: db, Bus: "nats://" + natsAddr})
	p := newPair(t, n1)
	b2 := *p.b
	b2.base = n2.URL()
	w := b2.dial()
	payload, sent := p.text(p.a, p.ma, "cross", "through NATS")
	start := time.Now()
	f := w.nextOf(proto.FrameMessage, 5*time.Second)
	if f.Message.Seq != sent.Seq || !bytes.Equal(f.Message.Payload, payload) {
		t.Fatalf("pushed %+v", f.Message)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("push across nodes took %v: the notification did not arrive", d)
	}
}

// TestMetricsAndHealth: /metrics exposes requests by route and code,
// messages accepted, deliveries, open WebSockets and store latency; and
// /healthz answers until the server drains.
func TestMetricsAndHealth(t *testing.T) {
	ts := start(t, server.Options{DataDir: t.TempDir()})
	p := newPair(t, ts)
	w := p.b.dial()
	p.text(p.a, p.ma, "metered", "counted, never logged")
	w.nextOf(proto.FrameMessage, 5*time.Second)
	anon := &client{tb: t, base: ts.URL(), http: httpClient}
	resp := anon.request("GET", proto.PathMetrics, "", nil)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`hush_http_requests_total{code="200",route="POST /v1/groups/{id}/messages"} 2`,
		`hush_messages_accepted_total{kind="application"} 1`,
		`hush_messages_accepted_total{kind="commit"} 1`,
		`hush_deliveries_total{path="push"} 1`,
		`hush_websockets 1`,
		`hush_store_duration_seconds_count{op="AppendMessage"} 1`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	resp = anon.request("GET", proto.PathHealth, "", nil)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("healthz: %d", resp.StatusCode)
	}
}
