package test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	hush "github.com/hush-chat/hush/client"
	"github.com/hush-chat/hush/client/profile"
	"github.com/hush-chat/hush/client/sqlite"
	"github.com/hush-chat/hush/mls"
	"github.com/hush-chat/hush/proto"
	"github.com/hush-chat/hush/server"

	_ "modernc.org/sqlite" // reads the server's database
)

// TestE2EDisappearing is the scenario of issue 4: a 5-second timer in a
// group of three people with two devices each, two of them with clocks 10
// minutes off and one offline for longer than the timer. After the
// expiry, the message, its attachment, its reaction, its edit and its
// quote are gone from every device's database files (free pages and
// write-ahead log included) and from the server's store and blob
// directory, and the MLS keys that decrypted it are gone too. Invalid
// timers change nothing.
func TestE2EDisappearing(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for 5-second timers")
	}
	t.Parallel()
	ctx := context.Background()
	s := startE2E(t, func(o *server.Options) {
		o.PurgeInterval, o.ExpiryInterval = 300*time.Millisecond, 100*time.Millisecond
	})
	ahead, behind := skewed(10*time.Minute), skewed(-10*time.Minute)
	alice := s.register(t, "alice")
	alice2 := s.link(t, alice)
	bob := s.register(t, "bob")
	bob2 := s.link(t, bob, ahead)
	carol := s.register(t, "carol", behind)
	carol2 := s.link(t, carol) // offline for a while, below
	online := []*e2eDevice{alice, alice2, bob, bob2, carol}
	all := append(slices.Clone(online), carol2)
	g, err := alice.CreateGroup(ctx, "vanishing", "bob", "carol")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range all {
		d.sync()
	}

	// Invalid timers: a clear error, and the group is unchanged.
	for _, in := range []string{"0s", "4s", "91d", "-5s", "garbage"} {
		if _, err := hush.ParseTimer(in); !errors.Is(err, hush.ErrTimer) {
			t.Errorf("ParseTimer(%q) = %v, want ErrTimer", in, err)
		}
	}
	epoch, commits := epochOf(t, alice, g.ID), len(alice.sent())
	for _, d := range []time.Duration{4 * time.Second, 91 * 24 * time.Hour, -5 * time.Second, 1500 * time.Millisecond} {
		err := alice.SetTimer(ctx, g.ID, d)
		if !errors.Is(err, hush.ErrTimer) || !strings.Contains(err.Error(), "timer") {
			t.Errorf("SetTimer(%v) = %v, want a clear ErrTimer", d, err)
		}
	}
	if epochOf(t, alice, g.ID) != epoch || len(alice.sent()) != commits {
		t.Fatal("an invalid timer changed the group")
	}

	if err := alice.SetTimer(ctx, g.ID, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	for _, d := range all {
		d.sync()
		ev := d.eventsOf(hush.EventTimer)
		if len(ev) != 1 || ev[0].Text != "alice set disappearing messages to 5 seconds" {
			t.Errorf("timer events: %+v", ev)
		}
	}

	runCtx, stop := context.WithCancel(ctx)
	running := make(chan error, len(online))
	for _, d := range online {
		go func() { running <- d.Run(runCtx) }()
	}
	defer func() {
		stop()
		for range online {
			if err := <-running; !errors.Is(err, context.Canceled) {
				t.Errorf("Run = %v", err)
			}
		}
	}()

	marker := "MARKER-" + hex.EncodeToString(random(8))
	sentAt := time.Now()
	text := alice.send(g.ID, "text "+marker)
	file := []byte("file " + marker + strings.Repeat(" and more", 20000))
	attSentAt := time.Now()
	att, err := alice.SendAttachment(ctx, g.ID, hush.File{Name: "name-" + marker + ".txt", Size: int64(len(file)), Body: bytes.NewReader(file)}, "")
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{text.ID, att.ID}
	var payload []byte // what the server holds: ciphertext
	for _, sd := range alice.sent() {
		if sd.ClientMsgID == text.ID {
			payload = sd.Payload
			if sd.Timer != 5 {
				t.Errorf("the server was told timer %d", sd.Timer)
			}
		}
	}
	blobFile := filepath.Join(s.dir, "blobs", att.Attachment.BlobID)
	if _, err := os.Stat(blobFile); err != nil {
		t.Fatal(err)
	}
	if n := serverDisappearing(t, s); n != 3 {
		t.Fatalf("the server holds %d disappearing messages and blobs, want 3", n)
	}

	// The recipients show the messages as they arrive: their timers start
	// then. alice's devices count from the sending.
	started := map[*e2eDevice][]time.Time{alice: {sentAt, attSentAt}, alice2: {sentAt, attSentAt}}
	for _, d := range online[1:] {
		msgs := waitMessages(t, d, g.ID, ids...)
		if d == alice2 {
			if msgs[0].Expires.IsZero() {
				t.Error("alice's other device did not start the timer at the sending")
			}
			continue
		}
		if !msgs[0].Expires.IsZero() || msgs[0].Timer != 5*time.Second {
			t.Errorf("a recipient's copy: timer %v, expires %v before it was shown", msgs[0].Timer, msgs[0].Expires)
		}
		now := time.Now()
		started[d] = []time.Time{now, now}
		if err := d.Shown(ctx, msgs...); err != nil {
			t.Fatal(err)
		}
	}
	// A reaction and an edit; then the timer is off again, and a reply
	// to the message stays when the message goes.
	if _, err := bob.React(ctx, text.ID, "🔥"); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Edit(ctx, text.ID, "edited "+marker); err != nil {
		t.Fatal(err)
	}
	if err := bob.SetTimer(ctx, g.ID, 0); err != nil {
		t.Fatal(err)
	}
	reply, err := bob.Reply(ctx, text.ID, "a reply that stays")
	if err != nil {
		t.Fatal(err)
	}
	traces := map[*e2eDevice][][]byte{}
	for _, d := range online {
		waitFor(t, "the reply, reaction and edit", func() bool {
			m, err := d.Message(ctx, text.ID)
			r, rerr := d.Message(ctx, reply.ID)
			return err == nil && rerr == nil && len(m.Reactions) == 1 && m.Edited && r.ReplyTo == text.ID
		})
		traces[d] = [][]byte{[]byte(marker), []byte(text.ID), []byte(att.ID), rawRow(t, d, "msgs", g.ID+"/"+text.ID)}
		if raw := profileFiles(t, d); !bytes.Contains(raw, traces[d][1]) || !bytes.Contains(raw, traces[d][3]) {
			t.Fatal("the message is not in the device's files before the expiry: the search cannot see it")
		}
	}

	// Every device deletes both messages within a second of their expiry,
	// by its own reading of them, clock skew or not.
	for i, d := range online {
		for j, id := range ids {
			gone := waitExpired(t, d, id)
			if late := gone.Sub(started[d][j].Add(5 * time.Second)); late < -100*time.Millisecond || late > time.Second {
				t.Errorf("device %d deleted %.8s %v after its expiry", i, id, late)
			}
		}
	}
	for i, d := range online {
		wantLines(t, fmt.Sprintf("device %d", i), d.lines(g.ID), "bob: a reply that stays")
		if _, err := d.Message(ctx, text.ID); !errors.Is(err, hush.ErrNotFound) {
			t.Errorf("device %d still finds the quoted message: %v", i, err)
		}
		raw := profileFiles(t, d)
		for j, tr := range traces[d] {
			if bytes.Contains(raw, tr) {
				t.Errorf("device %d: trace %d of the message is still in its database files", i, j)
			}
		}
	}

	// carol's second device was offline for longer than the timer: back
	// within the grace, it receives the messages, keeps the attachment
	// although the server deletes it once every device has it, shows them
	// for the timer, and deletes them.
	if time.Since(sentAt) < 5*time.Second {
		t.Fatal("carol's second device was not offline for longer than the timer")
	}
	carol2.sync()
	wantLines(t, "carol's second device", carol2.lines(g.ID), "alice: edited "+marker, "alice: [file name-"+marker+".txt]", "bob: a reply that stays")
	waitFor(t, "the server to delete the blob", func() bool {
		_, err := os.Stat(blobFile)
		return errors.Is(err, fs.ErrNotExist)
	})
	var out bytes.Buffer
	if _, err := carol2.DownloadAttachment(ctx, att.ID, &out, nil); err != nil || !bytes.Equal(out.Bytes(), file) {
		t.Fatalf("carol's second device's copy of the attachment: %d bytes, %v", out.Len(), err)
	}
	msgs := waitMessages(t, carol2, g.ID, ids...)
	shownAt := time.Now()
	if err := carol2.Shown(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	traces[carol2] = [][]byte{[]byte(marker), []byte(text.ID), []byte(att.ID), rawRow(t, carol2, "msgs", g.ID+"/"+text.ID)}
	for _, id := range ids {
		if late := waitExpired(t, carol2, id).Sub(shownAt.Add(5 * time.Second)); late < -100*time.Millisecond || late > time.Second {
			t.Errorf("carol's second device deleted %.8s %v after its expiry", id, late)
		}
	}
	wantLines(t, "carol's second device", carol2.lines(g.ID), "bob: a reply that stays")
	raw := profileFiles(t, carol2)
	for j, tr := range traces[carol2] {
		if bytes.Contains(raw, tr) {
			t.Errorf("carol's second device: trace %d of the message is still in its database files", j)
		}
	}

	// Every device has them: the server kept nothing of them (and never
	// saw their plaintext).
	if n := serverDisappearing(t, s); n != 0 {
		t.Errorf("the server still holds %d disappearing messages or blobs", n)
	}
	if bytes.Contains(filesUnder(t, s.dir), []byte(marker)) {
		t.Error("the marker is in the server's files")
	}

	// The MLS keys that decrypted the message are gone from every device
	// that received it: its saved ciphertext decrypts nowhere.
	saved, err := mls.UnmarshalMLSMessage(payload)
	if err != nil {
		t.Fatal(err)
	}
	for i, d := range all[1:] {
		grp, err := d.MLSGroup(ctx, g.ID)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := grp.Process(saved); !errors.Is(err, mls.ErrReplay) && !errors.Is(err, mls.ErrWrongEpoch) {
			t.Errorf("device %d decrypts the message again: %v", i+1, err)
		}
		grp.Wipe()
	}
}

// TestE2EDisappearingPastGrace: a device offline for longer than the timer
// and the server's delivery grace never receives a disappearing message;
// the server deleted it on time.
func TestE2EDisappearingPastGrace(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for a 5-second timer")
	}
	t.Parallel()
	ctx := context.Background()
	s := startE2E(t, func(o *server.Options) { o.DeliveryGrace, o.ExpiryInterval = time.Second, 100*time.Millisecond })
	dave, erin := s.register(t, "dave"), s.register(t, "erin")
	dm, err := dave.Direct(ctx, "erin")
	if err != nil {
		t.Fatal(err)
	}
	if err := dave.SetTimer(ctx, dm.ID, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	erin.sync()
	m := dave.send(dm.ID, "too late for erin")
	if n := serverDisappearing(t, s); n != 1 {
		t.Fatalf("the server holds %d disappearing messages, want 1", n)
	}
	waitExpired(t, dave, m.ID)
	waitFor(t, "the server to delete the message", func() bool { return serverDisappearing(t, s) == 0 })
	erin.sync()
	wantLines(t, "erin", erin.lines(dm.ID))
}

// serverDisappearing counts the disappearing messages and the blobs tied
// to them in the server's store.
func serverDisappearing(t *testing.T, s *e2eServer) int {
	t.Helper()
	db, err := sql.Open("sqlite", filepath.Join(s.dir, "hush.db")+"?_pragma=query_only(1)&_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	err = db.QueryRow(`SELECT (SELECT COUNT(*) FROM messages WHERE expires_at IS NOT NULL)
		+ (SELECT COUNT(*) FROM blobs WHERE client_msg_id IS NOT NULL)`).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// sent returns the Sends the device posted.
func (d *e2eDevice) sent() []proto.Send {
	d.sends.mu.Lock()
	defer d.sends.mu.Unlock()
	return slices.Clone(d.sends.all)
}

// skewed sets a device's clock off by d.
func skewed(d time.Duration) func(*hush.Options) {
	return func(o *hush.Options) { o.Now = func() time.Time { return time.Now().Add(d) } }
}

// link adds a second device to first's account.
func (s *e2eServer) link(t *testing.T, first *e2eDevice, opts ...func(*hush.Options)) *e2eDevice {
	t.Helper()
	ctx := context.Background()
	second := s.device(t, opts...)
	offer, err := first.Link(ctx)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := offer.Complete(ctx)
		done <- err
	}()
	if _, err := second.LinkNew(ctx, s.URL(), offer.Code); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	return second
}

func epochOf(t *testing.T, d *e2eDevice, conv string) uint64 {
	t.Helper()
	g, err := d.MLSGroup(context.Background(), conv)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Wipe()
	return g.Epoch()
}

// waitMessages waits for a device to hold the messages, and returns them.
func waitMessages(t *testing.T, d *e2eDevice, conv string, ids ...string) []*hush.Message {
	t.Helper()
	var out []*hush.Message
	waitFor(t, "the messages", func() bool {
		msgs, err := d.Messages(context.Background(), conv)
		if err != nil {
			t.Fatal(err)
		}
		out = slices.DeleteFunc(msgs, func(m *hush.Message) bool { return !slices.Contains(ids, m.ID) })
		return len(out) == len(ids)
	})
	return out
}

// waitExpired waits for a device to report that a message disappeared,
// and returns when it saw the report.
func waitExpired(t *testing.T, d *e2eDevice, id string) time.Time {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		// The time the device reported the deletion, not the time this
		// loop looked: it waits for the devices one after another.
		if at, ok := d.eventAt(hush.EventExpired, func(e hush.Event) bool { return e.Message.ID == id }); ok {
			return at
		}
		if time.Now().After(deadline) {
			t.Fatalf("message %.8s did not disappear", id)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// rawRow reads a row of a device's local store as the file holds it:
// sealed.
func rawRow(t *testing.T, d *e2eDevice, table, key string) []byte {
	t.Helper()
	db, err := sqlite.Open(context.Background(), filepath.Join(d.dir, profile.DBFile))
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
		t.Fatalf("row %s/%s: %v, %v", table, key, ok, err)
	}
	return v
}

// profileFiles reads a device's database files, free pages, write-ahead
// log and its index included.
func profileFiles(t *testing.T, d *e2eDevice) []byte {
	t.Helper()
	var raw []byte
	for _, suffix := range []string{"", "-wal", "-shm"} {
		b, err := os.ReadFile(filepath.Join(d.dir, profile.DBFile+suffix))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
		raw = append(raw, b...)
	}
	return raw
}

// filesUnder reads every file under dir: the server's database files and
// its blobs.
func filesUnder(t *testing.T, dir string) []byte {
	t.Helper()
	var raw []byte
	err := filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil // deleted meanwhile
		}
		raw = append(raw, b...)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return raw
}
