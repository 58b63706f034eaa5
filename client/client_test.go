package client_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hush-chat/hush/client"
	"github.com/hush-chat/hush/client/sqlite"
	"github.com/hush-chat/hush/mls"
	"github.com/hush-chat/hush/proto"
)

// device is one test device: a client on its own store, and the events
// it emitted.
type device struct {
	*client.Client
	path   string
	key    *client.StoreKey
	mu     sync.Mutex
	events []client.Event
	at     []time.Time // when each event came
}

func (d *device) onEvent(e client.Event) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.events = append(d.events, e)
	d.at = append(d.at, time.Now())
}

func (d *device) eventsOf(t client.EventType) []client.Event {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []client.Event
	for _, e := range d.events {
		if e.Type == t {
			out = append(out, e)
		}
	}
	return out
}

// openDevice opens a client on the store at path (created if new); opts
// change its options.
func openDevice(t *testing.T, tr func(string) (client.Transport, error), path string, key *client.StoreKey, wrap func(client.Storage) client.Storage, opts ...func(*client.Options)) *device {
	t.Helper()
	db, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	var st client.Storage = db
	if wrap != nil {
		st = wrap(db)
	}
	d := &device{path: path, key: key}
	o := client.Options{Storage: st, Key: key, Transport: tr, OnEvent: d.onEvent, KeyPackageBatch: 5}
	for _, f := range opts {
		f(&o)
	}
	c, err := client.Open(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	d.Client = c
	t.Cleanup(func() { c.Close() })
	return d
}

func newDevice(t *testing.T, srv *fakeServer) *device {
	t.Helper()
	return openDevice(t, srv.transport, filepath.Join(t.TempDir(), "state.db"), client.NewStoreKey(), nil)
}

func register(t *testing.T, srv *fakeServer, name string) *device {
	t.Helper()
	d := newDevice(t, srv)
	if _, err := d.Register(context.Background(), "http://fake", name); err != nil {
		t.Fatal(err)
	}
	return d
}

func mustSync(t *testing.T, ds ...*device) {
	t.Helper()
	for _, d := range ds {
		if err := d.Sync(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

// aliceToBob registers alice and bob; alice starts a chat with bob and
// sends "before" (bob has not read it).
func aliceToBob(t *testing.T, srv *fakeServer) (alice, bob *device, cv *client.Conversation) {
	t.Helper()
	ctx := context.Background()
	alice, bob = register(t, srv, "alice"), register(t, srv, "bob")
	cv, err := alice.Direct(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.SendText(ctx, cv.ID, "before"); err != nil {
		t.Fatal(err)
	}
	return alice, bob, cv
}

// linkTo links device nd to old's account, as `hush link` does on both
// sides, and returns the account nd got.
func linkTo(t *testing.T, old, nd *device) *client.Account {
	t.Helper()
	ctx := context.Background()
	offer, err := old.Link(ctx)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := offer.Complete(ctx)
		done <- err
	}()
	acct, err := nd.LinkNew(ctx, "http://fake", offer.Code)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	return acct
}

// texts lists a conversation's messages as "sender: text".
func texts(t *testing.T, d *device, conv string) []string {
	t.Helper()
	msgs, err := d.Messages(context.Background(), conv)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range msgs {
		s := m.Sender + ": " + m.Text
		if m.Deleted {
			s = m.Sender + ": (deleted)"
		}
		out = append(out, s)
	}
	return out
}

func equal(t *testing.T, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("%s:\ngot  %q\nwant %q", what, got, want)
	}
}

func TestDirectChat(t *testing.T) {
	ctx := context.Background()
	srv := newFakeServer()
	alice, bob := register(t, srv, "alice"), register(t, srv, "Bob")

	cv, err := alice.Direct(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	if cv.Kind != client.KindDirect || cv.Peer != "bob" {
		t.Fatalf("conversation = %+v", cv)
	}
	hi, err := alice.SendText(ctx, cv.ID, "hi bob")
	if err != nil {
		t.Fatal(err)
	}
	if hi.Pending || hi.Seq == 0 {
		t.Fatalf("sent message not marked sent: %+v", hi)
	}
	mustSync(t, bob)
	bcv, err := bob.FindConversation(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if bcv.ID != cv.ID || bcv.Kind != client.KindDirect || bcv.Peer != "alice" {
		t.Fatalf("bob's conversation = %+v", bcv)
	}
	if _, err := bob.Reply(ctx, hi.ID[:8], "hi alice"); err != nil {
		t.Fatal(err)
	}
	mustSync(t, alice)
	want := []string{"alice: hi bob", "bob: hi alice"}
	equal(t, "alice sees", texts(t, alice, cv.ID), want)
	equal(t, "bob sees", texts(t, bob, cv.ID), want)

	msgs, _ := alice.Messages(ctx, cv.ID)
	if msgs[1].ReplyTo != hi.ID || msgs[1].Outgoing || !msgs[0].Outgoing {
		t.Errorf("reply or direction lost: %+v", msgs)
	}

	// Reactions toggle; edits and deletes only by the sender; receipts.
	if _, err := bob.React(ctx, hi.ID, "👍"); err != nil {
		t.Fatal(err)
	}
	if m, err := bob.React(ctx, hi.ID, "🎉"); err != nil || len(m.Reactions) != 2 {
		t.Fatalf("react: %v %+v", err, m)
	}
	if m, err := bob.React(ctx, hi.ID, "👍"); err != nil || len(m.Reactions) != 1 {
		t.Fatalf("toggle: %v %+v", err, m)
	}
	if _, err := bob.Edit(ctx, hi.ID, "hijack"); err == nil {
		t.Fatal("bob edited alice's message")
	}
	if _, err := alice.Edit(ctx, hi.ID, "hi bob!"); err != nil {
		t.Fatal(err)
	}
	if n, err := bob.MarkRead(ctx, cv.ID); err != nil || n != 1 {
		t.Fatalf("MarkRead = %d, %v", n, err)
	}
	mustSync(t, alice, bob)
	m, err := alice.Message(ctx, hi.ID)
	if err != nil {
		t.Fatal(err)
	}
	if m.Text != "hi bob!" || !m.Edited || len(m.Reactions) != 1 || m.Reactions[0] != (client.Reaction{Emoji: "🎉", User: "bob"}) ||
		len(m.ReadBy) != 1 || m.ReadBy[0] != "bob" {
		t.Errorf("alice's view of her message: %+v", m)
	}
	if m, _ := bob.Message(ctx, hi.ID); m.Text != "hi bob!" || !m.Edited || !m.Read {
		t.Errorf("bob's view of alice's message: %+v", m)
	}
	if err := alice.Delete(ctx, hi.ID); err != nil {
		t.Fatal(err)
	}
	mustSync(t, bob)
	equal(t, "after delete", texts(t, bob, cv.ID), []string{"alice: (deleted)", "bob: hi alice"})
	if len(bob.eventsOf(client.EventDelete)) != 1 || len(alice.eventsOf(client.EventReceipt)) != 1 {
		t.Errorf("events: delete %d, receipt %d", len(bob.eventsOf(client.EventDelete)), len(alice.eventsOf(client.EventReceipt)))
	}

	// The same 1:1 chat is found again, not started twice.
	if again, err := bob.Direct(ctx, "alice"); err != nil || again.ID != cv.ID {
		t.Errorf("Direct again = %v, %v", again, err)
	}
}

func TestAttachment(t *testing.T) {
	ctx := context.Background()
	srv := newFakeServer()
	alice, bob := register(t, srv, "alice"), register(t, srv, "bob")
	cv, err := alice.Direct(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("attachment data "), 20000) // several chunks
	var progress int64
	m, err := alice.SendAttachment(ctx, cv.ID, client.File{Name: "notes.txt", ContentType: "text/plain", Size: int64(len(data)),
		Body: bytes.NewReader(data), Progress: func(done, _ int64) { progress = done }}, "the notes")
	if err != nil {
		t.Fatal(err)
	}
	if progress != client.EncryptedSize(int64(len(data))) {
		t.Errorf("progress ended at %d", progress)
	}
	for _, blob := range srv.blobs {
		if bytes.Contains(blob, []byte("attachment data")) {
			t.Fatal("the blob holds plaintext")
		}
	}
	mustSync(t, bob)
	var out bytes.Buffer
	got, err := bob.DownloadAttachment(ctx, m.ID, &out, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), data) || got.Attachment.Name != "notes.txt" || got.Text != "the notes" {
		t.Fatalf("download: %d bytes, %+v", out.Len(), got.Attachment)
	}
	// A blob the server swapped does not verify.
	for id := range srv.blobs {
		srv.blobs[id][100] ^= 1
	}
	if _, err := bob.DownloadAttachment(ctx, m.ID, new(bytes.Buffer), nil); !errors.Is(err, client.ErrAttachment) {
		t.Fatalf("tampered blob: %v", err)
	}
}

func TestGroupAddRemove(t *testing.T) {
	ctx := context.Background()
	srv := newFakeServer()
	alice, bob, carol := register(t, srv, "alice"), register(t, srv, "bob"), register(t, srv, "carol")
	cv, err := alice.CreateGroup(ctx, "plans", "bob", "carol")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.SendText(ctx, cv.ID, "hello all"); err != nil {
		t.Fatal(err)
	}
	mustSync(t, bob, carol)
	for _, d := range []*device{bob, carol} {
		got, err := d.FindConversation(ctx, "plans")
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != cv.ID || got.Kind != client.KindGroup {
			t.Fatalf("conversation = %+v", got)
		}
		equal(t, "group", texts(t, d, cv.ID), []string{"alice: hello all"})
		ms, err := d.Members(ctx, cv.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) != 3 {
			t.Fatalf("members = %+v", ms)
		}
		for _, m := range ms {
			if !m.Verified {
				t.Errorf("%s: member %s not verified", "", m.User)
			}
		}
	}
	if err := alice.RemoveMember(ctx, cv.ID, "carol"); err != nil {
		t.Fatal(err)
	}
	carolGroup, err := carol.MLSGroup(ctx, cv.ID) // carol's saved state, before she learns anything
	if err != nil {
		t.Fatal(err)
	}
	defer carolGroup.Wipe()
	if _, err := alice.SendText(ctx, cv.ID, "carol is gone"); err != nil {
		t.Fatal(err)
	}
	last := srv.sent[len(srv.sent)-1].Payload
	msg, err := mls.UnmarshalMLSMessage(last)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := carolGroup.Process(msg); err == nil {
		t.Fatal("carol's state decrypts a message sent after her removal")
	}
	mustSync(t, bob, carol)
	equal(t, "bob after removal", texts(t, bob, cv.ID), []string{"alice: hello all", "alice: carol is gone"})
	equal(t, "carol after removal", texts(t, carol, cv.ID), []string{"alice: hello all"})
	if ev := bob.eventsOf(client.EventMemberRemoved); len(ev) != 1 || ev[0].User != "carol" {
		t.Errorf("bob's removal events: %+v", ev)
	}
}

func TestEpochConflictRetried(t *testing.T) {
	ctx := context.Background()
	srv := newFakeServer()
	alice, bob := register(t, srv, "alice"), register(t, srv, "bob")
	carol, dave := register(t, srv, "carol"), register(t, srv, "dave")
	cv, err := alice.CreateGroup(ctx, "g", "bob")
	if err != nil {
		t.Fatal(err)
	}
	mustSync(t, bob)
	// Bob commits first; alice's commit was built on the old epoch.
	if err := bob.AddMembers(ctx, cv.ID, "carol"); err != nil {
		t.Fatal(err)
	}
	if err := alice.AddMembers(ctx, cv.ID, "dave"); err != nil {
		t.Fatal(err)
	}
	if srv.conflicts != 1 {
		t.Fatalf("%d epoch conflicts, want 1", srv.conflicts)
	}
	if _, err := alice.SendText(ctx, cv.ID, "everyone?"); err != nil {
		t.Fatal(err)
	}
	mustSync(t, bob, carol, dave)
	for _, d := range []*device{bob, carol, dave} {
		msgs := texts(t, d, cv.ID)
		if len(msgs) == 0 || msgs[len(msgs)-1] != "alice: everyone?" {
			t.Errorf("%v", msgs)
		}
	}
}

func TestLinkedDevice(t *testing.T) {
	ctx := context.Background()
	srv := newFakeServer()
	alice, bob, cv := aliceToBob(t, srv)
	mustSync(t, bob)

	bob2 := newDevice(t, srv)
	if acct := linkTo(t, bob, bob2); acct.Username != "bob" {
		t.Fatalf("linked as %q", acct.Username)
	}
	mustSync(t, bob2, alice)
	if _, err := alice.SendText(ctx, cv.ID, "after"); err != nil {
		t.Fatal(err)
	}
	if _, err := bob2.SendText(ctx, cv.ID, "from bob's second device"); err != nil {
		t.Fatal(err)
	}
	mustSync(t, alice, bob, bob2)
	want := []string{"alice: before", "alice: after", "bob: from bob's second device"}
	equal(t, "alice", texts(t, alice, cv.ID), want)
	equal(t, "bob", texts(t, bob, cv.ID), want)
	equal(t, "bob2", texts(t, bob2, cv.ID), want[1:])
	msgs, _ := bob.Messages(ctx, cv.ID)
	if !msgs[2].Outgoing {
		t.Error("bob's first device does not show the second one's message as his own")
	}
	devs, err := bob2.Devices(ctx)
	if err != nil || len(devs) != 2 || !devs[0].Verified || !devs[1].Verified {
		t.Errorf("devices = %+v, %v", devs, err)
	}
	// A new group includes both of bob's devices.
	g, err := alice.CreateGroup(ctx, "both", "bob")
	if err != nil {
		t.Fatal(err)
	}
	if ms, _ := alice.Members(ctx, g.ID); len(ms) != 3 {
		t.Errorf("members = %+v", ms)
	}
}

// TestLinkBeforeCatchingUp: bob links a second device before his first
// has read the Welcome of a conversation alice started with him; the
// linking catches up first, so the new device is added to it too.
func TestLinkBeforeCatchingUp(t *testing.T) {
	ctx := context.Background()
	srv := newFakeServer()
	alice, bob, cv := aliceToBob(t, srv)
	// bob has not synced: the Welcome waits in his inbox.
	bob2 := newDevice(t, srv)
	linkTo(t, bob, bob2)
	mustSync(t, alice)
	if _, err := alice.SendText(ctx, cv.ID, "after"); err != nil {
		t.Fatal(err)
	}
	mustSync(t, bob, bob2)
	equal(t, "bob", texts(t, bob, cv.ID), []string{"alice: before", "alice: after"})
	equal(t, "bob2", texts(t, bob2, cv.ID), []string{"alice: after"})
}

// TestJoinAddsOwnDevices: alice starts a chat with bob at the moment
// bob links a second device, so her Welcome reaches bob's first device
// only (here: bob2 has no KeyPackage to claim then). Joining, bob's first
// device adds the account's device the Welcome left out, and from then
// on bob2 reads the chat too.
func TestJoinAddsOwnDevices(t *testing.T) {
	ctx := context.Background()
	srv := newFakeServer()
	alice, bob := register(t, srv, "alice"), register(t, srv, "bob")
	bob2 := newDevice(t, srv)
	linkTo(t, bob, bob2)
	bob2ID, err := bob2.DeviceID()
	if err != nil {
		t.Fatal(err)
	}
	srv.mu.Lock()
	d := srv.devices[bob2ID]
	kps, lastResort := d.kps, d.lastResort
	d.kps, d.lastResort = nil, nil
	srv.mu.Unlock()
	cv, err := alice.Direct(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.SendText(ctx, cv.ID, "before"); err != nil {
		t.Fatal(err)
	}
	if ms, _ := alice.Members(ctx, cv.ID); len(ms) != 2 {
		t.Fatalf("the test needs a chat without bob2: members %+v", ms)
	}
	srv.mu.Lock()
	d.kps, d.lastResort = kps, lastResort
	srv.mu.Unlock()

	mustSync(t, bob) // joins, and adds bob2
	mustSync(t, alice)
	if ms, _ := alice.Members(ctx, cv.ID); len(ms) != 3 {
		t.Fatalf("alice's members after bob joined: %+v", ms)
	}
	if _, err := alice.SendText(ctx, cv.ID, "after"); err != nil {
		t.Fatal(err)
	}
	mustSync(t, bob2, bob)
	equal(t, "bob2", texts(t, bob2, cv.ID), []string{"alice: after"})
	equal(t, "bob", texts(t, bob, cv.ID), []string{"alice: before", "alice: after"})
	// A later sync adds nothing more (no second commit for bob2).
	before := len(srv.sent)
	mustSync(t, bob)
	if len(srv.sent) != before {
		t.Errorf("bob's next sync sent %d more", len(srv.sent)-before)
	}
}

func TestKeyPackageRefill(t *testing.T) {
	ctx := context.Background()
	srv := newFakeServer()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	c, err := client.Open(ctx, client.Options{Storage: db, Key: client.NewStoreKey(), Transport: srv.transport,
		KeyPackageBatch: 4, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	a, err := c.Register(ctx, "http://fake", "alice")
	if err != nil {
		t.Fatal(err)
	}
	dev := srv.devices[a.DeviceID]
	if len(dev.kps) != 4 || dev.lastResort == nil {
		t.Fatalf("registration uploaded %d KeyPackages, last resort %v", len(dev.kps), dev.lastResort != nil)
	}
	first := dev.lastResort
	if err := c.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if len(dev.kps) != proto.RefillBelow || !bytes.Equal(dev.lastResort, first) {
		t.Fatalf("after a refill: %d KeyPackages (want %d), last resort replaced %v", len(dev.kps), proto.RefillBelow, !bytes.Equal(dev.lastResort, first))
	}
	now = now.Add(8 * 24 * time.Hour)
	if err := c.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if len(dev.kps) != proto.RefillBelow || bytes.Equal(dev.lastResort, first) {
		t.Fatalf("a week later: %d KeyPackages, last resort replaced %v", len(dev.kps), !bytes.Equal(dev.lastResort, first))
	}
}

// TestCatchUpPages receives more than one fetch holds.
func TestCatchUpPages(t *testing.T) {
	ctx := context.Background()
	srv := newFakeServer()
	srv.page = 7
	alice, bob := register(t, srv, "alice"), register(t, srv, "bob")
	cv, err := alice.Direct(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := range 30 {
		text := fmt.Sprintf("m%03d", i)
		if _, err := alice.SendText(ctx, cv.ID, text); err != nil {
			t.Fatal(err)
		}
		want = append(want, "alice: "+text)
	}
	mustSync(t, bob)
	equal(t, "bob", texts(t, bob, cv.ID), want)
}
