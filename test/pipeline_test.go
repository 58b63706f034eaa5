package test

import (
	"bytes"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/hush-chat/hush/proto"
	"github.com/hush-chat/hush/server"
)

// Pipelined sends (server/httpapi/wssend.go): a device writes many send
// frames without waiting for their answers.

// pipeline writes every send of sends on w at once, without waiting for
// answers, and returns the answers (sent or error frames) by index in
// sends. It stops collecting when the connection ends, so answers may be
// missing then. It may run in a goroutine of its own: it reports errors
// with t.Errorf.
func pipeline(t *testing.T, w *ws, gid []byte, sends []proto.Send) map[int]proto.Frame {
	t.Helper()
	first := make(chan uint64, 1)
	go func() {
		for i, s := range sends {
			id, err := w.tryWrite(proto.Frame{Type: proto.FrameSend, Send: &proto.SendFrame{GroupID: gid, Send: s}})
			if err != nil {
				return
			}
			if i == 0 {
				first <- id
			}
		}
	}()
	var base uint64
	select {
	case base = <-first:
	case <-w.closed:
		return nil
	}
	got := map[int]proto.Frame{}
	deadline := time.After(time.Minute)
	for len(got) < len(sends) {
		select {
		case f, ok := <-w.frames:
			if !ok {
				return got
			}
			if f.Type != proto.FrameSent && f.Type != proto.FrameError {
				continue
			}
			i := int(f.ID - base)
			if _, dup := got[i]; dup || i < 0 || i >= len(sends) {
				t.Errorf("answer %+v for no send in flight", f)
				return got
			}
			got[i] = f
		case <-deadline:
			t.Errorf("%d of %d sends answered within a minute", len(got), len(sends))
			return got
		}
	}
	return got
}

// appSends makes n application messages of m in its current epoch.
func appSends(m *member, prefix string, n int) []proto.Send {
	out := make([]proto.Send, n)
	for i := range out {
		out[i] = proto.Send{ClientMsgID: fmt.Sprintf("%s-%04d", prefix, i), Kind: proto.KindApplication, Epoch: m.g.Epoch(), Payload: m.app(fmt.Sprint(prefix, i))}
	}
	return out
}

// mustAllSent checks that every send was answered with a sent frame and
// that the sequence numbers increase in the order of the frames.
func mustAllSent(t *testing.T, sends []proto.Send, got map[int]proto.Frame) []uint64 {
	t.Helper()
	seqs := make([]uint64, len(sends))
	for i := range sends {
		f, ok := got[i]
		if !ok || f.Type != proto.FrameSent {
			t.Fatalf("send %d: answer %+v", i, f)
		}
		seqs[i] = f.Sent.Seq
		if i > 0 && seqs[i] <= seqs[i-1] {
			t.Fatalf("send %d stored at seq %d, after send %d at %d: frame order lost", i, seqs[i], i-1, seqs[i-1])
		}
	}
	return seqs
}

// checkLog checks that the log, as fetched, holds each send's payload at
// the seq it was answered with.
func checkLog(t *testing.T, log []proto.Envelope, sends []proto.Send, seqs []uint64) {
	t.Helper()
	at := map[uint64][]byte{}
	for _, e := range log {
		at[e.Seq] = e.Payload
	}
	for i, s := range sends {
		if !bytes.Equal(at[seqs[i]], s.Payload) {
			t.Fatalf("send %d (%s): the log does not hold it at seq %d", i, s.ClientMsgID, seqs[i])
		}
	}
}

func TestPipelinedSendsKeepOrder(t *testing.T) {
	ts := start(t, server.Options{DataDir: t.TempDir()})
	p := newPair(t, ts)
	sends := appSends(p.ma, "p", 500)
	seqs := mustAllSent(t, sends, pipeline(t, p.a.dial(), p.gid, sends))
	log := p.b.fetchAll()
	if len(log) != len(sends) {
		t.Fatalf("the log holds %d messages, want %d", len(log), len(sends))
	}
	checkLog(t, log, sends, seqs)
}

