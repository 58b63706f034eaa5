package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

const natsURL = "nats://127.0.0.1:4222"

// natsConn connects to the machine's NATS, skipping the test (failing it
// under CI) when there is none.
func natsConn(t *testing.T) *nats.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", "127.0.0.1:4222", 2*time.Second)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("NATS unreachable at 127.0.0.1:4222 (CI is set, so this fails): %v", err)
		}
		t.Skipf("skipping: NATS unreachable at 127.0.0.1:4222 and CI unset: %v", err)
	}
	c.Close()
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// bucket returns a fresh bucket name, deleted when the test ends.
func bucket(t *testing.T) string {
	t.Helper()
	b := make([]byte, 6)
	rand.Read(b)
	name := "hush_rooms_test_" + hex.EncodeToString(b)
	nc := natsConn(t)
	t.Cleanup(func() {
		js, err := jetstream.New(nc)
		if err == nil {
			js.DeleteKeyValue(context.Background(), name)
		}
	})
	return name
}

func node(t *testing.T, bucket, self string, ttl time.Duration, onLost func(Room)) *NATS {
	t.Helper()
	d, err := Connect(context.Background(), Config{URL: natsURL, Self: self, Bucket: bucket, TTL: ttl, OnLost: onLost})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func room(i int) Room {
	return Room{GroupID: []byte(fmt.Sprintf("group-%d", i)), CallID: fmt.Sprintf("call %d/é", i)}
}

func TestLocal(t *testing.T) {
	d := NewLocal("http://127.0.0.1:8080")
	p, err := d.Place(context.Background(), room(1))
	if err != nil || !p.Local || p.URL != "http://127.0.0.1:8080" {
		t.Fatalf("Place: %+v, %v", p, err)
	}
	if p, ok, err := d.Lookup(context.Background(), room(1)); !ok || err != nil || !p.Local {
		t.Fatalf("Lookup: %+v %v %v", p, ok, err)
	}
}

// TestPlaceOnce: three nodes place the same rooms at once; each room ends
// up on exactly one node, and every node points at that one.
func TestPlaceOnce(t *testing.T) {
	b := bucket(t)
	urls := []string{"http://127.0.0.1:1", "http://127.0.0.1:2", "http://127.0.0.1:3"}
	var nodes []*NATS
	for _, u := range urls {
		nodes = append(nodes, node(t, b, u, 3*time.Second, nil))
	}
	const rooms = 20
	got := make([][]Placement, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		got[i] = make([]Placement, rooms)
		wg.Go(func() {
			for r := range rooms {
				p, err := n.Place(context.Background(), room(r))
				if err != nil {
					t.Error(err)
				}
				got[i][r] = p
			}
		})
	}
	wg.Wait()
	for r := range rooms {
		owner, locals := got[0][r].URL, 0
		for i := range nodes {
			if got[i][r].URL != owner {
				t.Fatalf("room %d: node %d says %s, node 0 says %s", r, i, got[i][r].URL, owner)
			}
			if got[i][r].Local {
				locals++
				if urls[i] != owner {
					t.Fatalf("room %d: node %d hosts it but it is placed on %s", r, i, owner)
				}
			}
		}
		if locals != 1 {
			t.Fatalf("room %d hosted by %d nodes", r, locals)
		}
		// Lookup agrees, from every node.
		for i, n := range nodes {
			p, ok, err := n.Lookup(context.Background(), room(r))
			if err != nil || !ok || p.URL != owner || p.Local != (urls[i] == owner) {
				t.Fatalf("room %d: Lookup on node %d: %+v %v %v", r, i, p, ok, err)
			}
		}
	}
}

func TestReleaseAndRefresh(t *testing.T) {
	b := bucket(t)
	ttl := 1500 * time.Millisecond
	a := node(t, b, "http://a", ttl, nil)
	bb := node(t, b, "http://b", ttl, nil)
	ctx := context.Background()
	if p, err := a.Place(ctx, room(1)); err != nil || !p.Local {
		t.Fatalf("a places: %+v %v", p, err)
	}
	// Refreshed: still a's well past the TTL.
	time.Sleep(2 * ttl)
	if p, err := bb.Place(ctx, room(1)); err != nil || p.Local || p.URL != "http://a" {
		t.Fatalf("b after 2 TTLs: %+v %v", p, err)
	}
	if err := a.Release(ctx, room(1)); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := bb.Lookup(ctx, room(1)); ok || err != nil {
		t.Fatalf("released room still placed: %v %v", ok, err)
	}
	if p, err := bb.Place(ctx, room(1)); err != nil || !p.Local {
		t.Fatalf("b after release: %+v %v", p, err)
	}
	if p, err := a.Place(ctx, room(1)); err != nil || p.Local || p.URL != "http://b" {
		t.Fatalf("a after b took it: %+v %v", p, err)
	}
	// Releasing a room hosted elsewhere does nothing.
	if err := a.Release(ctx, room(1)); err != nil {
		t.Fatal(err)
	}
	if p, _, _ := a.Lookup(ctx, room(1)); p.URL != "http://b" {
		t.Fatalf("after a's stray release: %+v", p)
	}
}

// TestNodeDies: a node that stops refreshing (its NATS connection gone,
// as when the process is killed) loses its rooms after the TTL, and the
// next join places them elsewhere.
func TestNodeDies(t *testing.T) {
	b := bucket(t)
	ttl := time.Second
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	dead, err := Connect(context.Background(), Config{Conn: nc, Self: "http://dead", Bucket: b, TTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	alive := node(t, b, "http://alive", ttl, nil)
	ctx := context.Background()
	if p, err := dead.Place(ctx, room(7)); err != nil || !p.Local {
		t.Fatalf("%+v %v", p, err)
	}
	nc.Close() // killed: no release, no more refreshes
	defer dead.Close()
	if p, err := alive.Place(ctx, room(7)); err != nil || p.URL != "http://dead" {
		t.Fatalf("before the TTL: %+v %v", p, err)
	}
	deadline := time.Now().Add(ttl + 5*time.Second)
	for {
		p, err := alive.Place(ctx, room(7))
		if err != nil {
			t.Fatal(err)
		}
		if p.Local {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("room still on the dead node: %+v", p)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestLost: a room taken over by another node while its host was cut off
// is reported to the old host through OnLost.
func TestLost(t *testing.T) {
	b := bucket(t)
	ttl := 900 * time.Millisecond
	lost := make(chan Room, 1)
	a := node(t, b, "http://a", ttl, func(r Room) { lost <- r })
	other := node(t, b, "http://b", ttl, nil)
	ctx := context.Background()
	if p, err := a.Place(ctx, room(3)); err != nil || !p.Local {
		t.Fatalf("%+v %v", p, err)
	}
	// Another node takes the key as if a's had expired.
	if err := other.kv.Purge(ctx, room(3).key()); err != nil {
		t.Fatal(err)
	}
	if p, err := other.Place(ctx, room(3)); err != nil || !p.Local {
		t.Fatalf("b: %+v %v", p, err)
	}
	select {
	case r := <-lost:
		if r.CallID != room(3).CallID || string(r.GroupID) != string(room(3).GroupID) {
			t.Fatalf("lost %v", r)
		}
	case <-time.After(3 * ttl):
		t.Fatal("OnLost not called")
	}
	if len(a.Hosted()) != 0 {
		t.Fatalf("a still hosts %v", a.Hosted())
	}
	if p, _ := a.Place(ctx, room(3)); p.Local || p.URL != "http://b" {
		t.Fatalf("a after losing the room: %+v", p)
	}
}

// TestRestart: a node restarted with the same public URL finds the rooms
// it hosted before and hosts them again.
func TestRestart(t *testing.T) {
	b := bucket(t)
	ctx := context.Background()
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	first, err := Connect(ctx, Config{Conn: nc, Self: "http://a", Bucket: b, TTL: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if p, err := first.Place(ctx, room(9)); err != nil || !p.Local {
		t.Fatalf("%+v %v", p, err)
	}
	nc.Close()
	first.Close()
	again := node(t, b, "http://a", 5*time.Second, nil)
	if p, err := again.Place(ctx, room(9)); err != nil || !p.Local {
		t.Fatalf("restarted node: %+v %v", p, err)
	}
	other := node(t, b, "http://b", 5*time.Second, nil)
	if p, err := other.Place(ctx, room(9)); err != nil || p.URL != "http://a" {
		t.Fatalf("other: %+v %v", p, err)
	}
}

func TestBadRoom(t *testing.T) {
	b := bucket(t)
	d := node(t, b, "http://a", time.Second, nil)
	for _, r := range []Room{{CallID: "x"}, {GroupID: []byte("g")}, {GroupID: make([]byte, 65), CallID: "x"}} {
		if _, err := d.Place(context.Background(), r); err == nil {
			t.Fatalf("placed %+v", r)
		}
	}
}
