package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"github.com/gobwas/ws"

	"github.com/hush-chat/hush/bus"
	"github.com/hush-chat/hush/mls"
	"github.com/hush-chat/hush/proto"
	"github.com/hush-chat/hush/server/delivery"
	"github.com/hush-chat/hush/server/metrics"
	"github.com/hush-chat/hush/store"
	"github.com/hush-chat/hush/store/sqlite"
)

// gatedStore is the real SQLite store whose queued appends are answered
// only as the test releases them, and which records how many were queued
// and not yet answered at once.
type gatedStore struct {
	*sqlite.Store
	release chan struct{}

	mu                    sync.Mutex
	queued, done, maxLive int
}

func (g *gatedStore) QueueMessage(ctx context.Context, m store.Message) (func() (store.Appended, error), error) {
	wait, err := g.Store.QueueMessage(ctx, m)
	if err != nil {
		return nil, err
	}
	g.mu.Lock()
	g.queued++
	g.maxLive = max(g.maxLive, g.queued-g.done)
	g.mu.Unlock()
	return func() (store.Appended, error) {
		<-g.release
		a, err := wait()
		g.mu.Lock()
		g.done++
		g.mu.Unlock()
		return a, err
	}, nil
}

func (g *gatedStore) counts() (queued, done, maxLive int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.queued, g.done, g.maxLive
}

// until waits, yielding, for cond, failing as soon as more sends than
// the bound have been in flight.
func (g *gatedStore) until(t *testing.T, cond func(queued, done int) bool) {
	t.Helper()
	for {
		q, d, live := g.counts()
		if live > maxInFlightSends {
			t.Fatalf("%d sends in flight at once, bound %d", live, maxInFlightSends)
		}
		if cond(q, d) {
			return
		}
		runtime.Gosched()
	}
}