// TestPipelinedSendsManyDevices: 8 devices pipeline into one group at
// once; each one's messages are in the log in its frames' order.
func TestPipelinedSendsManyDevices(t *testing.T) {
	ts := start(t, server.Options{DataDir: t.TempDir()})
	p := newPair(t, ts)
	devs := []*client{p.a}
	for range 7 {
		devs = append(devs, p.a.link())
	}
	roster := []string{p.b.device}
	for _, d := range devs {
		roster = append(roster, d.device)
	}
	// The roster is the server's routing state; the payloads are all
	// a's, which the server cannot tell.
	commit, _ := p.ma.commit()
	p.a.mustSend(p.gid, proto.Send{ClientMsgID: "roster", Kind: proto.KindCommit, Epoch: 1, Payload: commit, Roster: roster})
	p.ma.merge()
	p.b.fetchAll()
	sends := make([][]proto.Send, len(devs))
	for i := range devs {
		sends[i] = appSends(p.ma, fmt.Sprint("d", i), 150)
	}
	answers := make([]map[int]proto.Frame, len(devs))
	var wg sync.WaitGroup
	for i, d := range devs {
		w := d.dial()
		wg.Go(func() { answers[i] = pipeline(t, w, p.gid, sends[i]) })
	}
	wg.Wait()
	seqs := make([][]uint64, len(devs))
	for i := range devs {
		seqs[i] = mustAllSent(t, sends[i], answers[i])
	}
	log := p.b.fetchAll()
	if len(log) != len(devs)*150 {
		t.Fatalf("the log holds %d messages, want %d", len(log), len(devs)*150)
	}
	for i := range devs {
		checkLog(t, log, sends[i], seqs[i])
	}
}

// TestPipelinedCommitIsBarrier: a commit among pipelined sends follows
// every earlier send of the connection in the log, and the later sends
// (of the new epoch) follow it; a losing commit's error is its own.
func TestPipelinedCommitIsBarrier(t *testing.T) {
	ts := start(t, server.Options{DataDir: t.TempDir()})
	p := newPair(t, ts)
	roster := []string{p.a.device, p.b.device}
	var all []proto.Send
	var commits []int // indexes in all
	var stale proto.Send
	for round := range 4 {
		all = append(all, appSends(p.ma, fmt.Sprint("before", round), 200)...)
		epoch := p.ma.g.Epoch()
		commit, _ := p.ma.commit()
		p.ma.merge()
		commits = append(commits, len(all))
		all = append(all, proto.Send{ClientMsgID: fmt.Sprint("commit", round), Kind: proto.KindCommit, Epoch: epoch, Payload: commit, Roster: roster})
		stale = proto.Send{ClientMsgID: "stale", Kind: proto.KindCommit, Epoch: epoch, Payload: commit, Roster: roster}
	}
	all = append(all, appSends(p.ma, "after", 200)...)
	all = append(all, stale)
	// b sends at the same time, so that the store's writer is busy and
	// a's appends queue up behind its commits: a commit not held back
	// until a's earlier sends were stored would share a batch with them.
	load := make([][]proto.Send, 16)
	for i := range load {
		load[i] = appSends(p.mb, fmt.Sprint("load", i), 60)
	}
	var wg sync.WaitGroup
	for i := range load {
		wg.Go(func() {
			for _, s := range load[i] {
				if _, e := p.b.send(p.gid, s); e != nil && e.Code != proto.CodeEpochConflict {
					t.Errorf("b's send: %v", e)
					return
				}
			}
		})
	}
	got := pipeline(t, p.a.dial(), p.gid, all)
	wg.Wait()
	if f := got[len(all)-1]; f.Type != proto.FrameError || f.Error.Code != proto.CodeEpochConflict {
		t.Fatalf("stale commit answered %+v", f)
	}
	delete(got, len(all)-1)
	all = all[:len(all)-1]
	seqs := mustAllSent(t, all, got)
	log := p.b.fetchAll()
	checkLog(t, log, all, seqs)
	kinds := map[uint64]proto.Kind{}
	for _, e := range log {
		kinds[e.Seq] = e.Kind
	}
	for _, i := range commits {
		if kinds[seqs[i]] != proto.KindCommit {
			t.Fatalf("send %d is not a commit in the log", i)
		}
	}
}

