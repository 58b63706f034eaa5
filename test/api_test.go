package test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/hush-chat/hush/proto"
)

func TestAPI(t *testing.T) { runAPI(t, sqliteBackend) }

// TestAPIPostgres runs the same suite on the PostgreSQL store.
func TestAPIPostgres(t *testing.T) { runAPI(t, postgresBackend) }

func runAPI(t *testing.T, b backend) {
	tests := []struct {
		name string
		fn   func(*testing.T, *testServer)
	}{
		{"Accounts", testAccounts},
		{"KeyPackages", testKeyPackages},
		{"SendFetchAck", testSendFetchAck},
		{"Idempotency", testIdempotency},
		{"CommitConflict", testCommitConflict},
		{"Roster", testRoster},
		{"WebSocket", testWebSocket},
		{"Typing", testTyping},
		{"Blobs", testBlobs},
		{"Provision", testProvision},
		{"Malformed", testMalformed},
		{"Revocation", testRevocation},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, start(t, b(t)))
		})
	}
}

// pair is a group of two devices, a and b, with real MLS state: a created
// it and added b with a commit and a Welcome.
type pair struct {
	a, b   *client
	ma, mb *member
	gid    []byte
}

func newPair(t *testing.T, ts *testServer) *pair {
	t.Helper()
	p := &pair{a: register(t, ts), b: register(t, ts), ma: newMember(t), mb: newMember(t), gid: random(32)}
	p.ma.create(p.gid)
	p.a.createGroup(p.gid)
	kp, priv := p.mb.keyPackage(false)
	if e := p.b.call("POST", proto.PathKeyPackages, proto.UploadKeyPackages{KeyPackages: []proto.KeyPackage{{Data: kp}}}, nil); e != nil {
		t.Fatalf("upload: %v", e)
	}
	var claimed proto.Claimed
	if e := p.a.call("POST", proto.PathClaim, proto.Claim{Usernames: []string{p.b.username}}, &claimed); e != nil {
		t.Fatalf("claim: %v", e)
	}
	if len(claimed.KeyPackages) != 1 || !bytes.Equal(claimed.KeyPackages[0].Data, kp) ||
		claimed.KeyPackages[0].DeviceID != p.b.device || claimed.KeyPackages[0].UserID != p.b.user {
		t.Fatalf("claimed %+v", claimed)
	}
	commit, welcome := p.ma.commit(claimed.KeyPackages[0].Data)
	p.a.mustSend(p.gid, proto.Send{
		ClientMsgID: "add-b", Kind: proto.KindCommit, Epoch: 0, Payload: commit,
		Roster:   []string{p.a.device, p.b.device},
		Welcomes: []proto.Welcome{{DeviceIDs: []string{p.b.device}, Payload: welcome}},
	})
	p.ma.merge()
	got := p.b.fetchAll()
	if len(got) != 1 || !got[0].Inbox || got[0].Kind != proto.KindWelcome || !bytes.Equal(got[0].Payload, welcome) ||
		!bytes.Equal(got[0].GroupID, p.gid) || got[0].Sender != p.a.device {
		t.Fatalf("b's first fetch: %+v", got)
	}
	p.mb.join(welcome, priv)
	return p
}

// text sends an application message from c (with member m) and returns
// its payload.
func (p *pair) text(c *client, m *member, id, text string) ([]byte, proto.Sent) {
	payload := m.app(text)
	return payload, c.mustSend(p.gid, proto.Send{ClientMsgID: id, Kind: proto.KindApplication, Epoch: m.g.Epoch(), Payload: payload})
}

func wantCode(t *testing.T, what string, e *proto.Error, code proto.Code) {
	t.Helper()
	if e == nil || e.Code != code {
		t.Fatalf("%s: got %s, want %s", what, fmtErr(e), code)
	}
	if e.Message == "" {
		t.Fatalf("%s: error %s without a message", what, e.Code)
	}
}

func testAccounts(t *testing.T, ts *testServer) {
	a := register(t, ts)

	// The directory shows the user and its device, by any case of the name.
	var info proto.UserInfo
	if e := a.call("GET", strings.Replace(proto.PathUser, "{username}", strings.ToUpper(a.username), 1), nil, &info); e != nil {
		t.Fatal(e)
	}
	if info.UserID != a.user || info.Username != a.username || len(info.Devices) != 1 || info.Devices[0].DeviceID != a.device {
		t.Fatalf("user info %+v", info)
	}

	// The same name again is taken.
	dup := &client{tb: t, base: ts.URL(), http: httpClient}
	e := dup.call("POST", proto.PathAccounts, proto.Register{Username: strings.ToUpper(a.username), IdentityKey: random(32),
		Device: proto.NewDevice{Secret: random(32), Certificate: random(8)}}, nil)
	wantCode(t, "duplicate username", e, proto.CodeUsernameTaken)

	// Wrong, malformed and missing credentials all get the same 401.
	for name, token := range map[string]string{
		"wrong secret":    "Bearer " + a.device + "." + base64.RawURLEncoding.EncodeToString(random(32)),
		"unknown device":  "Bearer " + strings.Repeat("ab", 16) + "." + base64.RawURLEncoding.EncodeToString(a.secret),
		"short secret":    "Bearer " + a.device + "." + base64.RawURLEncoding.EncodeToString(a.secret[:31]),
		"no dot":          "Bearer " + a.device,
		"padded base64":   "Bearer " + a.device + "." + base64.URLEncoding.EncodeToString(a.secret) + "=",
		"not bearer":      "Basic " + a.device + "." + base64.RawURLEncoding.EncodeToString(a.secret),
		"no header":       "",
		"bad device text": "Bearer zz." + base64.RawURLEncoding.EncodeToString(a.secret),
	} {
		bad := &client{tb: t, base: ts.URL(), http: httpClient, token: token}
		status, e := bad.callRaw("GET", proto.PathMessages, nil, nil)
		if status != http.StatusUnauthorized {
			t.Errorf("%s: status %d", name, status)
		}
		wantCode(t, name, e, proto.CodeUnauthorized)
	}

	// A linked device authenticates with its own secret and is listed.
	l := a.link()
	if got := l.fetch(); len(got.Messages) != 0 {
		t.Fatalf("linked device fetch: %+v", got)
	}
	a.call("GET", strings.Replace(proto.PathUser, "{username}", a.username, 1), nil, &info)
	if len(info.Devices) != 2 {
		t.Fatalf("devices after linking: %+v", info.Devices)
	}

	// Another user cannot revoke a's device; a's devices can.
	other := register(t, ts)
	wantCode(t, "revoke another user's device", other.call("DELETE", strings.Replace(proto.PathDevice, "{id}", l.device, 1), nil, nil), proto.CodeForbidden)
	if e := a.call("DELETE", strings.Replace(proto.PathDevice, "{id}", l.device, 1), nil, nil); e != nil {
		t.Fatalf("revoke: %v", e)
	}
	status, e := l.callRaw("GET", proto.PathMessages, nil, nil)
	if status != http.StatusUnauthorized {
		t.Fatalf("revoked device: %d %v", status, e)
	}
	a.call("GET", strings.Replace(proto.PathUser, "{username}", a.username, 1), nil, &info)
	if len(info.Devices) != 1 {
		t.Fatalf("devices after revoking: %+v", info.Devices)
	}
}

