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
func TestSendsInFlightBound(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "hush.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	g := &gatedStore{Store: st, release: make(chan struct{})}
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
	server, client := net.Pipe()
	defer client.Close()
	s := &session{api: a, dev: store.Device{ID: dev.ID, UserID: u.ID}}
	s.conn = wsConn{server, s}
	s.ctx, s.cancel = context.WithCancel(ctx)
	if s.feed, err = a.Delivery.Follow(ctx, dev.ID, func() {}); err != nil {
		t.Fatal(err)
	}
	defer s.close(ws.StatusNormalClosure, "")
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
			msg, err := group.Encrypt(fmt.Appendf(nil, "message %d", i), nil)
			if err != nil {
				t.Error(err)
				return
			}
			payload, _ := msg.Marshal()
			if r := s.send(&proto.Frame{Type: proto.FrameSend, ID: uint64(i + 1), Send: &proto.SendFrame{GroupID: gid, Send: proto.Send{
				ClientMsgID: fmt.Sprint("m", i), Kind: proto.KindApplication, Payload: payload,
			}}}); r != nil {
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