// TestSendsInFlightBound: a connection has at most maxInFlightSends sends
// queued and unanswered; its reader waits for one to be answered before
// queueing the next. The answers all come, each with its frame's id, and
// the messages are stored in frame order.
// newSendSession returns a session of a device alone in a group, on the
// real SQLite store gated by a gatedStore, over a net.Pipe whose client
// end is returned, and a function making the i-th send frame (an MLS
// application message of the group).
func newSendSession(t *testing.T, batch bool) (s *session, g *gatedStore, server, client net.Conn, sendFrame func(i int) *proto.Frame) {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "hush.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	g = &gatedStore{Store: st, release: make(chan struct{})}
	u, err := st.CreateUser(ctx, "alice", []byte("identity"))
	if err != nil {
		t.Fatal(err)
	}
	dev, err := st.CreateDevice(ctx, u.ID, []byte("hash"), []byte("credential"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := mls.GenerateSignatureKey(mls.DefaultCipherSuite)
	if err != nil {
		t.Fatal(err)
	}
	gid := []byte("0123456789abcdef0123456789abcdef")
	group, err := mls.CreateGroup(key, mls.BasicCredential([]byte("alice")), mls.CreateGroupOptions{GroupID: gid})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CreateGroup(ctx, gid, dev.ID, 0, nil); err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	m := metrics.New()
	a := &API{Config: Config{Store: g, Delivery: delivery.New(g, bus.NewLocal(), delivery.Options{Logger: logger, Metrics: m}), Metrics: m, Logger: logger}}
	server, client = net.Pipe()
	t.Cleanup(func() { client.Close() })
	s = &session{api: a, dev: store.Device{ID: dev.ID, UserID: u.ID}, batch: batch}
	s.conn = wsConn{server, s}
	s.ctx, s.cancel = context.WithCancel(ctx)
	if s.feed, err = a.Delivery.Follow(ctx, dev.ID, func() {}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.close(ws.StatusNormalClosure, "") })
	var mu sync.Mutex // the group's state, for sendFrame from any goroutine
	sendFrame = func(i int) *proto.Frame {
		mu.Lock()
		defer mu.Unlock()
		msg, err := group.Encrypt(fmt.Appendf(nil, "message %d", i), nil)
		if err != nil {
			t.Error(err)
			return nil
		}
		payload, _ := msg.Marshal()
		return &proto.Frame{Type: proto.FrameSend, ID: uint64(i + 1), Send: &proto.SendFrame{GroupID: gid, Send: proto.Send{
			ClientMsgID: fmt.Sprint("m", i), Kind: proto.KindApplication, Payload: payload,
		}}}
	}
	return s, g, server, client, sendFrame
}

func TestSendsInFlightBound(t *testing.T) {
	s, g, server, client, sendFrame := newSendSession(t, false)
	var frames [][]byte
	read := make(chan struct{})
	go func() { // the client: take every frame the server writes
		defer close(read)
		for {
			f, err := ws.ReadFrame(client)
			if err != nil {
				return
			}
			frames = append(frames, f.Payload)
		}
	}()

	const n = maxInFlightSends + 36
	reader := make(chan *proto.Frame, n) // the session's reader: frames in order
	go func() {
		defer close(reader)
		for i := range n {
			f := sendFrame(i)
			if f == nil {
				return
			}
			if r := s.send(f); r != nil {
				reader <- r
			}
		}
	}()
	g.until(t, func(q, _ int) bool { return q == maxInFlightSends })
	for k := 1; k <= n; k++ {
		g.release <- struct{}{}
		g.until(t, func(q, d int) bool { return d == k && q == min(n, maxInFlightSends+k) })
	}
	for r := range reader {
		t.Fatalf("a send answered at once: %+v", r)
	}
	if _, _, live := g.counts(); live != maxInFlightSends {
		t.Fatalf("%d sends in flight at once, want %d", live, maxInFlightSends)
	}
	s.sends.wait()
	server.Close()
	<-read
	if len(frames) != n {
		t.Fatalf("%d answers for %d sends", len(frames), n)
	}
	// Answers come in any order; each names its frame, and the frames'
	// messages are in the log in frame order.
	seen := map[uint64]bool{}
	for _, data := range frames {
		var f proto.Frame
		if err := json.Unmarshal(data, &f); err != nil || f.Type != proto.FrameSent || f.Sent == nil {
			t.Fatalf("answer %s", data)
		}
		if f.Sent.Seq != f.ID || seen[f.ID] {
			t.Fatalf("frame %d answered with seq %d (or twice)", f.ID, f.Sent.Seq)
		}
		seen[f.ID] = true
	}
}

// TestAnswersBatched: answers that are ready while another answer is
// being written go out together in the next write, one batch frame for a
// client that takes them, each still naming its frame; and a send stays
// in flight (a commit would wait for it) until its answer is written.
func TestAnswersBatched(t *testing.T) {
	s, g, server, client, sendFrame := newSendSession(t, true)
	const n = 10
	for i := range n {
		if r := s.send(sendFrame(i)); r != nil {
			t.Fatalf("send %d answered at once: %+v", i, r)
		}
	}
	// One answer is written, and its write blocks: the client does
	// not read yet (net.Pipe has no buffer).
	g.release <- struct{}{}
	p := &s.sends
	waitFor := func(cond func() bool) {
		t.Helper()
		for {
			p.amu.Lock()
			ok := cond()
			p.amu.Unlock()
			if ok {
				return
			}
			runtime.Gosched()
		}
	}
	waitFor(func() bool { return p.writing && len(p.answers) == 0 })
	// The other nine become durable (the store answers them one by one)
	// and wait behind it.
	for range n - 1 {
		g.release <- struct{}{}
	}
	waitFor(func() bool { return len(p.answers) == n-1 })
	if got := len(p.slots); got != n {
		t.Fatalf("%d sends in flight before their answers were written, want %d", got, n)
	}
	var writes [][]byte
	for len(writes) < 2 {
		f, err := ws.ReadFrame(client)
		if err != nil {
			t.Fatal(err)
		}
		writes = append(writes, f.Payload)
	}
	s.sends.wait()
	if got := len(p.slots); got != 0 {
		t.Fatalf("%d sends in flight after their answers", got)
	}
	server.Close()
	var first, second proto.Frame
	if err := json.Unmarshal(writes[0], &first); err != nil || first.Type != proto.FrameSent || first.Sent == nil || first.Sent.Seq != first.ID {
		t.Fatalf("first write %s", writes[0])
	}
	if err := json.Unmarshal(writes[1], &second); err != nil || second.Type != proto.FrameBatch || len(second.Frames) != n-1 {
		t.Fatalf("second write %.200s: want a batch of %d answers", writes[1], n-1)
	}
	seen := map[uint64]bool{first.ID: true}
	for _, f := range second.Frames {
		if f.Type != proto.FrameSent || f.Sent == nil || f.Sent.Seq != f.ID || seen[f.ID] {
			t.Fatalf("answer in the batch: %+v", f)
		}
		seen[f.ID] = true
	}
	if len(seen) != n {
		t.Fatalf("%d sends answered, want %d", len(seen), n)
	}
}