func testKeyPackages(t *testing.T, ts *testServer) {
	a, b := register(t, ts), register(t, ts)
	mb := newMember(t)
	var kps []proto.KeyPackage
	for range 3 {
		data, _ := mb.keyPackage(false)
		kps = append(kps, proto.KeyPackage{Data: data})
	}
	last, _ := mb.keyPackage(true)
	kps = append(kps, proto.KeyPackage{Data: last, LastResort: true})
	var count proto.KeyPackageCount
	if e := b.call("POST", proto.PathKeyPackages, proto.UploadKeyPackages{KeyPackages: kps}, &count); e != nil {
		t.Fatal(e)
	}
	if count.Count != 3 || count.RefillBelow != proto.RefillBelow {
		t.Fatalf("count after upload: %+v", count)
	}

	// Uploading the same KeyPackages again stores nothing twice.
	b.call("POST", proto.PathKeyPackages, proto.UploadKeyPackages{KeyPackages: kps[:3]}, &count)
	if count.Count != 3 {
		t.Fatalf("count after re-upload: %+v", count)
	}

	// A last-resort flag that disagrees with the extension is refused, and
	// a refused batch stores none of its KeyPackages.
	fresh, _ := mb.keyPackage(false)
	e := b.call("POST", proto.PathKeyPackages, proto.UploadKeyPackages{KeyPackages: []proto.KeyPackage{{Data: fresh}, {Data: fresh, LastResort: true}}}, nil)
	wantCode(t, "mismatched last_resort", e, proto.CodeBadRequest)
	e = b.call("POST", proto.PathKeyPackages, proto.UploadKeyPackages{KeyPackages: []proto.KeyPackage{{Data: fresh}, {Data: []byte("junk")}}}, nil)
	wantCode(t, "junk KeyPackage", e, proto.CodeBadRequest)
	b.call("GET", proto.PathKeyPackageCount, nil, &count)
	if count.Count != 3 {
		t.Fatalf("count after refused uploads: %+v", count)
	}

	// Claims hand out each ordinary KeyPackage once, then the last-resort
	// one, which is kept.
	seen := map[string]bool{}
	for i := range 5 {
		var c proto.Claimed
		if e := a.call("POST", proto.PathClaim, proto.Claim{DeviceIDs: []string{b.device}}, &c); e != nil {
			t.Fatalf("claim %d: %v", i, e)
		}
		if len(c.KeyPackages) != 1 || c.KeyPackages[0].UserID != b.user {
			t.Fatalf("claim %d: %+v", i, c)
		}
		data := string(c.KeyPackages[0].Data)
		if i < 3 {
			if seen[data] || data == string(last) {
				t.Fatalf("claim %d handed out a KeyPackage twice or the last-resort one early", i)
			}
			seen[data] = true
		} else if data != string(last) {
			t.Fatalf("claim %d: want the last-resort KeyPackage", i)
		}
	}
	b.call("GET", proto.PathKeyPackageCount, nil, &count)
	if count.Count != 0 || count.Count >= count.RefillBelow == true {
		t.Fatalf("count after claims: %+v (clients refill below %d)", count, count.RefillBelow)
	}

	// A user with no KeyPackage at all.
	c := register(t, ts)
	wantCode(t, "claim without KeyPackages", a.call("POST", proto.PathClaim, proto.Claim{Usernames: []string{c.username}}, nil), proto.CodeNoKeyPackage)
}

func testSendFetchAck(t *testing.T, ts *testServer) {
	p := newPair(t, ts)
	var payloads [][]byte
	var last uint64
	for i := range 20 {
		payload, sent := p.text(p.a, p.ma, fmt.Sprint("m", i), fmt.Sprint("hello ", i))
		if sent.Seq <= last || sent.Duplicate || sent.Time.IsZero() {
			t.Fatalf("send %d: %+v after seq %d", i, sent, last)
		}
		last = sent.Seq
		payloads = append(payloads, payload)
	}
	// A fetch with a limit says there is more.
	var m proto.Messages
	if e := p.b.call("GET", proto.PathMessages+"?limit=5", nil, &m); e != nil {
		t.Fatal(e)
	}
	if len(m.Messages) != 5 || !m.More {
		t.Fatalf("limited fetch: %d messages, more=%v", len(m.Messages), m.More)
	}
	// Unacknowledged messages come again; acknowledged ones do not.
	p.b.ack(proto.AckItem{GroupID: p.gid, Seq: m.Messages[1].Seq})
	got := p.b.fetchAll()
	if len(got) != 18 {
		t.Fatalf("fetched %d after acking 2 of 20", len(got))
	}
	for i, env := range got {
		if !bytes.Equal(env.Payload, payloads[i+2]) || env.Sender != p.a.device || env.Kind != proto.KindApplication || !bytes.Equal(env.GroupID, p.gid) {
			t.Fatalf("message %d out of order or altered: %+v", i, env)
		}
		if i > 0 && env.Seq <= got[i-1].Seq {
			t.Fatalf("sequence not increasing at %d", i)
		}
		if _, err := p.mb.g.Process(mustParse(t, env.Payload)); err != nil {
			t.Fatalf("b cannot decrypt message %d: %v", i, err)
		}
	}
	// The sender does not get its own messages back.
	if got := p.a.fetchAll(); len(got) != 0 {
		t.Fatalf("sender fetched %d of its own messages", len(got))
	}
	// Acks never move a cursor backwards.
	p.b.ack(proto.AckItem{GroupID: p.gid, Seq: 1})
	if got := p.b.fetch(); len(got.Messages) != 0 {
		t.Fatalf("an old ack brought back %d messages", len(got.Messages))
	}
}

