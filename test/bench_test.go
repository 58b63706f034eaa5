package test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/hush-chat/hush/proto"
	"github.com/hush-chat/hush/server"
)

// The server benchmarks: loopback, SQLite in b.TempDir(), real HTTP and
// WebSocket clients in the same process, ~350-byte MLS application
// messages. Rate limits are off (they would cap one device at 50/s).
// Results and profiles are in docs/BENCHMARKS.md, "Server (issue 3)".

const benchPayloadSize = 350

func benchServer(b *testing.B) *testServer {
	return start(b, server.Options{
		DataDir: b.TempDir(),
		Logger:  slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
}

// benchGroup registers n devices and a group with all of them on its
// roster, created by the first, with a real MLS payload of about
// benchPayloadSize bytes for its epoch 1.
func benchGroup(b *testing.B, ts *testServer, n int) ([]*client, []byte, []byte) {
	b.Helper()
	cs := make([]*client, n)
	roster := make([]string, n)
	for i := range cs {
		cs[i] = register(b, ts)
		roster[i] = cs[i].device
	}
	m := newMember(b)
	gid := random(32)
	m.create(gid)
	cs[0].createGroup(gid)
	commit, _ := m.commit()
	cs[0].mustSend(gid, proto.Send{ClientMsgID: "roster", Kind: proto.KindCommit, Epoch: 0, Payload: commit, Roster: roster})
	m.merge()
	text := strings.Repeat("x", benchPayloadSize-170)
	payload := m.app(text)
	if len(payload) < benchPayloadSize-40 || len(payload) > benchPayloadSize+40 {
		b.Fatalf("payload of %d bytes", len(payload))
	}
	return cs, gid, payload
}

// reader consumes a device's pushes and counts them, acknowledging every
// 100 messages and after 20 ms without any, as a client that stores what
// it receives in batches does. It reads frames raw and takes only the
// sequence number out of message frames, so that the benchmark's own
// client costs the shared CPU little.
type reader struct {
	conn  *websocket.Conn
	gid   []byte
	count atomic.Int64
	seen  chan uint64 // seq of each message, if not nil
}

func startReader(b *testing.B, c *client, gid []byte, seen chan uint64) *reader {
	r := &reader{conn: dialRaw(b, c, false), gid: gid, seen: seen}
	consume(r.conn, r.ack, func(data []byte) (uint64, bool) {
		seq, ok := messageSeq(data)
		if !ok {
			return 0, false
		}
		r.count.Add(1)
		if r.seen != nil {
			r.seen <- seq
		}
		return seq, true
	})
	return r
}

// consume reads conn's frames and passes each to take, which returns the
// last message sequence number the frame carried, if any; it acknowledges
// every 100 messages and after 20 ms without any, through ack.
func consume(conn *websocket.Conn, ack func(uint64), take func([]byte) (uint64, bool)) {
	frames := make(chan []byte, 1024)
	go func() {
		defer close(frames)
		for {
			_, data, err := conn.Read(context.Background())
			if err != nil {
				return
			}
			frames <- data
		}
	}()
	go func() {
		var last, acked uint64
		for {
			var data []byte
			select {
			case d, ok := <-frames:
				if !ok {
					return
				}
				data = d
			case <-time.After(20 * time.Millisecond):
				if last > acked {
					ack(last)
					acked = last
				}
				continue
			}
			seq, ok := take(data)
			if !ok {
				continue
			}
			last = seq
			if last-acked >= 100 {
				ack(last)
				acked = last
			}
		}
	}()
}

// dialRaw opens c's push connection, asking for batch frames if batch,
// and reads its hello frame.
func dialRaw(b *testing.B, c *client, batch bool) *websocket.Conn {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	url := "ws" + strings.TrimPrefix(c.base, "http") + proto.PathWebSocket
	limit := int64(proto.MaxRequestBytes)
	if batch {
		url += "?" + proto.WebSocketBatchQuery
		limit = proto.MaxBatchBytes
	}
	conn, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{
		HTTPHeader:   http.Header{"Authorization": {c.token}},
		Subprotocols: []string{proto.WebSocketProtocol},
	})
	if err != nil {
		b.Fatalf("dial: %v", err)
	}
	conn.SetReadLimit(limit)
	if _, hello, err := conn.Read(ctx); err != nil || !bytes.Contains(hello, []byte(`"hello"`)) {
		b.Fatalf("hello: %q %v", hello, err)
	}
	b.Cleanup(func() { conn.CloseNow() })
	return conn
}

// messageSeq returns the sequence number of a message frame, as encoded
// by the server (the envelope's "seq" follows its group id).
func messageSeq(frame []byte) (uint64, bool) {
	if !bytes.HasPrefix(frame, []byte(`{"type":"message"`)) {
		return 0, false
	}
	i := bytes.Index(frame, []byte(`"seq":`))
	if i < 0 {
		return 0, false
	}
	var seq uint64
	for _, c := range frame[i+len(`"seq":`):] {
		if c < '0' || c > '9' {
			break
		}
		seq = seq*10 + uint64(c-'0')
	}
	return seq, true
}

func (r *reader) ack(seq uint64) {
	data, _ := json.Marshal(proto.Frame{Type: proto.FrameAck, Ack: &proto.Ack{Acks: []proto.AckItem{{GroupID: r.gid, Seq: seq}}}})
	r.conn.Write(context.Background(), websocket.MessageText, data)
}

// sender sends, one message after the other's answer, as a client does:
// over its own WebSocket, or over HTTP (keep-alive) when w is nil.
type sender struct {
	w       *ws
	c       *client
	gid     []byte
	payload []byte
	id      string
	n       int
}

func (s *sender) send(b *testing.B) {
	if s.w == nil {
		s.sendHTTP(b)
		return
	}
	s.n++
	f := proto.Frame{Type: proto.FrameSend, ID: uint64(s.n), Send: &proto.SendFrame{GroupID: s.gid, Send: proto.Send{
		ClientMsgID: fmt.Sprintf("%s-%d", s.id, s.n), Kind: proto.KindApplication, Epoch: 1, Payload: s.payload}}}
	data, _ := json.Marshal(f)
	if err := s.w.conn.Write(context.Background(), websocket.MessageText, data); err != nil {
		b.Error(err)
		return
	}
	for f := range s.w.frames {
		switch f.Type {
		case proto.FrameSent:
			return
		case proto.FrameError:
			b.Errorf("send: %+v", f.Error)
			return
		}
	}
}

func (s *sender) sendHTTP(b *testing.B) {
	s.n++
	body, _ := json.Marshal(proto.Send{ClientMsgID: fmt.Sprintf("%s-%d", s.id, s.n), Kind: proto.KindApplication, Epoch: 1, Payload: s.payload})
	req, _ := http.NewRequest("POST", s.c.base+groupPath(s.gid), bytes.NewReader(body))
	req.Header.Set("Authorization", s.c.token)
	resp, err := httpClient.Do(req)
	if err != nil {
		b.Error(err)
		return
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b.Errorf("send: status %d", resp.StatusCode)
	}
}

// BenchmarkLatency measures send-to-receipt latency: one device sends over
// its WebSocket, another online device receives the push on its own.
func BenchmarkLatency(b *testing.B) {
	ts := benchServer(b)
	cs, gid, payload := benchGroup(b, ts, 2)
	seen := make(chan uint64, 1)
	startReader(b, cs[1], gid, seen)
	s := &sender{w: cs[0].dial(), gid: gid, payload: payload, id: "lat"}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		go s.send(b)
		<-seen
		lat = append(lat, time.Since(t0))
		time.Sleep(time.Millisecond) // let the sender's answer and the ack land
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkThroughput measures messages accepted per second into one
// group by 8 and 32 concurrent senders, each sending over HTTP one
// message after the other's answer, while one more member of the group
// reads everything online over its WebSocket. (Senders on WebSockets would
// be online members too, and receive every message: that is
// BenchmarkFanout's load.)
func BenchmarkThroughput(b *testing.B) {
	for _, n := range []int{8, 32} {
		b.Run(fmt.Sprintf("senders=%d", n), func(b *testing.B) {
			ts := benchServer(b)
			cs, gid, payload := benchGroup(b, ts, n+1)
			r := startReader(b, cs[n], gid, nil)
			senders := make([]*sender, n)
			for i := range senders {
				senders[i] = &sender{c: cs[i], gid: gid, payload: payload, id: fmt.Sprint("s", i)}
			}
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			t0 := time.Now()
			for _, s := range senders {
				wg.Go(func() {
					for next.Add(1) <= int64(b.N) {
						s.send(b)
					}
				})
			}
			wg.Wait()
			elapsed := time.Since(t0)
			for r.count.Load() < int64(b.N) && time.Since(t0) < elapsed+30*time.Second {
				time.Sleep(time.Millisecond)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// BenchmarkFanout measures deliveries per second into a 50-member group,
// every member online: four members send, and each message is pushed to
// the 46 others' WebSockets, which acknowledge, one frame per message.
// (The senders' own connections get pushes too, up to the unacknowledged
// window, but are not counted.) BenchmarkFanoutBatch is the same with
// readers that ask for batch frames.
func BenchmarkFanout(b *testing.B) { fanoutBatch(b, false) }
