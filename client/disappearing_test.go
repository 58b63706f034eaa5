package client_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hush-chat/hush/client"
	"github.com/hush-chat/hush/client/sqlite"
	"github.com/hush-chat/hush/mls"
	"github.com/hush-chat/hush/proto"
)

// clock is a device's clock: the real one, off by some duration that a
// test may change.
type clock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.off += d
}

// registerAt registers a device whose clock is clk.
func registerAt(t *testing.T, srv *fakeServer, name string, clk *clock) *device {
	t.Helper()
	d := openDevice(t, srv.transport, filepath.Join(t.TempDir(), "state.db"), client.NewStoreKey(), nil, func(o *client.Options) { o.Now = clk.now })
	if _, err := d.Register(context.Background(), "http://fake", name); err != nil {
		t.Fatal(err)
	}
	return d
}

// reopen closes a device and opens it again on its store, as a restart
// of the program would.
func reopen(t *testing.T, srv *fakeServer, d *device, clk *clock) *device {
	t.Helper()
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	return openAgain(t, srv, d, clk)
}

// openAgain opens a closed device on its store.
func openAgain(t *testing.T, srv *fakeServer, d *device, clk *clock) *device {
	t.Helper()
	return openDevice(t, srv.transport, d.path, d.key, nil, func(o *client.Options) { o.Now = clk.now })
}