func testIdempotency(t *testing.T, ts *testServer) {
	p := newPair(t, ts)
	payload := p.ma.app("once")
	s := proto.Send{ClientMsgID: "retry-me", Kind: proto.KindApplication, Epoch: 1, Payload: payload}
	first := p.a.mustSend(p.gid, s)
	// Concurrent retries, as after a timeout on a flaky network.
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			again, e := p.a.send(p.gid, s)
			if e != nil || !again.Duplicate || again.Seq != first.Seq || !again.Time.Equal(first.Time) {
				t.Errorf("retry: %+v %v, first %+v", again, e, first)
			}
		})
	}
	wg.Wait()
	// The retried commit that added b reports Duplicate, not a conflict.
	got := p.b.fetchAll()
	if len(got) != 1 || !bytes.Equal(got[0].Payload, payload) {
		t.Fatalf("b got %d messages for one send retried 9 times", len(got))
	}
}

func testCommitConflict(t *testing.T, ts *testServer) {
	p := newPair(t, ts)
	// Both members commit in epoch 1; exactly one commit wins.
	ca, _ := p.ma.commit()
	cb, _ := p.mb.commit()
	roster := []string{p.a.device, p.b.device}
	type result struct {
		sent proto.Sent
		err  *proto.Error
	}
	var ra, rb result
	var wg sync.WaitGroup
	wg.Go(func() {
		ra.sent, ra.err = p.a.send(p.gid, proto.Send{ClientMsgID: "ca", Kind: proto.KindCommit, Epoch: 1, Payload: ca, Roster: roster})
	})
	wg.Go(func() {
		rb.sent, rb.err = p.b.send(p.gid, proto.Send{ClientMsgID: "cb", Kind: proto.KindCommit, Epoch: 1, Payload: cb, Roster: roster})
	})
	wg.Wait()
	if (ra.err == nil) == (rb.err == nil) {
		t.Fatalf("want exactly one winner: a %s, b %s", fmtErr(ra.err), fmtErr(rb.err))
	}
	winner, loser, loserErr := p.ma, p.mb, rb.err
	winnerClient, loserClient := p.a, p.b
	if ra.err != nil {
		winner, loser, loserErr = p.mb, p.ma, ra.err
		winnerClient, loserClient = p.b, p.a
	}
	wantCode(t, "losing commit", loserErr, proto.CodeEpochConflict)
	if loserErr.Epoch == nil || *loserErr.Epoch != 2 {
		t.Fatalf("conflict answer carries epoch %v, want 2", loserErr.Epoch)
	}
	// The loser catches up: drops its commit, processes the winner's, and
	// its next message in epoch 2 goes through.
	winner.merge()
	loser.g.DiscardPendingCommit()
	got := loserClient.fetchAll()
	if len(got) != 1 || got[0].Kind != proto.KindCommit || got[0].Epoch != 1 {
		t.Fatalf("loser fetched %+v", got)
	}
	loser.process(got[0].Payload)
	if loser.g.Epoch() != 2 {
		t.Fatalf("loser at epoch %d", loser.g.Epoch())
	}
	_, sent := p.text(loserClient, loser, "after", "caught up")
	if sent.Seq == 0 {
		t.Fatal("no seq")
	}
	if got := winnerClient.fetchAll(); len(got) != 1 || got[0].Epoch != 2 {
		t.Fatalf("winner fetched %+v", got)
	}
	// A stale commit is refused whatever its content, with the epoch.
	_, e := p.a.send(p.gid, proto.Send{ClientMsgID: "stale", Kind: proto.KindCommit, Epoch: 1, Payload: ca, Roster: roster})
	wantCode(t, "stale commit", e, proto.CodeEpochConflict)
}

func testRoster(t *testing.T, ts *testServer) {
	p := newPair(t, ts)
	c := register(t, ts)
	// c is not on the roster: its messages are refused with 403, and so
	// are its commits and typing signals.
	mc := newMember(t)
	mc.create(p.gid)
	_, e := c.send(p.gid, proto.Send{ClientMsgID: "x", Kind: proto.KindApplication, Epoch: 0, Payload: mc.app("intruder")})
	wantCode(t, "send from a device not on the roster", e, proto.CodeForbidden)
	commit, _ := mc.commit()
	_, e = c.send(p.gid, proto.Send{ClientMsgID: "y", Kind: proto.KindCommit, Epoch: 0, Payload: commit, Roster: []string{c.device}})
	wantCode(t, "commit from a device not on the roster", e, proto.CodeForbidden)
	w := c.dial()
	id := w.write(proto.Frame{Type: proto.FrameTyping, Typing: &proto.Typing{GroupID: p.gid, Payload: []byte("x")}})
	f := w.nextOf(proto.FrameError, 5*time.Second)
	if f.ID != id || f.Error.Code != proto.CodeForbidden {
		t.Fatalf("typing from outside: %+v", f)
	}
	if got := p.b.fetchAll(); len(got) != 0 {
		t.Fatalf("b received %d messages from outside the roster", len(got))
	}

	// A commit that removes b from the roster stops b's delivery; b's
	// sends are refused from then on.
	p.mb.g.DiscardPendingCommit()
	commit, _ = p.ma.commit()
	p.a.mustSend(p.gid, proto.Send{ClientMsgID: "drop-b", Kind: proto.KindCommit, Epoch: 1, Payload: commit, Roster: []string{p.a.device}})
	p.ma.merge()
	p.text(p.a, p.ma, "alone", "b must not get this")
	if got := p.b.fetchAll(); len(got) != 0 {
		t.Fatalf("b, off the roster, fetched %d messages", len(got))
	}
	_, e = p.b.send(p.gid, proto.Send{ClientMsgID: "late", Kind: proto.KindApplication, Epoch: 1, Payload: p.mb.app("late")})
	wantCode(t, "send after removal", e, proto.CodeForbidden)
}

