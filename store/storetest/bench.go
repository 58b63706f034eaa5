package storetest

import (
	"context"
	"crypto/rand"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/hush-chat/hush/store"
)

// BenchmarkPayloadSize is the payload size of BenchmarkAppend: a short
// text message after MLS framing and padding.
const BenchmarkPayloadSize = 350

// BenchmarkAppend measures durable AppendMessage throughput with 1, 8 and
// 32 concurrent senders, each sending to its own two-member group, and with
// 32 senders sharing one group (the hot-group case, where appends contend
// for the group's sequence counter). It reports msgs/s.
func BenchmarkAppend(b *testing.B, open func(b *testing.B) store.Store) {
	for _, senders := range []int{1, 8, 32} {
		b.Run(fmt.Sprintf("senders=%d", senders), func(b *testing.B) {
			benchAppend(b, open(b), senders, false)
		})
	}
	b.Run("senders=32/one-group", func(b *testing.B) {
		benchAppend(b, open(b), 32, true)
	})
}

func benchAppend(b *testing.B, s store.Store, senders int, oneGroup bool) {
	ctx := context.Background()
	newDevice := func() store.DeviceID {
		u, err := s.CreateUser(ctx, "u"+randHex(8), nil)
		if err != nil {
			b.Fatal(err)
		}
		d, err := s.CreateDevice(ctx, u.ID, nil, nil)
		if err != nil {
			b.Fatal(err)
		}
		return d.ID
	}
	newGroup := func(members ...store.DeviceID) store.GroupID {
		g := store.GroupID(randBytes(32))
		if err := s.CreateGroup(ctx, g, members[0], 0, members[1:]); err != nil {
			b.Fatal(err)
		}
		return g
	}
	from := make([]store.DeviceID, senders)
	to := make([]store.GroupID, senders)
	for i := range from {
		from[i] = newDevice()
	}
	if oneGroup {
		g := newGroup(append(from, newDevice())...)
		for i := range to {
			to[i] = g
		}
	} else {
		for i := range to {
			to[i] = newGroup(from[i], newDevice())
		}
	}
	payload := make([]byte, BenchmarkPayloadSize)
	rand.Read(payload)

	b.SetBytes(BenchmarkPayloadSize)
	b.ResetTimer()
	var next atomic.Int64
	var wg sync.WaitGroup
	for i := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := store.Message{GroupID: to[i], Sender: from[i], Kind: store.KindApplication, Payload: payload}
			for k := next.Add(1); k <= int64(b.N); k = next.Add(1) {
				m.ClientMsgID = strconv.FormatInt(k, 10)
				if _, err := s.AppendMessage(ctx, m); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}