// rawValue returns a row of a device's store as it is in the file:
// sealed.
func rawValue(t *testing.T, d *device, table, key string) []byte {
	t.Helper()
	db, err := sqlite.Open(context.Background(), d.path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tx, err := db.Begin(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	v, ok, err := tx.Get(table, key)
	if err != nil || !ok {
		t.Fatalf("%s/%s: %v, %v", table, key, ok, err)
	}
	return v
}

// fileBytes reads a device's database files: the database, its
// write-ahead log and its index, free pages and all.
func fileBytes(t *testing.T, d *device) []byte {
	t.Helper()
	var raw []byte
	for _, suffix := range []string{"", "-wal", "-shm"} {
		b, err := os.ReadFile(d.path + suffix)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		raw = append(raw, b...)
	}
	return raw
}

// waitEvent waits for a device to report an event about a message, and
// returns when it did.
func waitEvent(t *testing.T, d *device, typ client.EventType, id string, within time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		d.mu.Lock()
		i := slices.IndexFunc(d.events, func(e client.Event) bool {
			return e.Type == typ && e.Message != nil && e.Message.ID == id
		})
		var at time.Time
		if i >= 0 {
			at = d.at[i]
		}
		d.mu.Unlock()
		if i >= 0 {
			return at
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s event for message %.8s within %s", typ, id, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestParseTimer(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"off": 0, "OFF": 0, "5s": 5 * time.Second, "30s": 30 * time.Second, "1m": time.Minute, "5m": 5 * time.Minute,
		"1h": time.Hour, "8h": 8 * time.Hour, "24h": 24 * time.Hour, "7d": 7 * 24 * time.Hour, "90d": 90 * 24 * time.Hour,
		"1h30m": 90 * time.Minute, "1d12h": 36 * time.Hour, " 2160h ": 90 * 24 * time.Hour,
	} {
		got, err := client.ParseTimer(in)
		if err != nil || got != want {
			t.Errorf("ParseTimer(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"0s", "0", "0d", "4s", "4999ms", "91d", "90d1s", "-5s", "-1d", "1d-1h", "1.5s", "5", "d", "", "soon", "1w", "99999999d"} {
		if d, err := client.ParseTimer(in); !errors.Is(err, client.ErrTimer) {
			t.Errorf("ParseTimer(%q) = %v, %v; want ErrTimer", in, d, err)
		}
	}
	for d, want := range map[time.Duration]string{
		0: "off", 5 * time.Second: "5 seconds", time.Minute: "1 minute", 90 * time.Minute: "1 hour 30 minutes",
		7 * 24 * time.Hour: "7 days", 24*time.Hour + time.Second: "1 day 1 second", 1500 * time.Millisecond: "1.5s",
	} {
		if got := client.FormatTimer(d); got != want {
			t.Errorf("FormatTimer(%v) = %q, want %q", d, got, want)
		}
	}
	for _, p := range client.TimerPresets {
		if err := client.CheckTimer(p); err != nil {
			t.Errorf("preset %v: %v", p, err)
		}
	}
}

// TestSetTimer: the timer is group state that any member changes by a
// commit, that every member sees change, and that refuses values out of
// range without changing anything.
func TestSetTimer(t *testing.T) {
	ctx := context.Background()
	srv := newFakeServer()
	alice, bob, carol := register(t, srv, "alice"), register(t, srv, "bob"), register(t, srv, "carol")
	cv, err := alice.CreateGroup(ctx, "plans", "bob", "carol")
	if err != nil {
		t.Fatal(err)
	}
	mustSync(t, bob, carol)
	g, err := alice.MLSGroup(ctx, cv.ID)
	if err != nil {
		t.Fatal(err)
	}
	epoch := g.Epoch()
	g.Wipe()
	sends := len(srv.sent)
	for _, d := range []time.Duration{-time.Second, 4 * time.Second, 91 * 24 * time.Hour, 1500 * time.Millisecond, time.Nanosecond} {
		if err := alice.SetTimer(ctx, cv.ID, d); !errors.Is(err, client.ErrTimer) {
			t.Errorf("SetTimer(%v) = %v, want ErrTimer", d, err)
		}
	}
	if len(srv.sent) != sends {
		t.Fatal("an invalid timer was sent")
	}
	if g, err := alice.MLSGroup(ctx, cv.ID); err != nil || g.Epoch() != epoch {
		t.Fatalf("an invalid timer changed the group: %v", err)
	} else {
		g.Wipe()
	}

	if err := alice.SetTimer(ctx, cv.ID, time.Hour); err != nil {
		t.Fatal(err)
	}
	mustSync(t, bob, carol)
	for _, d := range []*device{alice, bob, carol} {
		got, err := d.FindConversation(ctx, cv.ID)
		if err != nil || got.Timer != time.Hour {
			t.Errorf("timer = %v, %v; want 1h", got.Timer, err)
		}
		ev := d.eventsOf(client.EventTimer)
		if len(ev) != 1 || ev[0].User != "alice" || ev[0].Text != "alice set disappearing messages to 1 hour" {
			t.Errorf("timer events = %+v", ev)
		}
		g, err := d.MLSGroup(ctx, cv.ID)
		if err != nil {
			t.Fatal(err)
		}
		if data, _ := g.Extensions().Find(client.ExtensionTimer); !bytes.Equal(data, []byte{0, 0, 0x0e, 0x10}) {
			t.Errorf("group context timer = %x", data)
		}
		g.Wipe()
	}
	// Setting the timer in force commits nothing.
	sends = len(srv.sent)
	if err := carol.SetTimer(ctx, cv.ID, time.Hour); err != nil || len(srv.sent) != sends {
		t.Fatalf("setting the same timer: %v, %d sends", err, len(srv.sent)-sends)
	}
	if err := bob.SetTimer(ctx, cv.ID, 0); err != nil {
		t.Fatal(err)
	}
	mustSync(t, alice, carol)
	for _, d := range []*device{alice, bob, carol} {
		ev := d.eventsOf(client.EventTimer)
		if got, _ := d.FindConversation(ctx, cv.ID); got.Timer != 0 || ev[len(ev)-1].Text != "bob turned disappearing messages off" {
			t.Errorf("after bob's change: timer %v, events %+v", got.Timer, ev)
		}
	}
}

// TestTimerCommitRefused: a commit that sets a timer out of range, made
// by a member whose client does not check, is refused like any bad
// commit, before it is merged.
func TestTimerCommitRefused(t *testing.T) {
	ctx := context.Background()
	srv := newFakeServer()
	alice, bob := register(t, srv, "alice"), register(t, srv, "bob")
	cv, err := alice.CreateGroup(ctx, "plans", "bob")
	if err != nil {
		t.Fatal(err)
	}
	mustSync(t, bob)
	g, err := alice.MLSGroup(ctx, cv.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Wipe()
	res, err := g.Commit(mls.CommitOptions{Extensions: append(slices.Clone(g.Extensions()), mls.Extension{Type: client.ExtensionTimer, Data: []byte{0, 0, 0, 1}})})
	if err != nil {
		t.Fatal(err)
	}
	payload, err := res.Commit.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	acct, _ := alice.Account()
	gid := string(g.GroupID())
	srv.mu.Lock()
	_, err = srv.send(srv.devices[acct.DeviceID], gid, proto.Send{ClientMsgID: client.NewMessageID(), Kind: proto.KindCommit, Epoch: g.Epoch(), Payload: payload, Roster: srv.groups[gid].roster})
	srv.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	mustSync(t, bob)
	if w := bob.eventsOf(client.EventWarning); len(w) != 1 {
		t.Errorf("warnings = %+v, want one about the refused commit", w)
	}
	gb, err := bob.MLSGroup(ctx, cv.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer gb.Wipe()
	if gb.Epoch() != g.Epoch() || gb.Extensions().Has(client.ExtensionTimer) {
		t.Fatalf("bob merged the commit: epoch %d, extensions %v", gb.Epoch(), gb.Extensions())
	}
	if got, _ := bob.FindConversation(ctx, cv.ID); got.Timer != 0 || len(bob.eventsOf(client.EventTimer)) != 0 {
		t.Fatalf("bob's timer = %v", got.Timer)
	}
}

// TestDisappearingRestart: a message disappears on every device, with its
// attachment, reactions, edits and the text of the replies' quote; a
// device that was not running deletes it as it starts, before anything
// is shown; the MLS keys that decrypted it are gone.
func TestDisappearingRestart(t *testing.T) {
	ctx := context.Background()
	srv := newFakeServer()
	clk := &clock{}
	alice, bob := registerAt(t, srv, "alice", clk), registerAt(t, srv, "bob", clk)
	cv, err := alice.Direct(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.SetTimer(ctx, cv.ID, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	const marker = "MARKER-f00d-disappearing"
	sent := clk.now()
	m, err := alice.SendText(ctx, cv.ID, "text-"+marker)
	if err != nil {
		t.Fatal(err)
	}
	if m.Timer != 5*time.Second || m.Expires.Sub(sent) < 5*time.Second || m.Expires.Sub(sent) > 6*time.Second {
		t.Fatalf("sent message: timer %v, expires %v after sending", m.Timer, m.Expires.Sub(sent))
	}
	if s := srv.sent[len(srv.sent)-1]; s.Timer != 5 || len(s.Blobs) != 0 {
		t.Fatalf("the server was told timer %d, blobs %v", s.Timer, s.Blobs)
	}
	data := []byte("file-" + marker)
	att, err := alice.SendAttachment(ctx, cv.ID, client.File{Name: "name-" + marker, Size: int64(len(data)), Body: bytes.NewReader(data)}, "")
	if err != nil {
		t.Fatal(err)
	}
	if s := srv.sent[len(srv.sent)-1]; s.Timer != 5 || !slices.Equal(s.Blobs, []string{att.Attachment.BlobID}) {
		t.Fatalf("the server was told timer %d, blobs %v", s.Timer, s.Blobs)
	}
	payload := srv.sent[len(srv.sent)-2].Payload // the text's ciphertext
	mustSync(t, bob)
	msgs, err := bob.Messages(ctx, cv.ID)
	if err != nil || len(msgs) != 2 {
		t.Fatalf("bob: %d messages, %v", len(msgs), err)
	}
	if msgs[0].Timer != 5*time.Second || !msgs[0].Expires.IsZero() {
		t.Fatalf("bob's copy: timer %v, expires %v; its timer must wait until it is shown", msgs[0].Timer, msgs[0].Expires)
	}
	// With the timer off again, bob's reply stays; the text it quotes
	// goes with the message.
	if err := bob.SetTimer(ctx, cv.ID, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Reply(ctx, m.ID, "quoting it"); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.React(ctx, m.ID, "👍"); err != nil {
		t.Fatal(err)
	}
	if s := srv.sent[len(srv.sent)-1]; s.Timer != 5 {
		t.Errorf("a reaction to a disappearing message was sent with timer %d", s.Timer)
	}
	if _, err := alice.Edit(ctx, m.ID, "edited-"+marker); err != nil {
		t.Fatal(err)
	}
	mustSync(t, alice, bob)

	// The server deletes the blob once every device has the message: bob
	// downloaded it before acknowledging, and keeps it.
	clear(srv.blobs)
	var out bytes.Buffer
	if _, err := bob.DownloadAttachment(ctx, att.ID, &out, nil); err != nil || !bytes.Equal(out.Bytes(), data) {
		t.Fatalf("bob's copy of the attachment: %q, %v", out.Bytes(), err)
	}

	// The MLS keys that decrypted the message are gone already.
	gb, err := bob.MLSGroup(ctx, cv.ID)
	if err != nil {
		t.Fatal(err)
	}
	saved, err := mls.UnmarshalMLSMessage(payload)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := gb.Process(saved); !errors.Is(err, mls.ErrReplay) && !errors.Is(err, mls.ErrWrongEpoch) {
		t.Errorf("bob's group decrypts the message again: %v", err)
	}
	gb.Wipe()

	// What must go, as it stands in bob's files: the sealed rows of the
	// message and of the attachment's copy, and the message ids.
	traces := [][]byte{[]byte(m.ID), []byte(att.ID), rawValue(t, bob, "msgs", cv.ID+"/"+m.ID), rawValue(t, bob, "files", att.ID+"/000000")}
	raw := fileBytes(t, bob)
	for i, tr := range traces {
		if !bytes.Contains(raw, tr) {
			t.Fatalf("trace %d is not in bob's files before the expiry: the search cannot see it", i)
		}
	}

	// bob shows the messages; 4 seconds on, they are still there, after a
	// restart too.
	if err := bob.Shown(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	if msgs[0].Expires.IsZero() {
		t.Fatal("Shown started no timer")
	}
	clk.advance(4 * time.Second)
	bob = reopen(t, srv, bob, clk)
	if got := texts(t, bob, cv.ID); len(got) != 3 {
		t.Fatalf("bob, 4s after showing: %q", got)
	}
	// Both devices are stopped; when they start after the expiry, the
	// message is gone before anything could show it.
	if err := bob.Close(); err != nil {
		t.Fatal(err)
	}
	if err := alice.Close(); err != nil {
		t.Fatal(err)
	}
	clk.advance(2 * time.Second)
	for _, d := range []*device{openAgain(t, srv, alice, clk), openAgain(t, srv, bob, clk)} {
		equal(t, "after the expiry", texts(t, d, cv.ID), []string{"bob: quoting it"})
		if got := d.eventsOf(client.EventExpired); len(got) != 2 {
			t.Errorf("expired events = %+v, want 2", got)
		}
		if _, err := d.Message(ctx, m.ID); !errors.Is(err, client.ErrNotFound) {
			t.Errorf("Message(%s) = %v", m.ID, err)
		}
		if _, err := d.React(ctx, m.ID, "👍"); !errors.Is(err, client.ErrNotFound) {
			t.Errorf("a reaction to the gone message: %v", err)
		}
		d.Close()
		raw := fileBytes(t, d)
		for _, s := range []string{marker, m.ID, att.ID} {
			if bytes.Contains(raw, []byte(s)) {
				t.Errorf("%q is still in the database files", s)
			}
		}
		if d.path == bob.path {
			for i, tr := range traces {
				if bytes.Contains(raw, tr) {
					t.Errorf("trace %d is still in bob's database files", i)
				}
			}
		}
	}
}

// TestDisappearingClockSkew: devices whose clocks are 10 minutes off
// delete a message on time by their own reading of it: the sender's at
// its sending, the sender's other device at its sending too (measured
// with the server's clock alone), the recipient 5 seconds after showing
// it, all while running.
func TestDisappearingClockSkew(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for a 5-second timer")
	}
	t.Parallel()
	ctx := context.Background()
	srv := newFakeServer()
	ahead, behind := &clock{off: 10 * time.Minute}, &clock{off: -10 * time.Minute}
	alice, bob := registerAt(t, srv, "alice", ahead), registerAt(t, srv, "bob", behind)
	alice2 := openDevice(t, srv.transport, filepath.Join(t.TempDir(), "state.db"), client.NewStoreKey(), nil, func(o *client.Options) { o.Now = behind.now })
	linkTo(t, alice, alice2)
	cv, err := alice.Direct(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.SetTimer(ctx, cv.ID, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	mustSync(t, alice2, bob)
	sentAt := time.Now()
	m, err := alice.SendText(ctx, cv.ID, "soon gone")
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // alice's other device gets it a second later: its timer ran meanwhile
	mustSync(t, alice2, bob)
	msgs, err := bob.Messages(ctx, cv.ID)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // bob shows it a second later still
	shownAt := time.Now()
	if err := bob.Shown(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		who   string
		d     *device
		start time.Time
	}{{"alice", alice, sentAt}, {"alice's other device", alice2, sentAt}, {"bob", bob, shownAt}} {
		gone := waitEvent(t, c.d, client.EventExpired, m.ID, 10*time.Second)
		if late := gone.Sub(c.start.Add(5 * time.Second)); late < -100*time.Millisecond || late > time.Second {
			t.Errorf("%s deleted the message %v after its expiry", c.who, late)
		}
		if got := texts(t, c.d, cv.ID); len(got) != 0 {
			t.Errorf("%s still has %q", c.who, got)
		}
	}
}

// TestTimerRace: a message sent before its sender learnt of a timer
// change keeps the timer it was sent with.
func TestTimerRace(t *testing.T) {
	ctx := context.Background()
	srv := newFakeServer()
	alice, bob, carol := register(t, srv, "alice"), register(t, srv, "bob"), register(t, srv, "carol")
	cv, err := alice.CreateGroup(ctx, "plans", "bob", "carol")
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.SetTimer(ctx, cv.ID, time.Hour); err != nil {
		t.Fatal(err)
	}
	mustSync(t, bob, carol)
	// bob shortens the timer; alice, who has not synced, sends.
	if err := bob.SetTimer(ctx, cv.ID, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	before, err := alice.SendText(ctx, cv.ID, "sent before alice learnt")
	if err != nil {
		t.Fatal(err)
	}
	mustSync(t, alice)
	after, err := alice.SendText(ctx, cv.ID, "sent after")
	if err != nil {
		t.Fatal(err)
	}
	mustSync(t, bob, carol)
	for _, d := range []*device{alice, bob, carol} {
		for _, c := range []struct {
			id   string
			want time.Duration
		}{{before.ID, time.Hour}, {after.ID, 30 * time.Second}} {
			if m, err := d.Message(ctx, c.id); err != nil || m.Timer != c.want {
				t.Errorf("timer of %q: %v, %v; want %v", m.Text, m.Timer, err, c.want)
			}
		}
	}
	if !strings.Contains(bob.eventsOf(client.EventTimer)[1].Text, "30 seconds") {
		t.Errorf("bob's events: %+v", bob.eventsOf(client.EventTimer))
	}
}

// offlineTransport fails every request while down, as a device without a
// network does.
type offlineTransport struct {
	*fakeServer
	mu   sync.Mutex
	down bool
}

func (o *offlineTransport) transport(string) (client.Transport, error) { return o, nil }

func (o *offlineTransport) setDown(down bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.down = down
}

func (o *offlineTransport) Do(ctx context.Context, r *client.Request) (io.ReadCloser, error) {
	o.mu.Lock()
	down := o.down
	o.mu.Unlock()
	if down {
		return nil, errors.New("network is unreachable")
	}
	return o.fakeServer.Do(ctx, r)
}

// TestDisappearingUnsent: a disappearing message that could not be sent
// before its timer ran out on the sender's device is never sent.
func TestDisappearingUnsent(t *testing.T) {
	ctx := context.Background()
	srv := newFakeServer()
	net := &offlineTransport{fakeServer: srv}
	clk := &clock{}
	alice := openDevice(t, net.transport, filepath.Join(t.TempDir(), "state.db"), client.NewStoreKey(), nil, func(o *client.Options) { o.Now = clk.now })
	if _, err := alice.Register(ctx, "http://fake", "alice"); err != nil {
		t.Fatal(err)
	}
	bob := register(t, srv, "bob")
	cv, err := alice.Direct(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.SetTimer(ctx, cv.ID, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	net.setDown(true)
	if _, err := alice.SendText(ctx, cv.ID, "never sent"); err == nil {
		t.Fatal("sent while offline")
	}
	msgs, err := alice.Messages(ctx, cv.ID)
	if err != nil || len(msgs) != 1 || !msgs[0].Pending {
		t.Fatalf("the unsent message: %+v, %v", msgs, err)
	}
	// alice's device restarts after the expiry, online again.
	if err := alice.Close(); err != nil {
		t.Fatal(err)
	}
	clk.advance(6 * time.Second)
	net.setDown(false)
	alice = openDevice(t, net.transport, alice.path, alice.key, nil, func(o *client.Options) { o.Now = clk.now })
	mustSync(t, alice, bob)
	if got := texts(t, alice, cv.ID); len(got) != 0 {
		t.Errorf("alice still has %q", got)
	}
	if got := texts(t, bob, cv.ID); len(got) != 0 {
		t.Errorf("bob received %q", got)
	}
	for _, s := range srv.sent {
		if s.ClientMsgID == msgs[0].ID {
			t.Fatal("the expired message was sent")
		}
	}
}

// TestDisappearingOtherProcess: a timer started by another client on the
// same store (`hush read` while `hush watch` runs) is kept by the one
// that stays open.
func TestDisappearingOtherProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for a 5-second timer")
	}
	t.Parallel()
	ctx := context.Background()
	srv := newFakeServer()
	alice, bob := register(t, srv, "alice"), register(t, srv, "bob")
	cv, err := alice.Direct(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.SetTimer(ctx, cv.ID, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	m, err := alice.SendText(ctx, cv.ID, "read elsewhere")
	if err != nil {
		t.Fatal(err)
	}
	reader := openDevice(t, srv.transport, bob.path, bob.key, nil)
	mustSync(t, reader)
	msgs, err := reader.Messages(ctx, cv.ID)
	if err != nil {
		t.Fatal(err)
	}
	shownAt := time.Now()
	if err := reader.Shown(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	if err := reader.Close(); err != nil {
		t.Fatal(err)
	}
	gone := waitEvent(t, bob, client.EventExpired, m.ID, 10*time.Second)
	if late := gone.Sub(shownAt.Add(5 * time.Second)); late < -100*time.Millisecond || late > time.Second {
		t.Errorf("the open client deleted the message %v after its expiry", late)
	}
}