func testWebSocket(t *testing.T, ts *testServer) {
	p := newPair(t, ts)
	w := p.b.dial()

	// Live push: a message sent over HTTP arrives over b's WebSocket.
	payload, sent := p.text(p.a, p.ma, "live", "pushed")
	f := w.nextOf(proto.FrameMessage, 5*time.Second)
	if f.Message.Seq != sent.Seq || !bytes.Equal(f.Message.Payload, payload) {
		t.Fatalf("pushed %+v", f.Message)
	}
	w.write(proto.Frame{Type: proto.FrameAck, Ack: &proto.Ack{Acks: []proto.AckItem{{GroupID: p.gid, Seq: sent.Seq}}}})

	// Sending over the WebSocket: answered with a sent frame.
	aw := p.a.dial()
	id := aw.write(proto.Frame{Type: proto.FrameSend, Send: &proto.SendFrame{GroupID: p.gid, Send: proto.Send{
		ClientMsgID: "ws-1", Kind: proto.KindApplication, Epoch: 1, Payload: p.ma.app("over ws")}}})
	reply := aw.nextOf(proto.FrameSent, 5*time.Second)
	if reply.ID != id || reply.Sent.Seq != sent.Seq+1 {
		t.Fatalf("sent frame %+v", reply)
	}
	if f := w.nextOf(proto.FrameMessage, 5*time.Second); f.Message.Seq != sent.Seq+1 {
		t.Fatalf("pushed %+v", f.Message)
	}
	// Ping, and an error frame for a bad request, on the same connection.
	id = aw.write(proto.Frame{Type: proto.FramePing})
	if f := aw.nextOf(proto.FramePong, 5*time.Second); f.ID != id {
		t.Fatalf("pong %+v", f)
	}
	id = aw.write(proto.Frame{Type: proto.FrameSend, Send: &proto.SendFrame{GroupID: p.gid, Send: proto.Send{ClientMsgID: "bad", Kind: proto.KindApplication, Payload: []byte("junk")}}})
	if f := aw.nextOf(proto.FrameError, 5*time.Second); f.ID != id || f.Error.Code != proto.CodeBadRequest {
		t.Fatalf("error frame %+v", f)
	}

	// Catch-up: b goes offline, messages arrive, b reconnects and gets,
	// first, the unacknowledged one and then those it missed, in order.
	w.close()
	var want [][]byte
	want = append(want, nil) // ws-1, not acknowledged
	for i := range 5 {
		payload, _ := p.text(p.a, p.ma, fmt.Sprint("off", i), "while offline")
		want = append(want, payload)
	}
	w = p.b.dial()
	var seqs []uint64
	for i := range want {
		f := w.nextOf(proto.FrameMessage, 5*time.Second)
		if i > 0 && !bytes.Equal(f.Message.Payload, want[i]) {
			t.Fatalf("catch-up message %d wrong", i)
		}
		seqs = append(seqs, f.Message.Seq)
	}
	if !slices.IsSorted(seqs) || seqs[0] != sent.Seq+1 {
		t.Fatalf("catch-up seqs %v", seqs)
	}
	// Then live messages follow on the same connection.
	_, sent = p.text(p.a, p.ma, "live-2", "after catch-up")
	if f := w.nextOf(proto.FrameMessage, 5*time.Second); f.Message.Seq != sent.Seq {
		t.Fatalf("live after catch-up: %+v", f.Message)
	}

	// The browser form of credentials, a second subprotocol, works too.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	url := "ws" + strings.TrimPrefix(p.b.base, "http") + proto.PathWebSocket
	token := strings.TrimPrefix(p.b.token, "Bearer ")
	conn, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{Subprotocols: []string{
		proto.WebSocketProtocol, proto.WebSocketAuthPrefix + base64.RawURLEncoding.EncodeToString([]byte(token))}})
	if err != nil {
		t.Fatalf("dial with subprotocol credentials: %v", err)
	}
	if conn.Subprotocol() != proto.WebSocketProtocol {
		t.Fatalf("selected subprotocol %q", conn.Subprotocol())
	}
	_, data, err := conn.Read(ctx)
	if err != nil || !strings.Contains(string(data), `"hello"`) {
		t.Fatalf("first frame over subprotocol credentials: %q %v", data, err)
	}
	conn.CloseNow()

	// A device that is not authenticated cannot connect.
	bad := &client{tb: t, base: p.b.base, http: httpClient, token: "Bearer nope"}
	resp := bad.request("GET", proto.PathWebSocket, "", nil)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("unauthenticated upgrade: %d", resp.StatusCode)
	}
}

func testTyping(t *testing.T, ts *testServer) {
	p := newPair(t, ts)
	wa, wb := p.a.dial(), p.b.dial()
	signal := p.ma.app("typing…")
	wa.write(proto.Frame{Type: proto.FrameTyping, Typing: &proto.Typing{GroupID: p.gid, Payload: signal}})
	f := wb.nextOf(proto.FrameTyping, 5*time.Second)
	if !bytes.Equal(f.Typing.Payload, signal) || f.Typing.Sender != p.a.device || !bytes.Equal(f.Typing.GroupID, p.gid) {
		t.Fatalf("typing frame %+v", f.Typing)
	}
	// Never stored: nothing to fetch, and the next message takes the next
	// sequence number.
	wb.close()
	if got := p.b.fetchAll(); len(got) != 0 {
		t.Fatalf("typing left %d messages behind", len(got))
	}
	_, sent := p.text(p.a, p.ma, "after-typing", "x")
	if sent.Seq != 2 { // 1 is the commit that added b
		t.Fatalf("seq after typing %d, want 2", sent.Seq)
	}
}

