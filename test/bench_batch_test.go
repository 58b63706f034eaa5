package test

import (
	"bytes"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// BenchmarkFanoutBatch is BenchmarkFanout with readers that ask for batch
// frames (proto.WebSocketBatchQuery), as the client package does: the
// server then pushes what is pending for a device as one WebSocket
// message, so a reader takes one frame, and the server makes one write,
// for several deliveries. Besides deliveries/s it reports the messages per
// frame the readers got and the process's CPU time (server and clients,
// getrusage) per delivery. Results in docs/BENCHMARKS.md, "Connections
// (issue 6)".
func BenchmarkFanoutBatch(b *testing.B) { fanoutBatch(b, true) }

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func fanoutBatch(b *testing.B, batch bool) {
	const members, senders = 50, 4
	ts := benchServer(b)
	cs, gid, payload := benchGroup(b, ts, members)
	var readers []*batchReader
	for _, c := range cs[senders:] {
		readers = append(readers, startBatchReader(b, c, gid, batch))
	}
	ss := make([]*sender, senders)
	for i := range ss {
		ss[i] = &sender{w: cs[i].dial(), gid: gid, payload: payload, id: fmt.Sprint("f", i)}
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	t0, cpu0 := time.Now(), cpuTime()
	for _, s := range ss {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				s.send(b)
			}
		})
	}
	wg.Wait()
	want := int64(b.N) * (members - senders)
	deadline := time.Now().Add(60 * time.Second)
	for {
		var got int64
		for _, r := range readers {
			got += r.count.Load()
		}
		if got >= want || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	elapsed, cpu := time.Since(t0), cpuTime()-cpu0
	b.StopTimer()
	var got, frames int64
	for _, r := range readers {
		got += r.count.Load()
		frames += r.frames.Load()
	}
	if got != want {
		b.Fatalf("%d of %d deliveries", got, want)
	}
	b.ReportMetric(float64(got)/elapsed.Seconds(), "deliveries/s")
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(got)/float64(frames), "msgs/frame")
	b.ReportMetric(float64(cpu.Microseconds())/float64(got), "cpu-µs/delivery")
	b.ReportMetric(0, "ns/op")
}

// batchReader is a reader that takes batch frames: it counts the message
// frames in each WebSocket message (single or batched) and acknowledges
// like reader. It scans the bytes instead of decoding JSON, as reader
// does: an envelope's fields hold no braces or quotes but its own.
type batchReader struct {
	conn   *websocket.Conn
	gid    []byte
	count  atomic.Int64 // messages
	frames atomic.Int64 // WebSocket messages carrying them
}

var messageMark = []byte(`{"type":"message"`)

func startBatchReader(b *testing.B, c *client, gid []byte, batch bool) *batchReader {
	conn := dialRaw(b, c, batch)
	r := &batchReader{conn: conn, gid: gid}
	rd := &reader{conn: conn, gid: gid} // for its ack
	consume(conn, rd.ack, func(data []byte) (uint64, bool) {
		n := bytes.Count(data, messageMark)
		if n == 0 {
			return 0, false
		}
		r.count.Add(int64(n))
		r.frames.Add(1)
		return messageSeq(data[bytes.LastIndex(data, messageMark):])
	})
	return r
}