// TestPipelinedRetries: the same client message id sent again while the
// first is still in flight is stored once; both are answered with its seq.
func TestPipelinedRetries(t *testing.T) {
	ts := start(t, server.Options{DataDir: t.TempDir()})
	p := newPair(t, ts)
	sends := appSends(p.ma, "r", 100)
	var all []proto.Send
	for _, s := range sends {
		all = append(all, s, s) // each twice in a row, both in flight
	}
	got := pipeline(t, p.a.dial(), p.gid, all)
	seqs := make([]uint64, len(sends))
	for i := range sends {
		first, again := got[2*i], got[2*i+1]
		if first.Type != proto.FrameSent || again.Type != proto.FrameSent || first.Sent.Duplicate ||
			!again.Sent.Duplicate || again.Sent.Seq != first.Sent.Seq {
			t.Fatalf("send %d: answers %+v and %+v", i, first.Sent, again.Sent)
		}
		seqs[i] = first.Sent.Seq
	}
	log := p.b.fetchAll()
	if len(log) != len(sends) {
		t.Fatalf("the log holds %d messages for %d sent twice", len(log), len(sends))
	}
	checkLog(t, log, sends, seqs)
}

// TestPipelinedRestart restarts the server while a device has many sends
// in flight: every send answered before the restart is in the log after
// it (no answer before durability), and the client's retries of the others
// leave each message once, in order.
func TestPipelinedRestart(t *testing.T) {
	ts := start(t, server.Options{DataDir: t.TempDir()})
	p := newPair(t, ts)
	b := newBurst(p.ma, "x", 1500)
	ids := b.ids()
	sends := make([]proto.Send, len(ids))
	for i, id := range ids {
		sends[i] = proto.Send{ClientMsgID: id, Kind: proto.KindApplication, Epoch: 1, Payload: b.payloads[id]}
	}
	w := p.a.dial()
	answers := make(chan map[int]proto.Frame, 1)
	go func() { answers <- pipeline(t, w, p.gid, sends) }()
	// Restart once some sends are answered and more are in flight.
	recv := p.b.dial()
	recv.nextOf(proto.FrameMessage, 10*time.Second)
	ts = ts.restart(t)
	got := <-answers
	for i, f := range got {
		if f.Type == proto.FrameSent {
			b.answered[ids[i]] = f.Sent.Seq
		}
	}
	t.Logf("%d of %d answered before the restart", len(b.answered), len(ids))
	if len(b.answered) == len(ids) {
		t.Skip("every send was answered before the restart: nothing was in flight")
	}
	// Every answered message is durable: it is in the log after the
	// restart, before any retry, at the seq it was answered with.
	log := p.b.fetchAll()
	stored := map[uint64][]byte{}
	for _, e := range log {
		stored[e.Seq] = e.Payload
	}
	for id, seq := range b.answered {
		if !bytes.Equal(stored[seq], b.payloads[id]) {
			t.Fatalf("%s was answered with seq %d but is not in the log after the restart", id, seq)
		}
	}
	b.retry(t, p.a, p.gid, 1)
	check(t, append(log, p.b.fetchAll()...), b)
}

// sendAll writes sends on w, pipelined, then a ping, and returns the seqs
// they were answered with, in frame order. It fails on any frame but
// their answers and the pong: on a send-only connection (?push=0) nothing
// else may come.
func sendAll(t *testing.T, w *ws, gid []byte, sends []proto.Send) []uint64 {
	t.Helper()
	ids := map[uint64]int{}
	for i, s := range sends {
		ids[w.write(proto.Frame{Type: proto.FrameSend, Send: &proto.SendFrame{GroupID: gid, Send: s}})] = i
	}
	ping := w.write(proto.Frame{Type: proto.FramePing})
	seqs := make([]uint64, len(sends))
	answered := 0
	for {
		f := w.next(30 * time.Second)
		switch {
		case f.Type == proto.FrameSent:
			i, ok := ids[f.ID]
			if !ok || seqs[i] != 0 {
				t.Fatalf("sent frame %+v for no send in flight", f)
			}
			seqs[i] = f.Sent.Seq
			answered++
		case f.Type == proto.FramePong && f.ID == ping:
			if answered != len(sends) {
				// Sends are answered once durable, a ping at once.
				continue
			}
			return seqs
		case f.Type == proto.FramePong:
			t.Fatalf("pong %+v for no ping", f)
		default:
			t.Fatalf("a send-only connection got a %q frame: %+v", f.Type, f)
		}
		if answered == len(sends) {
			// The pong may have come before the last answers: ask again.
			ping = w.write(proto.Frame{Type: proto.FramePing})
		}
	}
}