func mustParse(t *testing.T, data []byte) *mlsMessage {
	t.Helper()
	m, err := parseMLS(data)
	must(t, err)
	return m
}

func testBlobs(t *testing.T, ts *testServer) {
	a, b := register(t, ts), register(t, ts)
	data := random(3<<20 + 17)
	resp := a.request("POST", proto.PathBlobs, proto.ContentTypeBlob, bytes.NewReader(data))
	var ref proto.BlobRef
	json.NewDecoder(resp.Body).Decode(&ref)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || ref.Size != int64(len(data)) || len(ref.ID) != 32 {
		t.Fatalf("upload: %d %+v", resp.StatusCode, ref)
	}
	path := strings.Replace(proto.PathBlob, "{id}", ref.ID, 1)
	resp = b.request("GET", path, "", nil)
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Equal(got, data) {
		t.Fatalf("download: %d, %d bytes", resp.StatusCode, len(got))
	}
	// Range requests resume an interrupted download.
	req, _ := http.NewRequest("GET", b.base+path, nil)
	req.Header.Set("Authorization", b.token)
	req.Header.Set("Range", "bytes=100-199")
	resp, err := httpClient.Do(req)
	must(t, err)
	got, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(got, data[100:200]) {
		t.Fatalf("range: %d, %d bytes", resp.StatusCode, len(got))
	}
	// Unauthenticated downloads are refused.
	anon := &client{tb: t, base: b.base, http: httpClient}
	resp = anon.request("GET", path, "", nil)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("anonymous download: %d", resp.StatusCode)
	}
	// Over the limit, streamed without a length: refused, nothing kept.
	resp = a.request("POST", proto.PathBlobs, proto.ContentTypeBlob, io.LimitReader(zeros{}, proto.MaxBlobBytes+1))
	var e proto.Error
	json.NewDecoder(resp.Body).Decode(&e)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge || e.Code != proto.CodeTooLarge {
		t.Fatalf("oversized blob: %d %+v", resp.StatusCode, e)
	}
	// Declared too large: refused before reading.
	req, _ = http.NewRequest("POST", a.base+proto.PathBlobs, io.LimitReader(zeros{}, 10))
	req.Header.Set("Authorization", a.token)
	req.ContentLength = proto.MaxBlobBytes + 1
	resp, err = httpClient.Do(req)
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Fatalf("declared oversized blob: %d", resp.StatusCode)
		}
	}
	// The first blob is intact.
	resp = b.request("GET", path, "", nil)
	got, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Equal(got, data) {
		t.Fatal("blob damaged by a refused upload")
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func testProvision(t *testing.T, ts *testServer) {
	old := register(t, ts)
	var ch proto.ProvisionChannel
	if e := old.call("POST", proto.PathProvision, proto.Provision{}, &ch); e != nil {
		t.Fatal(e)
	}
	if len(ch.ID) != 32 || time.Until(ch.Expires) > proto.ProvisionTTL || time.Until(ch.Expires) < proto.ProvisionTTL-time.Minute {
		t.Fatalf("channel %+v", ch)
	}
	box := strings.Replace(proto.PathProvisionBox, "{id}", ch.ID, 1)
	newDev := &client{tb: t, base: ts.URL(), http: httpClient} // not authenticated yet

	// Nothing written yet.
	var pb proto.ProvisionBox
	if e := newDev.call("GET", box+"?box=old", nil, &pb); e != nil || pb.Data != nil {
		t.Fatalf("empty box: %+v %v", pb, e)
	}
	sealedNew, sealedOld := random(200), random(300)
	if e := newDev.call("PUT", box, proto.ProvisionBox{Box: "new", Data: sealedNew}, nil); e != nil {
		t.Fatal(e)
	}
	wantCode(t, "second write of a box", newDev.call("PUT", box, proto.ProvisionBox{Box: "new", Data: random(5)}, nil), proto.CodeConflict)
	wantCode(t, "unauthenticated write of old", newDev.call("PUT", box, proto.ProvisionBox{Box: "old", Data: sealedOld}, nil), proto.CodeForbidden)
	other := register(t, ts)
	wantCode(t, "another device writes old", other.call("PUT", box, proto.ProvisionBox{Box: "old", Data: sealedOld}, nil), proto.CodeForbidden)
	if e := old.call("GET", box+"?box=new", nil, &pb); e != nil || !bytes.Equal(pb.Data, sealedNew) {
		t.Fatalf("old reads new: %v", e)
	}
	if e := old.call("PUT", box, proto.ProvisionBox{Box: "old", Data: sealedOld}, nil); e != nil {
		t.Fatal(e)
	}
	if e := newDev.call("GET", box+"?box=old", nil, &pb); e != nil || !bytes.Equal(pb.Data, sealedOld) {
		t.Fatalf("new reads old: %v", e)
	}
	unknown := strings.Replace(proto.PathProvisionBox, "{id}", strings.Repeat("0", 32), 1)
	wantCode(t, "unknown channel", newDev.call("GET", unknown+"?box=new", nil, nil), proto.CodeNotFound)
	wantCode(t, "bad box name", newDev.call("GET", box+"?box=mine", nil, nil), proto.CodeBadRequest)
}

func testRevocation(t *testing.T, ts *testServer) {
	p := newPair(t, ts)
	second := p.b.link()
	w := second.dial()
	if e := p.b.call("DELETE", strings.Replace(proto.PathDevice, "{id}", second.device, 1), nil, nil); e != nil {
		t.Fatal(e)
	}
	select {
	case <-w.closed:
	case <-time.After(5 * time.Second):
		t.Fatal("the revoked device's WebSocket stayed open")
	}
	// Its KeyPackages are gone and it can no longer authenticate.
	status, _ := second.callRaw("GET", proto.PathMessages, nil, nil)
	if status != http.StatusUnauthorized {
		t.Fatalf("revoked device: %d", status)
	}
}

// testMalformed sends a malformed or oversized request to every endpoint:
// each gets a clear error code and message, and nothing stored is lost.
func testMalformed(t *testing.T, ts *testServer) {
	p := newPair(t, ts)
	var want [][]byte
	for i := range 3 {
		payload, _ := p.text(p.a, p.ma, fmt.Sprint("keep", i), "must survive")
		want = append(want, payload)
	}
	var ch proto.ProvisionChannel
	p.a.call("POST", proto.PathProvision, nil, &ch)
	var ref proto.BlobRef
	resp := p.a.request("POST", proto.PathBlobs, proto.ContentTypeBlob, bytes.NewReader(random(1000)))
	json.NewDecoder(resp.Body).Decode(&ref)
	resp.Body.Close()

	anon := &client{tb: t, base: ts.URL(), http: httpClient}
	gpath := groupPath(p.gid)
	box := strings.Replace(proto.PathProvisionBox, "{id}", ch.ID, 1)
	js := func(v any) []byte { b, _ := json.Marshal(v); return b }
	huge := []byte(`{"username":"` + strings.Repeat("a", proto.MaxRequestBytes) + `"}`)
	reg := func(name string, ik, secret []byte) []byte {
		return js(proto.Register{Username: name, IdentityKey: ik, Device: proto.NewDevice{Secret: secret, Certificate: []byte{1}}})
	}
	send := func(s proto.Send) []byte { return js(s) }
	app := p.ma.app("x")
	commit, _ := p.ma.commit()
	p.ma.g.DiscardPendingCommit()
	other := newMember(t)
	other.create(random(32))
	foreignGroup := other.app("another group")
	unknownGroup := random(16)
	mu := newMember(t)
	mu.create(unknownGroup)

	cases := []struct {
		name   string
		c      *client
		method string
		path   string
		body   []byte
		status int
		code   proto.Code
	}{
		{"register: not JSON", anon, "POST", proto.PathAccounts, []byte("{"), 400, proto.CodeBadRequest},
		{"register: empty body", anon, "POST", proto.PathAccounts, nil, 400, proto.CodeBadRequest},
		{"register: wrong type", anon, "POST", proto.PathAccounts, []byte(`{"username":5}`), 400, proto.CodeBadRequest},
		{"register: trailing data", anon, "POST", proto.PathAccounts, []byte(`{}{}`), 400, proto.CodeBadRequest},
		{"register: oversized body", anon, "POST", proto.PathAccounts, huge, 413, proto.CodeTooLarge},
		{"register: short username", anon, "POST", proto.PathAccounts, reg("ab", random(32), random(32)), 400, proto.CodeBadRequest},
		{"register: phone number", anon, "POST", proto.PathAccounts, reg("+15551234567", random(32), random(32)), 400, proto.CodeBadRequest},
		{"register: no identity key", anon, "POST", proto.PathAccounts, reg("valid_name", nil, random(32)), 400, proto.CodeBadRequest},
		{"register: identity key too large", anon, "POST", proto.PathAccounts, reg("valid_name", random(proto.MaxIdentityKeyBytes+1), random(32)), 413, proto.CodeTooLarge},
		{"register: short secret", anon, "POST", proto.PathAccounts, reg("valid_name", random(32), random(16)), 400, proto.CodeBadRequest},
		{"register: taken", anon, "POST", proto.PathAccounts, reg(p.a.username, random(32), random(32)), 409, proto.CodeUsernameTaken},
		{"link: no certificate", p.a, "POST", proto.PathDevices, js(proto.NewDevice{Secret: random(32)}), 400, proto.CodeBadRequest},
		{"link: certificate too large", p.a, "POST", proto.PathDevices, js(proto.NewDevice{Secret: random(32), Certificate: random(proto.MaxCredentialBytes + 1)}), 413, proto.CodeTooLarge},
		{"link: anonymous", anon, "POST", proto.PathDevices, js(proto.NewDevice{Secret: random(32), Certificate: []byte{1}}), 401, proto.CodeUnauthorized},
		{"revoke: bad id", p.a, "DELETE", strings.Replace(proto.PathDevice, "{id}", "xyz", 1), nil, 400, proto.CodeBadRequest},
		{"revoke: unknown device", p.a, "DELETE", strings.Replace(proto.PathDevice, "{id}", strings.Repeat("0", 32), 1), nil, 404, proto.CodeNotFound},
		{"user: unknown", p.a, "GET", strings.Replace(proto.PathUser, "{username}", "nobody_here", 1), nil, 404, proto.CodeNotFound},
		{"keypackages: empty batch", p.a, "POST", proto.PathKeyPackages, js(proto.UploadKeyPackages{}), 400, proto.CodeBadRequest},
		{"keypackages: junk", p.a, "POST", proto.PathKeyPackages, js(proto.UploadKeyPackages{KeyPackages: []proto.KeyPackage{{Data: []byte("junk")}}}), 400, proto.CodeBadRequest},
		{"keypackages: application message", p.a, "POST", proto.PathKeyPackages, js(proto.UploadKeyPackages{KeyPackages: []proto.KeyPackage{{Data: app}}}), 400, proto.CodeBadRequest},
		{"keypackages: batch too large", p.a, "POST", proto.PathKeyPackages, js(proto.UploadKeyPackages{KeyPackages: make([]proto.KeyPackage, proto.MaxKeyPackageBatch+1)}), 413, proto.CodeTooLarge},
		{"keypackages: one too large", p.a, "POST", proto.PathKeyPackages, js(proto.UploadKeyPackages{KeyPackages: []proto.KeyPackage{{Data: random(proto.MaxKeyPackageBytes + 1)}}}), 413, proto.CodeTooLarge},
		{"claim: nobody", p.a, "POST", proto.PathClaim, js(proto.Claim{}), 400, proto.CodeBadRequest},
		{"claim: bad device id", p.a, "POST", proto.PathClaim, js(proto.Claim{DeviceIDs: []string{"nope"}}), 400, proto.CodeBadRequest},
		{"claim: too many", p.a, "POST", proto.PathClaim, js(proto.Claim{Usernames: make([]string, proto.MaxClaimTargets+1)}), 413, proto.CodeTooLarge},
		{"claim: unknown user", p.a, "POST", proto.PathClaim, js(proto.Claim{Usernames: []string{"nobody_here"}}), 404, proto.CodeNoKeyPackage},
		{"group: no id", p.a, "POST", proto.PathGroups, js(proto.CreateGroup{}), 400, proto.CodeBadRequest},
		{"group: id too long", p.a, "POST", proto.PathGroups, js(proto.CreateGroup{GroupID: random(proto.MaxGroupIDBytes + 1)}), 413, proto.CodeTooLarge},
		{"group: exists", p.a, "POST", proto.PathGroups, js(proto.CreateGroup{GroupID: p.gid}), 409, proto.CodeGroupExists},
		{"send: bad group id in path", p.a, "POST", strings.Replace(proto.PathGroupMessages, "{id}", "not*base64", 1), send(proto.Send{}), 400, proto.CodeBadRequest},
		{"send: unknown group", p.a, "POST", groupPath(unknownGroup), send(proto.Send{ClientMsgID: "u", Kind: proto.KindApplication, Payload: mu.app("x")}), 404, proto.CodeNotFound},
		{"send: not JSON", p.a, "POST", gpath, []byte("nope"), 400, proto.CodeBadRequest},
		{"send: oversized body", p.a, "POST", gpath, huge, 413, proto.CodeTooLarge},
		{"send: no client id", p.a, "POST", gpath, send(proto.Send{Kind: proto.KindApplication, Epoch: 1, Payload: app}), 400, proto.CodeBadRequest},
		{"send: client id too long", p.a, "POST", gpath, send(proto.Send{ClientMsgID: strings.Repeat("x", 65), Kind: proto.KindApplication, Epoch: 1, Payload: app}), 413, proto.CodeTooLarge},
		{"send: unknown kind", p.a, "POST", gpath, send(proto.Send{ClientMsgID: "k", Kind: "gossip", Epoch: 1, Payload: app}), 400, proto.CodeBadRequest},
		{"send: welcome kind", p.a, "POST", gpath, send(proto.Send{ClientMsgID: "k", Kind: proto.KindWelcome, Epoch: 1, Payload: app}), 400, proto.CodeBadRequest},
		{"send: no payload", p.a, "POST", gpath, send(proto.Send{ClientMsgID: "k", Kind: proto.KindApplication, Epoch: 1}), 400, proto.CodeBadRequest},
		{"send: payload too large", p.a, "POST", gpath, send(proto.Send{ClientMsgID: "k", Kind: proto.KindApplication, Epoch: 1, Payload: random(proto.MaxMessageBytes + 1)}), 413, proto.CodeTooLarge},
		{"send: payload not MLS", p.a, "POST", gpath, send(proto.Send{ClientMsgID: "k", Kind: proto.KindApplication, Epoch: 1, Payload: []byte("plaintext!")}), 400, proto.CodeBadRequest},
		{"send: wrong epoch", p.a, "POST", gpath, send(proto.Send{ClientMsgID: "k", Kind: proto.KindApplication, Epoch: 7, Payload: app}), 400, proto.CodeBadRequest},
		{"send: other group's message", p.a, "POST", gpath, send(proto.Send{ClientMsgID: "k", Kind: proto.KindApplication, Epoch: 0, Payload: foreignGroup}), 400, proto.CodeBadRequest},
		{"send: commit as application", p.a, "POST", gpath, send(proto.Send{ClientMsgID: "k", Kind: proto.KindApplication, Epoch: 1, Payload: commit}), 400, proto.CodeBadRequest},
		{"send: roster on application", p.a, "POST", gpath, send(proto.Send{ClientMsgID: "k", Kind: proto.KindApplication, Epoch: 1, Payload: app, Roster: []string{p.a.device}}), 400, proto.CodeBadRequest},
		{"send: commit without roster", p.a, "POST", gpath, send(proto.Send{ClientMsgID: "k", Kind: proto.KindCommit, Epoch: 1, Payload: commit}), 400, proto.CodeBadRequest},
		{"send: commit with bad roster id", p.a, "POST", gpath, send(proto.Send{ClientMsgID: "k", Kind: proto.KindCommit, Epoch: 1, Payload: commit, Roster: []string{"x"}}), 400, proto.CodeBadRequest},
		{"send: commit with unknown roster device", p.a, "POST", gpath, send(proto.Send{ClientMsgID: "k", Kind: proto.KindCommit, Epoch: 1, Payload: commit, Roster: []string{p.a.device, strings.Repeat("1", 32)}}), 404, proto.CodeNotFound},
		{"send: welcome off the roster", p.a, "POST", gpath, send(proto.Send{ClientMsgID: "k", Kind: proto.KindCommit, Epoch: 1, Payload: commit, Roster: []string{p.a.device}, Welcomes: []proto.Welcome{{DeviceIDs: []string{p.b.device}, Payload: app}}}), 400, proto.CodeBadRequest},
		{"send: welcome not a Welcome", p.a, "POST", gpath, send(proto.Send{ClientMsgID: "k", Kind: proto.KindCommit, Epoch: 1, Payload: commit, Roster: []string{p.a.device, p.b.device}, Welcomes: []proto.Welcome{{DeviceIDs: []string{p.b.device}, Payload: app}}}), 400, proto.CodeBadRequest},
		{"send: timer too short", p.a, "POST", gpath, send(proto.Send{ClientMsgID: "k", Kind: proto.KindApplication, Epoch: 1, Payload: app, Timer: 4}), 400, proto.CodeBadRequest},
		{"send: timer too long", p.a, "POST", gpath, send(proto.Send{ClientMsgID: "k", Kind: proto.KindApplication, Epoch: 1, Payload: app, Timer: 91 * 24 * 3600}), 400, proto.CodeBadRequest},
		{"send: timer on a commit", p.a, "POST", gpath, send(proto.Send{ClientMsgID: "k", Kind: proto.KindCommit, Epoch: 1, Payload: commit, Roster: []string{p.a.device}, Timer: 60}), 400, proto.CodeBadRequest},
		{"send: blobs without a timer", p.a, "POST", gpath, send(proto.Send{ClientMsgID: "k", Kind: proto.KindApplication, Epoch: 1, Payload: app, Blobs: []string{strings.Repeat("1", 32)}}), 400, proto.CodeBadRequest},
		{"send: bad blob id", p.a, "POST", gpath, send(proto.Send{ClientMsgID: "k", Kind: proto.KindApplication, Epoch: 1, Payload: app, Timer: 60, Blobs: []string{"x"}}), 400, proto.CodeBadRequest},
		{"send: anonymous", anon, "POST", gpath, send(proto.Send{ClientMsgID: "k", Kind: proto.KindApplication, Epoch: 1, Payload: app}), 401, proto.CodeUnauthorized},
		{"fetch: limit 0", p.b, "GET", proto.PathMessages + "?limit=0", nil, 400, proto.CodeBadRequest},
		{"fetch: limit text", p.b, "GET", proto.PathMessages + "?limit=all", nil, 400, proto.CodeBadRequest},
		{"fetch: limit too large", p.b, "GET", proto.PathMessages + "?limit=501", nil, 400, proto.CodeBadRequest},
		{"ack: empty", p.b, "POST", proto.PathAck, js(proto.Ack{}), 400, proto.CodeBadRequest},
		{"ack: group and inbox", p.b, "POST", proto.PathAck, js(proto.Ack{Acks: []proto.AckItem{{GroupID: p.gid, Inbox: true, Seq: 1}}}), 400, proto.CodeBadRequest},
		{"ack: past the end", p.b, "POST", proto.PathAck, js(proto.Ack{Acks: []proto.AckItem{{GroupID: p.gid, Seq: 1000}}}), 400, proto.CodeBadRequest},
		{"ack: not a member", p.b, "POST", proto.PathAck, js(proto.Ack{Acks: []proto.AckItem{{GroupID: unknownGroup, Seq: 1}}}), 404, proto.CodeNotFound},
		{"ack: too many", p.b, "POST", proto.PathAck, js(proto.Ack{Acks: make([]proto.AckItem, proto.MaxAcks+1)}), 413, proto.CodeTooLarge},
		{"blob: bad id", p.a, "GET", strings.Replace(proto.PathBlob, "{id}", "nope", 1), nil, 400, proto.CodeBadRequest},
		{"blob: unknown", p.a, "GET", strings.Replace(proto.PathBlob, "{id}", strings.Repeat("0", 32), 1), nil, 404, proto.CodeNotFound},
		{"provision: anonymous open", anon, "POST", proto.PathProvision, nil, 401, proto.CodeUnauthorized},
		{"provision: box not JSON", anon, "PUT", box, []byte("]"), 400, proto.CodeBadRequest},
		{"provision: no data", anon, "PUT", box, js(proto.ProvisionBox{Box: "new"}), 400, proto.CodeBadRequest},
		{"provision: data too large", anon, "PUT", box, js(proto.ProvisionBox{Box: "new", Data: random(proto.MaxProvisionBytes + 1)}), 413, proto.CodeTooLarge},
		{"provision: bad box", anon, "PUT", box, js(proto.ProvisionBox{Box: "mine", Data: []byte{1}}), 400, proto.CodeBadRequest},
		{"provision: unknown channel", anon, "PUT", strings.Replace(proto.PathProvisionBox, "{id}", "feed", 1), js(proto.ProvisionBox{Box: "new", Data: []byte{1}}), 404, proto.CodeNotFound},
		{"unknown endpoint", p.a, "GET", "/v1/nothing", nil, 404, proto.CodeNotFound},
		{"wrong method", p.a, "PUT", proto.PathMessages, nil, 405, proto.CodeMethod},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, e := tc.c.callRaw(tc.method, tc.path, tc.body, nil)
			if status != tc.status || e == nil || e.Code != tc.code || e.Message == "" {
				t.Errorf("got %d %s, want %d %s", status, fmtErr(e), tc.status, tc.code)
			}
		})
	}
	// Another protocol version is refused by name.
	req, _ := http.NewRequest("GET", ts.URL()+proto.PathMessages, nil)
	req.Header.Set("Authorization", p.b.token)
	req.Header.Set(proto.HeaderVersion, "2")
	resp, err := httpClient.Do(req)
	must(t, err)
	var e proto.Error
	json.NewDecoder(resp.Body).Decode(&e)
	resp.Body.Close()
	if resp.StatusCode != 400 || e.Code != proto.CodeVersion {
		t.Errorf("version 2: %d %+v", resp.StatusCode, e)
	}
	// Malformed WebSocket frames get error frames; the connection survives.
	w := p.a.dial()
	must(t, w.conn.Write(t.Context(), 1, []byte("{")))
	if f := w.nextOf(proto.FrameError, 5*time.Second); f.Error.Code != proto.CodeBadRequest {
		t.Errorf("malformed frame: %+v", f.Error)
	}
	w.write(proto.Frame{Type: "shout"})
	if f := w.nextOf(proto.FrameError, 5*time.Second); f.Error.Code != proto.CodeBadRequest {
		t.Errorf("unknown frame: %+v", f.Error)
	}
	w.write(proto.Frame{Type: proto.FrameSend})
	if f := w.nextOf(proto.FrameError, 5*time.Second); f.Error.Code != proto.CodeBadRequest {
		t.Errorf("send frame without send: %+v", f.Error)
	}

	// Nothing stored was lost: b gets exactly the three messages, and the
	// blob is intact.
	got := p.b.fetchAll()
	if len(got) != len(want) {
		t.Fatalf("after the bad requests b fetched %d messages, want %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i].Payload, want[i]) {
			t.Fatalf("message %d changed", i)
		}
	}
	resp = p.b.request("GET", strings.Replace(proto.PathBlob, "{id}", ref.ID, 1), "", nil)
	n, _ := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || n != 1000 {
		t.Fatalf("blob after the bad requests: %d, %d bytes", resp.StatusCode, n)
	}
}
