package test

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hush-chat/hush/proto"
)

// testClusterNodeKilled kills the third node with SIGKILL in the middle of
// a burst. The devices connected to it (a sender and a receiver)
// reconnect to another node; the sender sends again what was not answered,
// with the same client message ids; and every device ends up with every
// message of the others exactly once, in the order of the group's log,
// decrypted. The devices on the other nodes never notice. It runs last:
// the node stays dead.
func testClusterNodeKilled(t *testing.T, nodes []*hushNode) {
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	s1 := newDevice(t, "s1", n3, n1) // sender on the node to be killed
	r1 := newDevice(t, "r1", n3, n2) // receiver on the node to be killed
	s2 := newDevice(t, "s2", n1, n2)
	r2 := newDevice(t, "r2", n2, n1)
	devs := []*cdev{s1, r1, s2, r2}
	gid := setupGroup(t, s2, s1, r1, r2)
	const each = 250
	// Encrypted before the connections start decrypting with the same
	// group states.
	ids1, payloads1 := s1.encrypt(s1.name, each)
	ids2, payloads2 := s2.encrypt(s2.name, each)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, d := range devs {
		d.connect(ctx)
	}

	type msg struct {
		from string
		seq  uint64
		dup  bool
	}
	var mu sync.Mutex
	log := map[string]msg{}
	var s1Answered atomic.Int64
	var wg sync.WaitGroup
	for _, s := range []*cdev{s1, s2} {
		ids, payloads := ids1, payloads1
		if s == s2 {
			ids, payloads = ids2, payloads2
		}
		wg.Go(func() {
			for _, id := range ids {
				sent, err := s.send(gid, id, proto.KindApplication, 1, payloads[id])
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				log[id] = msg{s.name, sent.Seq, sent.Duplicate}
				mu.Unlock()
				if s == s1 {
					s1Answered.Add(1)
				}
			}
		})
	}
	for s1Answered.Load() < 60 {
		time.Sleep(time.Millisecond)
	}
	n3.kill(t)
	killedAt := s1Answered.Load()
	wg.Wait()
	if t.Failed() {
		return
	}
	retried := 0
	for _, m := range log {
		if m.dup {
			retried++
		}
	}
	t.Logf("node3 killed after s1's %d answered messages; %d sends answered as duplicates of stored ones after the failover", killedAt, retried)

	var order []string
	for id := range log {
		order = append(order, id)
	}
	if len(order) != 2*each {
		t.Fatalf("%d messages answered, %d sent", len(order), 2*each)
	}
	slices.SortFunc(order, func(x, y string) int { return int(log[x].seq) - int(log[y].seq) })
	for i := 1; i < len(order); i++ {
		if log[order[i]].seq == log[order[i-1]].seq {
			t.Fatalf("%s and %s share seq %d: stored twice or misnumbered", order[i], order[i-1], log[order[i]].seq)
		}
	}
	wantFor := func(d *cdev) []string {
		var want []string
		for _, id := range order {
			if log[id].from != d.name {
				want = append(want, id)
			}
		}
		return want
	}
	for _, d := range devs {
		d.waitReceived(t, len(wantFor(d)), 60*time.Second)
	}
	time.Sleep(300 * time.Millisecond)
	for _, d := range devs {
		d.checkFailures(t)
		d.mu.Lock()
		if !slices.Equal(d.texts, wantFor(d)) {
			t.Errorf("%s decrypted %d messages, want the %d of the others in the log's order", d.name, len(d.texts), len(wantFor(d)))
		}
		t.Logf("%s: connected to %v; %d messages pushed again after reconnecting (not acknowledged before the kill; dropped by seq)", d.name, d.reconn, d.repushed)
		moved := len(d.reconn) > 1
		onKilled := d == s1 || d == r1
		if moved != onKilled || (!onKilled && d.repushed != 0) {
			t.Errorf("%s: connections %v, %d pushed again", d.name, d.reconn, d.repushed)
		}
		d.mu.Unlock()
	}
}
