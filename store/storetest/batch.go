package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/hush-chat/hush/store"
)

// Tests for backends that gather concurrent writes into shared
// transactions (group commit): whatever lands in one batch must come out
// as if each write had run alone.

// testAppendBatchMixed: many senders in many groups at once, with the same
// idempotency key sent several times concurrently, outsiders and unknown
// groups mixed in. Each group's log is numbered 1..n without gaps, each
// sender's messages keep their order, each key is stored once, and the
// rejected appends store nothing.
func testAppendBatchMixed(t *testing.T, s store.Store) {
	const groups, perGroup, each = 6, 4, 15
	outsider := device(t, s)
	gs := make([]store.GroupID, groups)
	senders := make([][]store.DeviceID, groups)
	for i := range gs {
		senders[i] = devices(t, s, perGroup)
		gs[i] = group(t, s, senders[i]...)
	}
	type result struct {
		seq uint64
		dup bool
	}
	var mu sync.Mutex
	got := make(map[string][]result) // by payload
	var failures []error
	record := func(payload string, a store.Appended, err error) {
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			failures = append(failures, fmt.Errorf("%s: %w", payload, err))
			return
		}
		got[payload] = append(got[payload], result{a.Seq, a.Duplicate})
	}
	rejected := make([]error, 0)
	runConcurrently(groups*perGroup+2, func(i int) {
		ctx := context.Background()
		switch {
		case i == groups*perGroup: // an outsider and an unknown group
			var errs []error
			for j := range each {
				_, err := s.AppendMessage(ctx, msg(gs[j%groups], outsider, fmt.Sprintf("outsider %d", j)))
				errs = append(errs, err)
				_, err = s.AppendMessage(ctx, msg(store.GroupID(randBytes(32)), senders[0][0], fmt.Sprintf("nowhere %d", j)))
				errs = append(errs, err)
			}
			mu.Lock()
			rejected = append(rejected, errs...)
			mu.Unlock()
			return
		case i == groups*perGroup+1: // the same key, again and again, concurrently
			var wg sync.WaitGroup
			for range 8 {
				wg.Go(func() {
					m := msg(gs[0], senders[0][1], "repeated")
					m.ClientMsgID = "the-same-key"
					a, err := s.AppendMessage(ctx, m)
					record("repeated", a, err)
				})
			}
			wg.Wait()
			return
		}
		g, k := i/perGroup, i%perGroup
		for j := range each {
			p := fmt.Sprintf("%d/%d/%d", g, k, j)
			a, err := s.AppendMessage(ctx, msg(gs[g], senders[g][k], p))
			record(p, a, err)
		}
	})
	if len(failures) > 0 {
		t.Fatal(failures)
	}
	for i, err := range rejected {
		if i%2 == 0 {
			wantErr(t, err, store.ErrNotMember)
		} else {
			wantErr(t, err, store.ErrNotFound)
		}
	}
	rep := got["repeated"]
	fresh := 0
	for _, r := range rep {
		if !r.dup {
			fresh++
		}
		if r.seq != rep[0].seq {
			t.Fatalf("one key got seqs %v", rep)
		}
	}
	if len(rep) != 8 || fresh != 1 {
		t.Fatalf("repeated key: %d answers, %d not duplicates: %v", len(rep), fresh, rep)
	}
	for g := range groups {
		var seqs []uint64
		for k := range perGroup {
			var own []uint64
			for j := range each {
				r := got[fmt.Sprintf("%d/%d/%d", g, k, j)]
				if len(r) != 1 || r[0].dup {
					t.Fatalf("group %d sender %d message %d: %v", g, k, j, r)
				}
				own = append(own, r[0].seq)
			}
			if !slices.IsSorted(own) {
				t.Fatalf("group %d sender %d got seqs out of order: %v", g, k, own)
			}
			seqs = append(seqs, own...)
		}
		if g == 0 {
			seqs = append(seqs, rep[0].seq)
		}
		slices.Sort(seqs)
		for i, seq := range seqs {
			if seq != uint64(i+1) {
				t.Fatalf("group %d: seqs are not 1..%d: %v", g, len(seqs), seqs)
			}
		}
		gr, err := s.Group(ctx(t), gs[g])
		if err != nil {
			t.Fatal(err)
		}
		if gr.LastSeq != uint64(len(seqs)) {
			t.Fatalf("group %d: last seq %d, want %d", g, gr.LastSeq, len(seqs))
		}
		// The log holds exactly what was accepted, in seq order.
		msgs, err := s.FetchGroup(ctx(t), senders[g][0], gs[g], 0, store.MaxFetchLimit)
		if err != nil {
			t.Fatal(err)
		}
		want := len(seqs) - each // senders[g][0] does not get its own
		if len(msgs) != want {
			t.Fatalf("group %d: fetched %d messages, want %d", g, len(msgs), want)
		}
		for _, m := range msgs {
			if r := got[string(m.Payload)]; len(r) == 0 || r[0].seq != m.Seq {
				t.Fatalf("group %d: message %q stored at seq %d, answered %v", g, m.Payload, m.Seq, r)
			}
		}
	}
}

