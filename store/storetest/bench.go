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

// BenchmarkFanout measures the store's side of delivery into one group of
// 50 and of 100 members: 4 members append (b.N messages in all) while
// every other member reads the log past what it has read (FetchGroup, up
// to 100 messages a call) and acknowledges the last message of each read,
// as a push connection does. It reports deliveries/s (messages read by
// receivers) and acks/s, once every receiver has read everything. Appends
// wait for durability (an fsync each batch), so with 4 senders the disk
// bounds this; the "backlog" cases append the b.N messages first, untimed,
// and time only the receivers catching up: what reads and batched acks
// allow.
func BenchmarkFanout(b *testing.B, open func(b *testing.B) store.Store) {
	for _, members := range []int{50, 100} {
		b.Run(fmt.Sprintf("members=%d", members), func(b *testing.B) {
			benchFanout(b, open(b), members, 4, false)
		})
	}
	for _, members := range []int{50, 100} {
		b.Run(fmt.Sprintf("members=%d/backlog", members), func(b *testing.B) {
			benchFanout(b, open(b), members, 4, true)
		})
	}
}

func benchFanout(b *testing.B, s store.Store, members, senders int, backlog bool) {
	ctx := context.Background()
	ds := make([]store.DeviceID, members)
	for i := range ds {
		u, err := s.CreateUser(ctx, "u"+randHex(8), nil)
		if err != nil {
			b.Fatal(err)
		}
		d, err := s.CreateDevice(ctx, u.ID, nil, nil)
		if err != nil {
			b.Fatal(err)
		}
		ds[i] = d.ID
	}
	g := store.GroupID(randBytes(32))
	if err := s.CreateGroup(ctx, g, ds[0], 0, ds[1:]); err != nil {
		b.Fatal(err)
	}
	payload := make([]byte, BenchmarkPayloadSize)
	rand.Read(payload)

	// Receivers wait for news as push connections do, woken by the
	// senders, instead of polling.
	var mu sync.Mutex
	grew := sync.NewCond(&mu)
	var head uint64
	var next atomic.Int64
	var sent sync.WaitGroup
	if !backlog {
		b.ResetTimer()
	}
	for i := range senders {
		sent.Go(func() {
			m := store.Message{GroupID: g, Sender: ds[i], Kind: store.KindApplication, Payload: payload}
			for k := next.Add(1); k <= int64(b.N); k = next.Add(1) {
				m.ClientMsgID = strconv.FormatInt(k, 10)
				a, err := s.AppendMessage(ctx, m)
				if err != nil {
					b.Error(err)
					mu.Lock()
					head = ^uint64(0)
					grew.Broadcast()
					mu.Unlock()
					return
				}
				mu.Lock()
				head = max(head, a.Seq)
				grew.Broadcast()
				mu.Unlock()
			}
		})
	}
	if backlog {
		sent.Wait()
		b.ResetTimer()
	}
	var delivered, acks atomic.Int64
	var read sync.WaitGroup
	for _, d := range ds[senders:] {
		read.Go(func() {
			var at uint64
			for got := 0; got < b.N; {
				ms, err := s.FetchGroup(ctx, d, g, at, store.DefaultFetchLimit)
				if err != nil {
					b.Error(err)
					return
				}
				if len(ms) == 0 {
					mu.Lock()
					for head <= at {
						grew.Wait()
					}
					failed := head == ^uint64(0)
					mu.Unlock()
					if failed {
						return
					}
					continue
				}
				at = ms[len(ms)-1].Seq
				got += len(ms)
				delivered.Add(int64(len(ms)))
				if err := s.Ack(ctx, d, g, at); err != nil {
					b.Error(err)
					return
				}
				acks.Add(1)
			}
		})
	}
	sent.Wait()
	read.Wait()
	b.StopTimer()
	sec := b.Elapsed().Seconds()
	b.ReportMetric(float64(delivered.Load())/sec, "deliveries/s")
	b.ReportMetric(float64(acks.Load())/sec, "acks/s")
	b.ReportMetric(float64(b.N)/sec, "msgs/s")
}
