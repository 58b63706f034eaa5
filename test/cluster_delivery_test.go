package test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hush-chat/hush/mls"
	"github.com/hush-chat/hush/proto"
)

// TestCluster runs three `hush serve` processes on one PostgreSQL schema
// and NATS, each configured another way (flags, environment variables, a
// config file), with devices spread over them; at the end it kills one.
func TestCluster(t *testing.T) {
	clusterServices(t)
	bin := buildHush(t)
	store := clusterSchema(t)
	// One data directory for all, as a shared file system for the
	// attachments (see docs/CLUSTER.md).
	data := t.TempDir()
	// Started together, as a deployment would: the schema is migrated once.
	nodes := make([]*hushNode, 3)
	var wg sync.WaitGroup
	for i, how := range []configHow{byFlags, byEnv, byConfig} {
		wg.Go(func() { nodes[i] = startNode(t, bin, fmt.Sprintf("node%d", i+1), store, data, how) })
	}
	wg.Wait()
	for _, n := range nodes {
		if n == nil {
			t.FailNow()
		}
	}
	t.Run("OneToOne", func(t *testing.T) { testClusterOneToOne(t, nodes) })
	t.Run("Group", func(t *testing.T) { testClusterGroup(t, nodes) })
	t.Run("CompetingCommits", func(t *testing.T) { testClusterCommits(t, nodes) })
	t.Run("Attachments", func(t *testing.T) { testClusterAttachments(t, nodes) })
	t.Run("NodeKilled", func(t *testing.T) { testClusterNodeKilled(t, nodes) })
}

// testClusterOneToOne: a device on node 1 sends to a device on node 2,
// which receives every message once, in order, pushed across nodes.
func testClusterOneToOne(t *testing.T, nodes []*hushNode) {
	a := newDevice(t, "a", nodes[0])
	b := newDevice(t, "b", nodes[1])
	gid := setupGroup(t, a, b)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a.connect(ctx)
	b.connect(ctx)
	ids, payloads := a.encrypt("a", 150)
	var seqs []uint64
	for _, id := range ids {
		sent, err := a.send(gid, id, proto.KindApplication, 1, payloads[id])
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, sent.Seq)
	}
	b.waitReceived(t, len(ids), 30*time.Second)
	time.Sleep(200 * time.Millisecond) // anything more would be a duplicate
	b.checkFailures(t)
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.received) != len(ids) || b.repushed != 0 {
		t.Fatalf("b received %d distinct messages (%d pushed again), a sent %d", len(b.received), b.repushed, len(ids))
	}
	for i, env := range b.received {
		if env.Seq != seqs[i] || env.Sender != a.c.device || b.texts[i] != ids[i] {
			t.Fatalf("message %d: seq %d %q from %s, want seq %d %q", i, env.Seq, b.texts[i], env.Sender, seqs[i], ids[i])
		}
	}
}

