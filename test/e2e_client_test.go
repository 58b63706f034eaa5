package test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	hush "github.com/hush-chat/hush/client"
	"github.com/hush-chat/hush/mls"
)

// TestE2EAcceptance is the scenario of issue 3, with real clients and a
// real server.
func TestE2EAcceptance(t *testing.T) {
	ctx := context.Background()
	s := startE2E(t)
	alice, bob := s.register(t, "alice"), s.register(t, "bob")

	// alice writes to bob while bob is offline.
	dm := alice.direct("bob")
	hello := alice.send(dm.ID, "hello bob, are you there?")
	// bob comes online, receives it, and replies.
	bob.sync()
	wantLines(t, "bob", bob.lines(dm.ID), "alice: hello bob, are you there?")
	if _, err := bob.Reply(ctx, hello.ID, "here!"); err != nil {
		t.Fatal(err)
	}
	alice.sync()
	for _, d := range []*e2eDevice{alice, bob} {
		wantLines(t, "both", d.lines(dm.ID), "alice: hello bob, are you there?", "bob: here!")
	}

	// A group with carol; carol is removed, and her saved state cannot
	// decrypt what is sent after.
	carol := s.register(t, "carol")
	g := alice.newGroup("weekend", "bob", "carol")
	alice.send(g.ID, "hike on saturday?")
	bob.sync()
	carol.sync()
	wantLines(t, "carol", carol.lines(g.ID), "alice: hike on saturday?")
	carolState, err := carol.MLSGroup(ctx, g.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer carolState.Wipe()
	if err := alice.RemoveMember(ctx, g.ID, "carol"); err != nil {
		t.Fatal(err)
	}
	alice.send(g.ID, "just us two now")
	secret, err := mls.UnmarshalMLSMessage(alice.sends.lastApplication(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := carolState.Process(secret); err == nil {
		t.Fatal("carol's saved state decrypts a message sent after her removal")
	}
	carol.sync()
	wantLines(t, "carol", carol.lines(g.ID), "alice: hike on saturday?")
	bob.sync()
	wantLines(t, "bob", bob.lines(g.ID), "alice: hike on saturday?", "alice: just us two now")
	if cv, err := bob.FindConversation(ctx, "weekend"); err != nil || cv.ID != g.ID {
		t.Errorf("bob does not find the group by its name: %v", err)
	}

	// bob links a second device: from then on it receives every
	// conversation's messages, and what it sends reaches bob's first one.
	bob2 := s.link(t, bob)
	bob2.sync()
	alice.sync()
	alice.send(dm.ID, "to both of bob's devices")
	alice.send(g.ID, "group news")
	bob2.send(dm.ID, "sent from the second device")
	alice.sync()
	bob.sync()
	bob2.sync()
	wantLines(t, "bob's second device (1:1)", bob2.lines(dm.ID), "alice: to both of bob's devices", "bob: sent from the second device")
	wantLines(t, "bob's second device (group)", bob2.lines(g.ID), "alice: group news")
	wantLines(t, "bob's first device", bob.lines(dm.ID),
		"alice: hello bob, are you there?", "bob: here!", "alice: to both of bob's devices", "bob: sent from the second device")
	wantLines(t, "alice", alice.lines(dm.ID),
		"alice: hello bob, are you there?", "bob: here!", "alice: to both of bob's devices", "bob: sent from the second device")
	if cv, err := bob2.FindConversation(ctx, "weekend"); err != nil || cv.ID != g.ID {
		t.Errorf("bob's second device does not know the group's name: %v", err)
	}
	devs, err := bob2.Devices(ctx)
	if err != nil || len(devs) != 2 || !devs[0].Verified || !devs[1].Verified {
		t.Errorf("bob's devices: %+v, %v", devs, err)
	}
}

// TestE2EMessageOperations round-trips replies, reactions, edits,
// deletions, receipts and attachments.
func TestE2EMessageOperations(t *testing.T) {
	ctx := context.Background()
	s := startE2E(t)
	alice, bob := s.register(t, "alice"), s.register(t, "bob")
	dm := alice.direct("bob")
	first := alice.send(dm.ID, "first")
	second := alice.send(dm.ID, "second, with a typo")
	bob.sync()
	if _, err := bob.Reply(ctx, first.ID, "re: first"); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.React(ctx, first.ID, "❤️"); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.MarkRead(ctx, dm.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Edit(ctx, second.ID, "second, fixed"); err != nil {
		t.Fatal(err)
	}
	if err := alice.Delete(ctx, first.ID); err != nil {
		t.Fatal(err)
	}
	file := bytes.Repeat([]byte("0123456789abcdef"), 50000) // 800 KB, 13 chunks
	att, err := alice.SendAttachment(ctx, dm.ID, hush.File{Name: "data.bin", ContentType: "application/octet-stream", Size: int64(len(file)), Body: bytes.NewReader(file)}, "")
	if err != nil {
		t.Fatal(err)
	}
	alice.sync()
	bob.sync()
	for _, d := range []*e2eDevice{alice, bob} {
		wantLines(t, "after the operations", d.lines(dm.ID), "alice: (deleted)", "alice: second, fixed", "bob: re: first", "alice: [file data.bin]")
	}
	m, err := alice.Message(ctx, second.ID)
	if err != nil || !m.Edited || len(m.ReadBy) != 1 || m.ReadBy[0] != "bob" {
		t.Errorf("alice's second message: %+v, %v", m, err)
	}
	if m, _ := bob.Message(ctx, first.ID); !m.Deleted || m.Text != "" || len(m.Reactions) != 0 {
		t.Errorf("bob still holds the deleted message's content: %+v", m)
	}
	var got bytes.Buffer
	if _, err := bob.DownloadAttachment(ctx, att.ID, &got, nil); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), file) {
		t.Error("downloaded file differs")
	}
	// Reaction toggling on a live message.
	if m, err := bob.React(ctx, second.ID, "👍"); err != nil || len(m.Reactions) != 1 {
		t.Fatalf("react: %+v, %v", m, err)
	}
	if m, err := bob.React(ctx, second.ID, "👍"); err != nil || len(m.Reactions) != 0 {
		t.Fatalf("react again: %+v, %v", m, err)
	}
	alice.sync()
	if m, _ := alice.Message(ctx, second.ID); len(m.Reactions) != 0 {
		t.Errorf("the withdrawn reaction is still shown: %+v", m.Reactions)
	}
	// The reaction to the message alice had deleted meanwhile is dropped;
	// the two to her second message are shown.
	if len(alice.eventsOf(hush.EventReaction)) != 2 {
		t.Errorf("alice saw %d reaction events, want 2", len(alice.eventsOf(hush.EventReaction)))
	}
}

// TestE2EThreeUsersTwoDevicesEach has every device of a 3-person group
// (two devices each) see every message, in the same order.
func TestE2EThreeUsersTwoDevicesEach(t *testing.T) {
	ctx := context.Background()
	s := startE2E(t)
	var devs []*e2eDevice
	for _, name := range []string{"ann", "ben", "cat"} {
		first := s.register(t, name)
		devs = append(devs, first, s.link(t, first))
	}
	g := devs[0].newGroup("six devices", "ben", "cat")
	for _, d := range devs {
		d.sync()
	}
	if ms, err := devs[5].Members(ctx, g.ID); err != nil || len(ms) != 6 {
		t.Fatalf("members: %+v, %v", ms, err)
	}
	var want []string
	for i, d := range devs {
		who := []string{"ann", "ben", "cat"}[i/2]
		text := fmt.Sprintf("message %d from %s's device %d", i, who, i%2+1)
		d.send(g.ID, text)
		want = append(want, who+": "+text)
		for _, other := range devs {
			other.sync()
		}
	}
	for i, d := range devs {
		wantLines(t, fmt.Sprintf("device %d", i), d.lines(g.ID), want...)
		ms, err := d.Members(ctx, g.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			if !m.Verified {
				t.Errorf("device %d: member %s/%s is not verified", i, m.User, m.Device)
			}
		}
	}
}

// TestE2ELiveAndCatchUp receives over the WebSocket while online, then
// catches up after a time offline, in order; typing goes live only.
func TestE2ELiveAndCatchUp(t *testing.T) {
	ctx := context.Background()
	s := startE2E(t)
	alice, bob := s.register(t, "alice"), s.register(t, "bob")
	dm := alice.direct("bob")
	bob.sync()
	runCtx, stop := context.WithCancel(ctx)
	running := make(chan error, 2)
	go func() { running <- bob.Run(runCtx) }()
	go func() { running <- alice.Run(runCtx) }()
	waitFor(t, "bob to be online", func() bool { return bob.SendTyping(ctx, dm.ID) == nil })
	waitFor(t, "alice to be online", func() bool { return alice.SendTyping(ctx, dm.ID) == nil })
	alice.send(dm.ID, "live 1")
	waitFor(t, "the live message", func() bool { return len(bob.eventsOf(hush.EventMessage)) == 1 })
	waitFor(t, "a typing signal", func() bool { return len(bob.eventsOf(hush.EventTyping)) > 0 })
	stop()
	for range 2 {
		if err := <-running; !errors.Is(err, context.Canceled) {
			t.Fatalf("Run = %v", err)
		}
	}
	if err := bob.SendTyping(ctx, dm.ID); !errors.Is(err, hush.ErrOffline) {
		t.Errorf("typing while offline = %v", err)
	}
	// Offline: more than one fetch's worth would be slow; a few dozen
	// arrive in one catch-up, in order.
	var want []string
	want = append(want, "alice: live 1")
	for i := range 40 {
		text := fmt.Sprintf("offline %02d", i)
		alice.send(dm.ID, text)
		want = append(want, "alice: "+text)
	}
	runCtx, stop = context.WithCancel(ctx)
	defer stop()
	go func() { running <- bob.Run(runCtx) }()
	waitFor(t, "the catch-up", func() bool { return len(bob.eventsOf(hush.EventMessage)) == 41 })
	wantLines(t, "bob", bob.lines(dm.ID), want...)
	stop()
	<-running
	msgs, err := bob.Messages(ctx, dm.ID)
	if err != nil || len(msgs) != 41 {
		t.Errorf("bob stored %d messages (typing signals are never stored), %v", len(msgs), err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestE2EDuplicateSend loses the server's answer to a send: the client
// resends with the same client message id, and the server stores it once.
func TestE2EDuplicateSend(t *testing.T) {
	ctx := context.Background()
	s := startE2E(t)
	alice, bob := s.register(t, "alice"), s.register(t, "bob")
	dm := alice.direct("bob")
	alice.sends.mu.Lock()
	alice.sends.drop = true
	alice.sends.mu.Unlock()
	if _, err := alice.SendText(ctx, dm.ID, "only once"); err == nil {
		t.Fatal("the send succeeded although its answer was lost")
	}
	alice.sync() // resends from the outbox
	bob.sync()
	wantLines(t, "bob", bob.lines(dm.ID), "alice: only once")
	msgs, err := alice.Messages(ctx, dm.ID)
	if err != nil || len(msgs) != 1 || msgs[0].Pending || msgs[0].Seq == 0 {
		t.Errorf("alice's copy: %+v, %v", msgs, err)
	}
}

// TestE2EPlaintextAbsence sends content carrying a unique marker in every
// place content can be (text, reply, edit, group name, file name and
// bytes, reaction) and checks that the marker appears nowhere the server
// or the network can see: the server's database files (with -wal and
// -shm) and blobs, its logs, and every byte on every client connection.
// The clients' own database files are checked too: they are sealed.
func TestE2EPlaintextAbsence(t *testing.T) {
	ctx := context.Background()
	s := startE2E(t)
	const marker = "PLAINTEXT-MARKER-5d41402abc4b2a76"
	alice, bob := s.register(t, "alice"), s.register(t, "bob")
	g := alice.newGroup("name "+marker, "bob")
	m := alice.send(g.ID, "text "+marker)
	if _, err := alice.Edit(ctx, m.ID, "edited "+marker); err != nil {
		t.Fatal(err)
	}
	file := []byte(strings.Repeat("file "+marker+"\n", 100))
	if _, err := alice.SendAttachment(ctx, g.ID, hush.File{Name: "file-" + marker + ".txt", Size: int64(len(file)), Body: bytes.NewReader(file)}, "caption "+marker); err != nil {
		t.Fatal(err)
	}
	bob.sync()
	if _, err := bob.Reply(ctx, m.ID, "reply "+marker); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.React(ctx, m.ID, marker[:20]); err != nil {
		t.Fatal(err)
	}
	alice.sync()
	wantLines(t, "bob", bob.lines(g.ID), "alice: edited "+marker, "alice: [file file-"+marker+".txt]", "bob: reply "+marker)

	needle := []byte(marker[:20])
	var files []string
	for _, root := range []string{s.dir, alice.dir, bob.dir} {
		filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				files = append(files, path)
			}
			return err
		})
	}
	var sawDB bool
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(filepath.Base(f), ".db") {
			sawDB = true
		}
		if bytes.Contains(b, needle) {
			t.Errorf("the marker is in %s", f)
		}
	}
	if !sawDB {
		t.Fatalf("no database file among %v", files)
	}
	if logs := s.logs.Bytes(); len(logs) == 0 || bytes.Contains(logs, needle) {
		t.Errorf("the server's logs (%d bytes) contain the marker", len(logs))
	}
	for name, w := range map[string]*wire{"alice": alice.wire, "bob": bob.wire} {
		b := w.Bytes()
		if len(b) < 10000 || !bytes.Contains(b, []byte("POST /v1/groups/")) {
			t.Fatalf("%s's connections recorded only %d bytes", name, len(b))
		}
		if bytes.Contains(b, needle) {
			t.Errorf("the marker crossed %s's connection", name)
		}
	}
}

// TestE2EEpochConflict has two members commit on the same epoch: the
// server takes one, and the other client catches up and commits again.
func TestE2EEpochConflict(t *testing.T) {
	ctx := context.Background()
	s := startE2E(t)
	alice, bob := s.register(t, "alice"), s.register(t, "bob")
	carol, dave := s.register(t, "carol"), s.register(t, "dave")
	g := alice.newGroup("race", "bob")
	bob.sync()
	if err := bob.AddMembers(ctx, g.ID, "carol"); err != nil {
		t.Fatal(err)
	}
	// alice has not seen bob's commit: hers is refused, then redone.
	if err := alice.AddMembers(ctx, g.ID, "dave"); err != nil {
		t.Fatal(err)
	}
	alice.send(g.ID, "all four of us")
	for _, d := range []*e2eDevice{bob, carol, dave} {
		d.sync()
		if ms, err := d.Members(ctx, g.ID); err != nil || len(ms) != 4 {
			t.Fatalf("members: %+v, %v", ms, err)
		}
		lines := d.lines(g.ID)
		if len(lines) == 0 || lines[len(lines)-1] != "alice: all four of us" {
			t.Errorf("%v", lines)
		}
	}
	n := 0
	alice.sends.mu.Lock()
	for _, sd := range alice.sends.all {
		if sd.Kind == "commit" {
			n++
		}
	}
	alice.sends.mu.Unlock()
	if n != 3 { // the group's first commit, the refused one, the retry
		t.Errorf("alice sent %d commits, want 3", n)
	}
}