// TestSendOnlyConnection: a connection opened with ?push=0 gets the
// answers to its frames and nothing else, while a normal connection of the
// same device gets the pushes; what arrives for a device while it has only
// send-only connections stays pending after its cursors and is pushed on
// its next normal connection.
func TestSendOnlyConnection(t *testing.T) {
	ts := start(t, server.Options{DataDir: t.TempDir()})
	p := newPair(t, ts)
	aOnly := p.a.dialQuery("push=0")
	bOnly := p.b.dialQuery("push=0")
	bLive := p.b.dial()

	// a sends 50 over its send-only connection: b's normal connection gets
	// them, in order; a's and b's send-only connections get nothing.
	first := appSends(p.ma, "only", 50)
	seqs := sendAll(t, aOnly, p.gid, first)
	for i := 1; i < len(seqs); i++ {
		if seqs[i] <= seqs[i-1] {
			t.Fatalf("seqs %v: frame order lost", seqs)
		}
	}
	for i, want := range seqs {
		f := bLive.nextOf(proto.FrameMessage, 10*time.Second)
		if f.Message.Seq != want || !bytes.Equal(f.Message.Payload, first[i].Payload) {
			t.Fatalf("b's normal connection: message %d is seq %d, want %d", i, f.Message.Seq, want)
		}
	}
	// b sends one over its send-only connection: a, with only a send-only
	// connection, is pushed nothing.
	bSend := proto.Send{ClientMsgID: "from-b", Kind: proto.KindApplication, Epoch: p.mb.g.Epoch(), Payload: p.mb.app("from b")}
	bSeq := sendAll(t, bOnly, p.gid, []proto.Send{bSend})[0]
	sendAll(t, aOnly, p.gid, nil) // only the pong: nothing was pushed to a

	// b acknowledges the 50 on its normal connection (the ping's answer
	// follows the ack's handling), and closes it.
	bLive.write(proto.Frame{Type: proto.FrameAck, Ack: &proto.Ack{Acks: []proto.AckItem{{GroupID: p.gid, Seq: seqs[len(seqs)-1]}}}})
	bLive.write(proto.Frame{Type: proto.FramePing})
	bLive.nextOf(proto.FramePong, 10*time.Second)
	bLive.close()

	// While b has only its send-only connection, a sends 30 more: b gets
	// them on its next normal connection, from its cursor on.
	later := appSends(p.ma, "later", 30)
	laterSeqs := sendAll(t, aOnly, p.gid, later)
	sendAll(t, bOnly, p.gid, nil) // nothing pushed to b's send-only connection
	bLive = p.b.dial()
	for i, want := range laterSeqs {
		f := bLive.nextOf(proto.FrameMessage, 10*time.Second)
		if f.Message.Seq != want || !bytes.Equal(f.Message.Payload, later[i].Payload) {
			t.Fatalf("b's next connection: message %d is seq %d, want %d (the first 50 were acknowledged)", i, f.Message.Seq, want)
		}
	}
	// a's first normal connection gets b's message, which its send-only
	// connection did not take.
	aLive := p.a.dial()
	if f := aLive.nextOf(proto.FrameMessage, 10*time.Second); f.Message.Seq != bSeq || !bytes.Equal(f.Message.Payload, bSend.Payload) {
		t.Fatalf("a's normal connection: %+v, want b's message at seq %d", f.Message, bSeq)
	}

	// Any other value of push is refused.
	resp := p.a.request("GET", proto.PathWebSocket+"?push=no", "", nil)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("upgrade with push=no: status %d, want 400", resp.StatusCode)
	}
}
