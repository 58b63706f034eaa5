package test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/hush-chat/hush/proto"
)

// BenchmarkPipelined measures messages accepted durably per second into
// one group by 1, 8 and 32 senders on WebSockets, each keeping window send
// frames in flight (window=1: each after the previous one's answer, as
// BenchmarkThroughput's HTTP senders), while one more member reads
// everything online and acknowledges. In the cases senders=N/window=W the
// senders are online members too: the server pushes each of them every
// other sender's message (they do not acknowledge, and only read the
// frames' first bytes), N deliveries per message in all. In the cases
// senders=N/window=W/push=0 the senders' connections are send-only
// (?push=0): the reader's is the one delivery per message. Besides
// msgs/s it reports the process's CPU time (server and clients,
// getrusage) per message.
func BenchmarkPipelined(b *testing.B) {
	for _, n := range []int{1, 8, 32} {
		for _, window := range []int{1, 16, 64} {
			if n > 1 && window == 64 {
				continue
			}
			for _, sendOnly := range []bool{false, true} {
				name := fmt.Sprintf("senders=%d/window=%d", n, window)
				if sendOnly {
					if n == 1 {
						continue // one sender receives nothing either way
					}
					name += "/push=0"
				}
				b.Run(name, func(b *testing.B) { benchPipelined(b, n, window, sendOnly) })
			}
		}
	}
}

func benchPipelined(b *testing.B, n, window int, sendOnly bool) {
	ts := benchServer(b)
	cs, gid, payload := benchGroup(b, ts, n+1)
	r := startReader(b, cs[n], gid, nil)
	conns := make([]*websocket.Conn, n)
	for i := range conns {
		if sendOnly {
			conns[i] = dialSendOnly(b, cs[i])
		} else {
			conns[i] = dialRaw(b, cs[i], false)
		}
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	t0, cpu0 := time.Now(), cpuTime()
	for i, conn := range conns {
		wg.Go(func() { pipelineSender(b, conn, gid, payload, fmt.Sprint("s", i), window, &next) })
	}
	wg.Wait()
	elapsed := time.Since(t0)
	for r.count.Load() < int64(b.N) && time.Since(t0) < elapsed+30*time.Second {
		time.Sleep(time.Millisecond)
	}
	cpu := cpuTime() - cpu0
	b.StopTimer()
	if got := r.count.Load(); got < int64(b.N) {
		b.Errorf("the reader got %d of %d messages", got, b.N)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/msg")
	b.ReportMetric(0, "ns/op")
}

// dialSendOnly opens a send-only connection of c (?push=0) and reads its
// hello frame.
func dialSendOnly(b *testing.B, c *client) *websocket.Conn {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	url := "ws" + strings.TrimPrefix(c.base, "http") + proto.PathWebSocket + "?push=0"
	conn, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{
		HTTPHeader:   http.Header{"Authorization": {c.token}},
		Subprotocols: []string{proto.WebSocketProtocol},
	})
	if err != nil {
		b.Fatalf("dial: %v", err)
	}
	if _, hello, err := conn.Read(ctx); err != nil || !bytes.Contains(hello, []byte(`"hello"`)) {
		b.Fatalf("hello: %q %v", hello, err)
	}
	b.Cleanup(func() { conn.CloseNow() })
	return conn
}

// pipelineSender sends messages while next stays within b.N, with up to
// window in flight, and returns once all are answered. It reads frames
// raw and only tells answers from pushes, so that the benchmark's own
// client costs the shared CPU little (the server pushes the senders every
// other sender's messages).
func pipelineSender(b *testing.B, conn *websocket.Conn, gid, payload []byte, id string, window int, next *atomic.Int64) {
	slots := make(chan struct{}, window)
	failed := make(chan error, 1)
	go func() {
		for {
			_, data, err := conn.Read(context.Background())
			switch {
			case err != nil:
				failed <- err
				return
			case bytes.HasPrefix(data, []byte(`{"type":"sent"`)):
				<-slots
			case bytes.HasPrefix(data, []byte(`{"type":"error"`)):
				failed <- fmt.Errorf("error frame: %s", data)
				return
			}
		}
	}()
	for k := 0; next.Add(1) <= int64(b.N); k++ {
		select {
		case slots <- struct{}{}:
		case err := <-failed:
			b.Error(err)
			return
		}
		data, _ := json.Marshal(proto.Frame{Type: proto.FrameSend, ID: uint64(k + 1), Send: &proto.SendFrame{GroupID: gid, Send: proto.Send{
			ClientMsgID: fmt.Sprintf("%s-%d", id, k), Kind: proto.KindApplication, Epoch: 1, Payload: payload,
		}}})
		if err := conn.Write(context.Background(), websocket.MessageText, data); err != nil {
			b.Error(err)
			return
		}
	}
	for range window {
		select {
		case slots <- struct{}{}: // all answered once every slot is taken back
		case err := <-failed:
			b.Error(err)
			return
		}
	}
}