// testCommitAmidAppends: a member keeps sending while commits race to
// remove it. Exactly one commit per epoch wins; every message of the
// removed member that was accepted precedes the commit that removed it,
// and every later one is refused with ErrNotMember.
func testCommitAmidAppends(t *testing.T, s store.Store) {
	const members = 6
	ds := devices(t, s, members)
	g := group(t, s, ds...)
	victim := ds[members-1]
	var accepted []uint64
	var refusedAfter bool
	var commitSeq uint64
	var winners int
	var wrong []error
	var mu sync.Mutex
	runConcurrently(members, func(i int) {
		ctx := context.Background()
		if i == members-1 {
			for j := 0; ; j++ {
				a, err := s.AppendMessage(ctx, msg(g, victim, fmt.Sprintf("victim %d", j)))
				mu.Lock()
				switch {
				case err == nil && refusedAfter:
					wrong = append(wrong, fmt.Errorf("accepted seq %d after a refusal", a.Seq))
				case err == nil:
					accepted = append(accepted, a.Seq)
				case errors.Is(err, store.ErrNotMember):
					refusedAfter = true
				default:
					wrong = append(wrong, err)
				}
				done := refusedAfter || j > 2000
				mu.Unlock()
				if done {
					return
				}
			}
		}
		// The others send a little, then compete to remove the victim.
		for j := range 3 {
			if _, err := s.AppendMessage(ctx, msg(g, ds[i], fmt.Sprintf("%d/%d", i, j))); err != nil {
				mu.Lock()
				wrong = append(wrong, err)
				mu.Unlock()
			}
		}
		m := msg(g, ds[i], fmt.Sprintf("remove by %d", i))
		m.Kind = store.KindCommit
		a, err := s.AppendCommit(ctx, m, 0, ds[:members-1])
		mu.Lock()
		defer mu.Unlock()
		var ec *store.EpochConflictError
		switch {
		case err == nil:
			winners++
			commitSeq = a.Seq
		case errors.As(err, &ec) && ec.Current == 1:
		default:
			wrong = append(wrong, err)
		}
	})
	if len(wrong) > 0 {
		t.Fatal(wrong)
	}
	if winners != 1 {
		t.Fatalf("%d commits won, want 1", winners)
	}
	if !refusedAfter {
		t.Fatal("the removed member could still send")
	}
	for _, seq := range accepted {
		if seq >= commitSeq {
			t.Fatalf("the removed member's message got seq %d, after its removal at %d", seq, commitSeq)
		}
	}
	gr, err := s.Group(ctx(t), g)
	if err != nil {
		t.Fatal(err)
	}
	if want := uint64(len(accepted) + 3*(members-1) + 1); gr.LastSeq != want || gr.Epoch != 1 {
		t.Fatalf("group %+v, want last seq %d at epoch 1", gr, want)
	}
}

// testAckConcurrent: many devices ack at once, in several groups, with
// stale acks, repeated acks, acks past the end of the log, from
// non-members and for unknown groups mixed in. Each cursor ends at the
// highest valid ack, and the invalid ones change nothing.
func testAckConcurrent(t *testing.T, s store.Store) {
	const groups, perGroup, msgs = 4, 5, 20
	outsider := device(t, s)
	gs := make([]store.GroupID, groups)
	ds := make([][]store.DeviceID, groups)
	for i := range gs {
		ds[i] = devices(t, s, perGroup)
		gs[i] = group(t, s, ds[i]...)
		for j := range msgs {
			mustAppend(t, s, msg(gs[i], ds[i][0], fmt.Sprint(j)))
		}
	}
	var mu sync.Mutex
	var wrong []error
	check := func(err, target error) {
		if (target == nil && err != nil) || (target != nil && !errors.Is(err, target)) {
			mu.Lock()
			wrong = append(wrong, fmt.Errorf("got %v, want %v", err, target))
			mu.Unlock()
		}
	}
	runConcurrently(groups*perGroup+1, func(i int) {
		ctx := context.Background()
		if i == groups*perGroup {
			for g := range gs {
				check(s.Ack(ctx, outsider, gs[g], 1), store.ErrNotMember)
				check(s.Ack(ctx, ds[g][1], store.GroupID(randBytes(32)), 1), store.ErrNotFound)
			}
			return
		}
		g, k := i/perGroup, i%perGroup
		if k == 0 {
			return // the sender
		}
		// Device k of each group ends at 4k, after acks sent at once (as
		// from several connections), some repeated, some stale, and one
		// past the end.
		target := uint64(4 * k)
		var wg sync.WaitGroup
		for _, seq := range []uint64{target - 1, target, 1, target, target - 2} {
			wg.Go(func() { check(s.Ack(ctx, ds[g][k], gs[g], seq), nil) })
		}
		wg.Go(func() { check(s.Ack(ctx, ds[g][k], gs[g], msgs+1), store.ErrInvalid) })
		wg.Wait()
	})
	if len(wrong) > 0 {
		t.Fatal(wrong)
	}
	for g := range gs {
		for k := 1; k < perGroup; k++ {
			p := fetch(t, s, ds[g][k], 0)
			if len(p.Messages) != msgs-4*k || p.Messages[0].Seq != uint64(4*k+1) {
				t.Fatalf("group %d device %d: %d pending from seq %d, want %d from %d",
					g, k, len(p.Messages), p.Messages[0].Seq, msgs-4*k, 4*k+1)
			}
		}
	}
}