// testClusterGroup: six devices, two on each node; three of them, one per
// node, send at once. Every device receives every message of the others
// exactly once, in the order of the group's log, and decrypts it.
func testClusterGroup(t *testing.T, nodes []*hushNode) {
	var devs []*cdev
	for i := range 6 {
		devs = append(devs, newDevice(t, fmt.Sprint("d", i), nodes[i%3]))
	}
	gid := setupGroup(t, devs...)
	const each = 40
	// Encrypted before the connections start decrypting with the same
	// group states.
	ids := make([][]string, 3)
	payloads := make([]map[string][]byte, 3)
	for i, s := range devs[:3] {
		ids[i], payloads[i] = s.encrypt(s.name, each)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, d := range devs {
		d.connect(ctx)
	}
	type msg struct {
		from string
		seq  uint64
	}
	var mu sync.Mutex
	log := map[string]msg{} // id → sender and seq
	var wg sync.WaitGroup
	for i, s := range devs[:3] {
		wg.Go(func() {
			for _, id := range ids[i] {
				sent, err := s.send(gid, id, proto.KindApplication, 1, payloads[i][id])
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				log[id] = msg{s.name, sent.Seq}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	// The log, in seq order.
	var order []string
	for id := range log {
		order = append(order, id)
	}
	slices.SortFunc(order, func(x, y string) int { return int(log[x].seq) - int(log[y].seq) })
	for i := 1; i < len(order); i++ {
		if log[order[i]].seq == log[order[i-1]].seq {
			t.Fatalf("%s and %s share seq %d", order[i], order[i-1], log[order[i]].seq)
		}
	}
	for _, d := range devs {
		var want []string
		for _, id := range order {
			if log[id].from != d.name {
				want = append(want, id)
			}
		}
		d.waitReceived(t, len(want), 30*time.Second)
	}
	time.Sleep(200 * time.Millisecond)
	for _, d := range devs {
		d.checkFailures(t)
		var want []string
		for _, id := range order {
			if log[id].from != d.name {
				want = append(want, id)
			}
		}
		d.mu.Lock()
		if !slices.Equal(d.texts, want) || d.repushed != 0 {
			t.Errorf("%s (on %s) decrypted %d messages (%d pushed again), want the %d of the log in its order", d.name, d.reconn[0], len(d.texts), d.repushed, len(want))
		}
		d.mu.Unlock()
	}
}

// testClusterCommits: two members on two nodes commit for the same epoch
// at once, round after round. Exactly one commit wins each epoch; the
// other is refused with the new epoch, and its member processes the
// winning commit (fetched through its own node) and goes on. A third
// member, on the third node, sees each winning commit once, in order, and
// all three end in the same epoch with the same epoch authenticator.
func testClusterCommits(t *testing.T, nodes []*hushNode) {
	a := newDevice(t, "a", nodes[0])
	b := newDevice(t, "b", nodes[1])
	o := newDevice(t, "observer", nodes[2])
	gid := setupGroup(t, a, b, o)
	devs := []*cdev{a, b, o}
	const rounds = 12
	wins := map[string]int{}
	for round := range rounds {
		epoch := a.g.Epoch()
		commits := make([][]byte, 2)
		for i, d := range devs[:2] {
			res, err := d.g.Commit(mls.CommitOptions{ForcePath: true})
			must(t, err)
			commits[i], err = res.Commit.Marshal()
			must(t, err)
		}
		roster := []string{a.c.device, b.c.device, o.c.device}
		errs := make([]*proto.Error, 2)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i, d := range devs[:2] {
			wg.Go(func() {
				<-start
				errs[i] = postSend(d.c, gid, proto.Send{ClientMsgID: fmt.Sprintf("commit-%d", round), Kind: proto.KindCommit, Epoch: epoch, Payload: commits[i], Roster: roster})
			})
		}
		close(start)
		wg.Wait()
		var winner, loser int
		switch {
		case errs[0] == nil && errs[1] != nil:
			winner, loser = 0, 1
		case errs[1] == nil && errs[0] != nil:
			winner, loser = 1, 0
		default:
			t.Fatalf("round %d: %s and %s: want exactly one accepted", round, fmtErr(errs[0]), fmtErr(errs[1]))
		}
		if e := errs[loser]; e.Code != proto.CodeEpochConflict || e.Epoch == nil || *e.Epoch != epoch+1 {
			t.Fatalf("round %d: the losing commit got %s (epoch %v), want epoch_conflict with epoch %d", round, fmtErr(e), e.Epoch, epoch+1)
		}
		wins[devs[winner].name]++
		must(t, devs[winner].g.MergePendingCommit())
		devs[loser].g.DiscardPendingCommit()
		for _, d := range []*cdev{devs[loser], o} {
			got := d.c.fetchAll()
			if len(got) != 1 || got[0].Kind != proto.KindCommit || got[0].Epoch != epoch || got[0].Sender != devs[winner].c.device {
				t.Fatalf("round %d: %s fetched %+v, want the winning commit", round, d.name, got)
			}
			m, err := mls.UnmarshalMLSMessage(got[0].Payload)
			must(t, err)
			ev, err := d.g.Process(m)
			must(t, err)
			must(t, d.g.Merge(ev.(*mls.StagedCommit)))
		}
		if got := devs[winner].c.fetchAll(); len(got) != 0 {
			t.Fatalf("round %d: the winner fetched %d messages", round, len(got))
		}
	}
	t.Logf("wins over %d rounds: %v", rounds, wins)
	for _, d := range devs {
		if d.g.Epoch() != rounds+1 || string(d.g.EpochAuthenticator()) != string(a.g.EpochAuthenticator()) {
			t.Fatalf("%s at epoch %d, want %d with the same epoch authenticator as a", d.name, d.g.Epoch(), rounds+1)
		}
	}
	// The group works in the final epoch, across nodes.
	payload, err := o.g.Encrypt([]byte("after the race"), nil)
	must(t, err)
	data, err := payload.Marshal()
	must(t, err)
	o.c.mustSend(gid, proto.Send{ClientMsgID: "final", Kind: proto.KindApplication, Epoch: o.g.Epoch(), Payload: data})
	for _, d := range devs[:2] {
		got := d.c.fetchAll()
		if len(got) != 1 {
			t.Fatalf("%s: %d messages", d.name, len(got))
		}
		m, err := mls.UnmarshalMLSMessage(got[0].Payload)
		must(t, err)
		ev, err := d.g.Process(m)
		must(t, err)
		if am, ok := ev.(*mls.ApplicationMessage); !ok || string(am.Data) != "after the race" {
			t.Fatalf("%s decrypted %#v", d.name, ev)
		}
	}
}

// postSend sends over HTTP without failing the test, for goroutines.
func postSend(c *client, gid []byte, s proto.Send) *proto.Error {
	internal := func(err error) *proto.Error { return &proto.Error{Code: proto.CodeInternal, Message: err.Error()} }
	body, err := json.Marshal(s)
	if err != nil {
		return internal(err)
	}
	req, err := http.NewRequest("POST", c.base+groupPath(gid), bytes.NewReader(body))
	if err != nil {
		return internal(err)
	}
	req.Header.Set("Authorization", c.token)
	resp, err := httpClient.Do(req)
	if err != nil {
		return internal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == 200 {
		return nil
	}
	var e proto.Error
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil || e.Code == "" {
		return internal(fmt.Errorf("status %d", resp.StatusCode))
	}
	return &e
}

// testClusterAttachments: an attachment uploaded through one node is
// downloaded through the others, byte for byte (the nodes share their
// data directory, as docs/CLUSTER.md asks).
func testClusterAttachments(t *testing.T, nodes []*hushNode) {
	d := newDevice(t, "uploader", nodes[0])
	blob := random(100 << 10)
	resp := d.c.request("POST", proto.PathBlobs, proto.ContentTypeBlob, bytes.NewReader(blob))
	var ref proto.BlobRef
	err := json.NewDecoder(resp.Body).Decode(&ref)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("upload through %s: %d %v", nodes[0].name, resp.StatusCode, err)
	}
	for _, n := range nodes {
		resp := d.on(n).request("GET", strings.Replace(proto.PathBlob, "{id}", ref.ID, 1), "", nil)
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || !bytes.Equal(got, blob) {
			t.Fatalf("download through %s: status %d, %d bytes, %v", n.name, resp.StatusCode, len(got), err)
		}
	}
}
