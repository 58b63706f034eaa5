// Package storetest is the conformance suite for store.Store
// implementations. Every backend runs it from its own tests:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store { ... open a fresh, empty store ... })
//	}
//
// open must return an empty store and arrange (t.Cleanup) for it to be
// closed; Close must be safe to call twice. The suite runs subtests in
// parallel, each on its own store.
package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hush-chat/hush/store"
)

// Run runs the conformance suite against stores made by open.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(*testing.T, store.Store)
	}{
		{"Users", testUsers},
		{"Devices", testDevices},
		{"KeyPackages", testKeyPackages},
		{"ClaimConcurrent", testClaimConcurrent},
		{"Groups", testGroups},
		{"AppendAndFetch", testAppendAndFetch},
		{"Idempotency", testIdempotency},
		{"IdempotencyConcurrent", testIdempotencyConcurrent},
		{"RosterRejection", testRosterRejection},
		{"AppendConcurrentOrdering", testAppendConcurrentOrdering},
		{"AppendBatchMixed", testAppendBatchMixed},
		{"CommitAmidAppends", testCommitAmidAppends},
		{"AckConcurrent", testAckConcurrent},
		{"Cursors", testCursors},
		{"FetchGroup", testFetchGroup},
		{"FetchAcrossGroups", testFetchAcrossGroups},
		{"Commit", testCommit},
		{"CommitConcurrent", testCommitConcurrent},
		{"Direct", testDirect},
		{"Expiry", testExpiry},
		{"Disappearing", testDisappearing},
		{"PurgeExpired", testPurgeExpired},
		{"Retention", testRetention},
		{"Blobs", testBlobs},
		{"Validation", testValidation},
		{"Context", testContext},
		{"Closed", testClosed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, open(t))
		})
	}
}

// fixture helpers

func ctx(t *testing.T) context.Context { return t.Context() }

// device creates a user with one device.
func device(t *testing.T, s store.Store) store.DeviceID {
	t.Helper()
	u, err := s.CreateUser(ctx(t), "u"+randHex(8), []byte("identity"))
	if err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	d, err := s.CreateDevice(ctx(t), u.ID, []byte("auth-hash"), []byte("credential"))
	if err != nil {
		t.Fatalf("CreateDevice: %v", err)
	}
	return d.ID
}

func devices(t *testing.T, s store.Store, n int) []store.DeviceID {
	t.Helper()
	ds := make([]store.DeviceID, n)
	for i := range ds {
		ds[i] = device(t, s)
	}
	return ds
}

// group creates a group at epoch 0 whose roster is members.
func group(t *testing.T, s store.Store, members ...store.DeviceID) store.GroupID {
	t.Helper()
	id := store.GroupID(randBytes(32))
	if err := s.CreateGroup(ctx(t), id, members[0], 0, members[1:]); err != nil {
		t.Fatalf("CreateGroup: %v", err)
	}
	return id
}

func msg(g store.GroupID, sender store.DeviceID, payload string) store.Message {
	return store.Message{GroupID: g, Sender: sender, ClientMsgID: randHex(16), Kind: store.KindApplication, Payload: []byte(payload)}
}

func mustAppend(t *testing.T, s store.Store, m store.Message) store.Appended {
	t.Helper()
	a, err := s.AppendMessage(ctx(t), m)
	if err != nil {
		t.Fatalf("AppendMessage: %v", err)
	}
	return a
}

func fetch(t *testing.T, s store.Store, d store.DeviceID, limit int) store.Pending {
	t.Helper()
	p, err := s.Fetch(ctx(t), d, limit)
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	return p
}

// payloads lists the payloads of the group messages in p.
func payloads(p store.Pending) []string {
	var out []string
	for _, m := range p.Messages {
		out = append(out, string(m.Payload))
	}
	return out
}

func mustAck(t *testing.T, s store.Store, d store.DeviceID, g store.GroupID, seq uint64) {
	t.Helper()
	if err := s.Ack(ctx(t), d, g, seq); err != nil {
		t.Fatalf("Ack(%d): %v", seq, err)
	}
}

func wantErr(t *testing.T, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("got error %v, want %v", err, target)
	}
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func randHex(n int) string { return fmt.Sprintf("%x", randBytes(n/2)) }

// runConcurrently runs fn(i) for i in [0,n) on n goroutines released at
// once, and waits for them.
func runConcurrently(n int, fn func(i int)) {
	var ready, done sync.WaitGroup
	start := make(chan struct{})
	ready.Add(n)
	done.Add(n)
	for i := range n {
		go func() {
			defer done.Done()
			ready.Done()
			<-start
			fn(i)
		}()
	}
	ready.Wait()
	close(start)
	done.Wait()
}

// tests

func testUsers(t *testing.T, s store.Store) {
	u, err := s.CreateUser(ctx(t), "Alice_01.x-y", []byte{1, 2, 3})
	if err != nil {
		t.Fatal(err)
	}
	if u.Username != "alice_01.x-y" || u.ID == (store.UserID{}) || u.CreatedAt.IsZero() {
		t.Fatalf("CreateUser returned %+v", u)
	}
	for _, get := range []func() (store.User, error){
		func() (store.User, error) { return s.User(ctx(t), u.ID) },
		func() (store.User, error) { return s.UserByName(ctx(t), "ALICE_01.X-Y") },
	} {
		got, err := get()
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != u.ID || got.Username != u.Username || !bytes.Equal(got.IdentityKey, u.IdentityKey) || !got.CreatedAt.Equal(u.CreatedAt) {
			t.Fatalf("got %+v, want %+v", got, u)
		}
	}
	_, err = s.CreateUser(ctx(t), "aLiCe_01.X-y", nil)
	wantErr(t, err, store.ErrDuplicateUsername)
	for _, bad := range []string{"", "ab", strings.Repeat("a", 33), "bob smith", "bob@x", "\u212aelvin", "ünï"} {
		_, err := s.CreateUser(ctx(t), bad, nil)
		wantErr(t, err, store.ErrInvalid)
	}
	if _, err := s.CreateUser(ctx(t), strings.Repeat("b", 32), nil); err != nil {
		t.Fatalf("32-character username: %v", err)
	}
	_, err = s.User(ctx(t), store.NewUserID())
	wantErr(t, err, store.ErrNotFound)
	_, err = s.UserByName(ctx(t), "nobody")
	wantErr(t, err, store.ErrNotFound)
	_, err = s.UserByName(ctx(t), "no")
	wantErr(t, err, store.ErrNotFound)
}

func testDevices(t *testing.T, s store.Store) {
	u, err := s.CreateUser(ctx(t), "carol", nil)
	if err != nil {
		t.Fatal(err)
	}
	d1, err := s.CreateDevice(ctx(t), u.ID, []byte("hash1"), []byte("cred1"))
	if err != nil {
		t.Fatal(err)
	}
	d2, err := s.CreateDevice(ctx(t), u.ID, []byte("hash2"), []byte("cred2"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Device(ctx(t), d1.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.UserID != u.ID || string(got.AuthHash) != "hash1" || string(got.Credential) != "cred1" || got.Revoked ||
		!got.CreatedAt.Equal(d1.CreatedAt) || !got.LastSeen.Equal(d1.CreatedAt) {
		t.Fatalf("Device = %+v, created %+v", got, d1)
	}
	list, err := s.UserDevices(ctx(t), u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].ID != d1.ID || list[1].ID != d2.ID {
		t.Fatalf("UserDevices = %+v", list)
	}

	seen := time.Now().Add(time.Hour).UTC().Truncate(time.Microsecond)
	if err := s.TouchDevice(ctx(t), d1.ID, seen); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Device(ctx(t), d1.ID); !got.LastSeen.Equal(seen) {
		t.Fatalf("LastSeen = %v, want %v", got.LastSeen, seen)
	}

	if err := s.UploadKeyPackages(ctx(t), d1.ID, []store.KeyPackage{{Ref: randBytes(8), Data: []byte("kp")}}); err != nil {
		t.Fatal(err)
	}
	for range 2 { // idempotent
		if err := s.RevokeDevice(ctx(t), d1.ID); err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := s.Device(ctx(t), d1.ID); !got.Revoked {
		t.Fatal("device not revoked")
	}
	if n, _ := s.CountKeyPackages(ctx(t), d1.ID); n != 0 {
		t.Fatalf("revoked device still has %d KeyPackages", n)
	}
	err = s.UploadKeyPackages(ctx(t), d1.ID, []store.KeyPackage{{Ref: randBytes(8), Data: []byte("kp")}})
	wantErr(t, err, store.ErrNotFound)

	_, err = s.CreateDevice(ctx(t), store.NewUserID(), nil, nil)
	wantErr(t, err, store.ErrNotFound)
	_, err = s.Device(ctx(t), store.NewDeviceID())
	wantErr(t, err, store.ErrNotFound)
	wantErr(t, s.TouchDevice(ctx(t), store.NewDeviceID(), seen), store.ErrNotFound)
	wantErr(t, s.RevokeDevice(ctx(t), store.NewDeviceID()), store.ErrNotFound)
}

func testKeyPackages(t *testing.T, s store.Store) {
	u, err := s.CreateUser(ctx(t), "dave", nil)
	if err != nil {
		t.Fatal(err)
	}
	d1, _ := s.CreateDevice(ctx(t), u.ID, nil, nil)
	d2, _ := s.CreateDevice(ctx(t), u.ID, nil, nil)
	d3, _ := s.CreateDevice(ctx(t), u.ID, nil, nil) // never uploads

	kps := []store.KeyPackage{
		{Ref: []byte("r1"), Data: []byte("kp1")},
		{Ref: []byte("r2"), Data: []byte("kp2")},
		{Ref: []byte("last1"), Data: []byte("last-1"), LastResort: true},
	}
	if err := s.UploadKeyPackages(ctx(t), d1.ID, kps); err != nil {
		t.Fatal(err)
	}
	// Re-uploading a ref is a no-op.
	if err := s.UploadKeyPackages(ctx(t), d1.ID, kps[:1]); err != nil {
		t.Fatal(err)
	}
	if n, err := s.CountKeyPackages(ctx(t), d1.ID); err != nil || n != 2 {
		t.Fatalf("CountKeyPackages = %d, %v; want 2", n, err)
	}

	claimOne := func(d store.DeviceID) store.ClaimedKeyPackage {
		t.Helper()
		c, err := s.ClaimKeyPackages(ctx(t), []store.DeviceID{d})
		if err != nil {
			t.Fatal(err)
		}
		if len(c) != 1 || c[0].Device != d {
			t.Fatalf("claimed %+v", c)
		}
		return c[0]
	}
	var got []string
	for range 2 {
		c := claimOne(d1.ID)
		if c.LastResort {
			t.Fatal("claimed the last-resort KeyPackage while ordinary ones remain")
		}
		got = append(got, string(c.Data))
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{"kp1", "kp2"}) {
		t.Fatalf("claimed %v", got)
	}
	if n, _ := s.CountKeyPackages(ctx(t), d1.ID); n != 0 {
		t.Fatalf("claimed KeyPackages not deleted: %d left", n)
	}
	// Exhausted: the last resort is handed out and kept.
	for range 2 {
		c := claimOne(d1.ID)
		if !c.LastResort || string(c.Data) != "last-1" || string(c.Ref) != "last1" {
			t.Fatalf("claimed %+v, want the last resort", c)
		}
	}
	// A new last resort replaces the old one.
	if err := s.UploadKeyPackages(ctx(t), d1.ID, []store.KeyPackage{{Ref: []byte("last2"), Data: []byte("last-2"), LastResort: true}}); err != nil {
		t.Fatal(err)
	}
	if c := claimOne(d1.ID); string(c.Data) != "last-2" {
		t.Fatalf("claimed %q, want the new last resort", c.Data)
	}

	// Claiming for a user covers its live devices; devices without
	// KeyPackages are left out.
	if err := s.UploadKeyPackages(ctx(t), d2.ID, []store.KeyPackage{{Ref: []byte("r3"), Data: []byte("kp3")}}); err != nil {
		t.Fatal(err)
	}
	cs, err := s.ClaimUserKeyPackages(ctx(t), u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 2 || cs[0].Device != d1.ID || cs[1].Device != d2.ID || string(cs[1].Data) != "kp3" {
		t.Fatalf("ClaimUserKeyPackages = %+v", cs)
	}
	// The list form, with a duplicate and a device without KeyPackages.
	cs, err = s.ClaimKeyPackages(ctx(t), []store.DeviceID{d1.ID, d3.ID, d1.ID})
	if err != nil || len(cs) != 1 || cs[0].Device != d1.ID {
		t.Fatalf("ClaimKeyPackages = %+v, %v", cs, err)
	}
	_, err = s.ClaimKeyPackages(ctx(t), []store.DeviceID{d3.ID, store.NewDeviceID()})
	wantErr(t, err, store.ErrNoKeyPackage)
	_, err = s.ClaimKeyPackages(ctx(t), nil)
	wantErr(t, err, store.ErrNoKeyPackage)

	// Revoked devices cannot be claimed.
	if err := s.UploadKeyPackages(ctx(t), d2.ID, []store.KeyPackage{{Ref: []byte("r4"), Data: []byte("kp4")}}); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeDevice(ctx(t), d1.ID); err != nil {
		t.Fatal(err)
	}
	cs, err = s.ClaimUserKeyPackages(ctx(t), u.ID)
	if err != nil || len(cs) != 1 || cs[0].Device != d2.ID || string(cs[0].Data) != "kp4" {
		t.Fatalf("after revoking: %+v, %v", cs, err)
	}
	_, err = s.ClaimKeyPackages(ctx(t), []store.DeviceID{d1.ID})
	wantErr(t, err, store.ErrNoKeyPackage)

	err = s.UploadKeyPackages(ctx(t), store.NewDeviceID(), kps)
	wantErr(t, err, store.ErrNotFound)
	err = s.UploadKeyPackages(ctx(t), d2.ID, []store.KeyPackage{{Ref: nil, Data: []byte("x")}})
	wantErr(t, err, store.ErrInvalid)
}

// testClaimConcurrent: concurrent claims never hand out the same
// KeyPackage, and hand out the last resort only when the rest are gone.
func testClaimConcurrent(t *testing.T, s store.Store) {
	const total, workers = 60, 12
	d := device(t, s)
	var kps []store.KeyPackage
	for i := range total {
		kps = append(kps, store.KeyPackage{Ref: fmt.Appendf(nil, "ref-%d", i), Data: fmt.Appendf(nil, "kp-%d", i)})
	}
	kps = append(kps, store.KeyPackage{Ref: []byte("last"), Data: []byte("last"), LastResort: true})
	if err := s.UploadKeyPackages(ctx(t), d, kps); err != nil {
		t.Fatal(err)
	}
	claimed := make([][]string, workers)
	errs := make([]error, workers)
	runConcurrently(workers, func(i int) {
		for range total / workers {
			c, err := s.ClaimKeyPackages(context.Background(), []store.DeviceID{d})
			if err != nil {
				errs[i] = err
				return
			}
			if c[0].LastResort {
				errs[i] = errors.New("got the last resort while ordinary KeyPackages remained")
				return
			}
			claimed[i] = append(claimed[i], string(c[0].Data))
		}
	})
	seen := map[string]bool{}
	for i := range workers {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		for _, kp := range claimed[i] {
			if seen[kp] {
				t.Fatalf("KeyPackage %s claimed twice", kp)
			}
			seen[kp] = true
		}
	}
	if len(seen) != total {
		t.Fatalf("claimed %d distinct KeyPackages, want %d", len(seen), total)
	}
	c, err := s.ClaimKeyPackages(ctx(t), []store.DeviceID{d})
	if err != nil || !c[0].LastResort {
		t.Fatalf("after exhaustion: %+v, %v", c, err)
	}
}

func testGroups(t *testing.T, s store.Store) {
	ds := devices(t, s, 3)
	id := store.GroupID(randBytes(32))
	if err := s.CreateGroup(ctx(t), id, ds[0], 7, []store.DeviceID{ds[1], ds[0], ds[1]}); err != nil {
		t.Fatal(err)
	}
	g, err := s.Group(ctx(t), id)
	if err != nil {
		t.Fatal(err)
	}
	want := sortedIDs(ds[:2])
	if !bytes.Equal(g.ID, id) || g.Epoch != 7 || g.LastSeq != 0 || !slices.Equal(g.Roster, want) {
		t.Fatalf("Group = %+v, want epoch 7 and roster %v", g, want)
	}
	wantErr(t, s.CreateGroup(ctx(t), id, ds[2], 0, nil), store.ErrExists)
	wantErr(t, s.CreateGroup(ctx(t), store.GroupID(randBytes(32)), ds[0], 0, []store.DeviceID{store.NewDeviceID()}), store.ErrNotFound)
	if err := s.RevokeDevice(ctx(t), ds[2]); err != nil {
		t.Fatal(err)
	}
	wantErr(t, s.CreateGroup(ctx(t), store.GroupID(randBytes(32)), ds[2], 0, nil), store.ErrNotFound)
	_, err = s.Group(ctx(t), store.GroupID(randBytes(32)))
	wantErr(t, err, store.ErrNotFound)
	// A group with one member, and a one-byte id.
	if err := s.CreateGroup(ctx(t), store.GroupID{0}, ds[0], 0, nil); err != nil {
		t.Fatal(err)
	}
	if g, err := s.Group(ctx(t), store.GroupID{0}); err != nil || len(g.Roster) != 1 {
		t.Fatalf("Group = %+v, %v", g, err)
	}
}

func sortedIDs(ids []store.DeviceID) []store.DeviceID {
	out := slices.Clone(ids)
	slices.SortFunc(out, func(a, b store.DeviceID) int { return bytes.Compare(a[:], b[:]) })
	return out
}

func testAppendAndFetch(t *testing.T, s store.Store) {
	alice, bob := device(t, s), device(t, s)
	g := group(t, s, alice, bob)
	big := bytes.Repeat([]byte{0xAB}, 200<<10) // spans overflow pages
	var sent []store.Appended
	var msgs []store.Message
	for i := range 10 {
		m := msg(g, alice, fmt.Sprintf("m%d", i))
		m.Kind, m.Epoch = store.KindProposal, uint64(i)
		if i == 9 {
			m.Payload = big
		}
		before := time.Now().Add(-time.Second)
		a := mustAppend(t, s, m)
		if a.Duplicate || a.Seq != uint64(i+1) {
			t.Fatalf("append %d: %+v, want seq %d", i, a, i+1)
		}
		if a.SentAt.Before(before) || a.SentAt.After(time.Now().Add(time.Second)) {
			t.Fatalf("SentAt %v is not the server time", a.SentAt)
		}
		sent, msgs = append(sent, a), append(msgs, m)
	}
	p := fetch(t, s, bob, 0)
	if len(p.Messages) != 10 || len(p.Direct) != 0 {
		t.Fatalf("fetched %d messages, %d direct; want 10, 0", len(p.Messages), len(p.Direct))
	}
	for i, got := range p.Messages {
		want := msgs[i]
		if !bytes.Equal(got.GroupID, g) || got.Seq != sent[i].Seq || got.Sender != alice || got.ClientMsgID != want.ClientMsgID ||
			got.Kind != want.Kind || got.Epoch != want.Epoch || !bytes.Equal(got.Payload, want.Payload) ||
			!got.SentAt.Equal(sent[i].SentAt) || got.ExpiresAt != nil {
			t.Fatalf("message %d: got %+v", i, got)
		}
	}
	// Senders do not get their own messages back.
	if p := fetch(t, s, alice, 0); len(p.Messages) != 0 {
		t.Fatalf("sender fetched its own messages: %v", payloads(p))
	}
	if g, _ := s.Group(ctx(t), g); g.LastSeq != 10 {
		t.Fatalf("LastSeq = %d, want 10", g.LastSeq)
	}
	// Limits.
	if p := fetch(t, s, bob, 3); !slices.Equal(payloads(p), []string{"m0", "m1", "m2"}) {
		t.Fatalf("Fetch(limit 3) = %v", payloads(p))
	}
	if p := fetch(t, s, bob, store.MaxFetchLimit+1); len(p.Messages) != 10 {
		t.Fatalf("Fetch(limit > max) = %d messages", len(p.Messages))
	}
	if p := fetch(t, s, store.NewDeviceID(), 0); len(p.Messages)+len(p.Direct) != 0 {
		t.Fatal("unknown device fetched messages")
	}
}

func testIdempotency(t *testing.T, s store.Store) {
	alice, bob := device(t, s), device(t, s)
	g := group(t, s, alice, bob)
	m := msg(g, alice, "original")
	first := mustAppend(t, s, m)
	mustAppend(t, s, msg(g, alice, "other"))
	m.Payload = []byte("retry with a different body")
	again := mustAppend(t, s, m)
	if !again.Duplicate || again.Seq != first.Seq || !again.SentAt.Equal(first.SentAt) {
		t.Fatalf("retry = %+v, want duplicate of %+v", again, first)
	}
	if p := fetch(t, s, bob, 0); !slices.Equal(payloads(p), []string{"original", "other"}) {
		t.Fatalf("stored %v", payloads(p))
	}
	// The key is per sender: bob may use alice's key.
	m.Sender = bob
	if a := mustAppend(t, s, m); a.Duplicate || a.Seq != 3 {
		t.Fatalf("other sender's append = %+v", a)
	}
	// Duplicates are detected even after the sender left the group.
	carol := device(t, s)
	if _, err := s.AppendCommit(ctx(t), msg(g, alice, "remove bob"), 0, []store.DeviceID{alice, carol}); err != nil {
		t.Fatal(err)
	}
	if a, err := s.AppendMessage(ctx(t), m); err != nil || !a.Duplicate || a.Seq != 3 {
		t.Fatalf("retry by a removed member = %+v, %v", a, err)
	}
}

func testIdempotencyConcurrent(t *testing.T, s store.Store) {
	alice, bob := device(t, s), device(t, s)
	g := group(t, s, alice, bob)
	m := msg(g, alice, "once")
	const n = 16
	res := make([]store.Appended, n)
	errs := make([]error, n)
	runConcurrently(n, func(i int) { res[i], errs[i] = s.AppendMessage(context.Background(), m) })
	fresh := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if !res[i].Duplicate {
			fresh++
		}
		if res[i].Seq != 1 {
			t.Fatalf("append %d got seq %d, want 1", i, res[i].Seq)
		}
	}
	if fresh != 1 {
		t.Fatalf("%d appends were not duplicates, want 1", fresh)
	}
	if p := fetch(t, s, bob, 0); len(p.Messages) != 1 {
		t.Fatalf("stored %d copies", len(p.Messages))
	}
}

func testRosterRejection(t *testing.T, s store.Store) {
	alice, bob, mallory := device(t, s), device(t, s), device(t, s)
	g := group(t, s, alice, bob)
	_, err := s.AppendMessage(ctx(t), msg(g, mallory, "spam"))
	wantErr(t, err, store.ErrNotMember)
	_, err = s.AppendCommit(ctx(t), msg(g, mallory, "take over"), 0, []store.DeviceID{mallory})
	wantErr(t, err, store.ErrNotMember)
	// A stale commit from an outsider learns nothing about the epoch.
	_, err = s.AppendCommit(ctx(t), msg(g, mallory, "take over"), 5, []store.DeviceID{mallory})
	wantErr(t, err, store.ErrNotMember)
	_, err = s.AppendMessage(ctx(t), msg(store.GroupID(randBytes(32)), alice, "nowhere"))
	wantErr(t, err, store.ErrNotFound)
	gr, err := s.Group(ctx(t), g)
	if err != nil {
		t.Fatal(err)
	}
	if gr.LastSeq != 0 || gr.Epoch != 0 || len(gr.Roster) != 2 {
		t.Fatalf("rejected appends changed the group: %+v", gr)
	}
	// The rejected message can be sent once the sender is a member, with
	// the same idempotency key: the rejection stored nothing.
	m := msg(g, mallory, "hello")
	_, err = s.AppendMessage(ctx(t), m)
	wantErr(t, err, store.ErrNotMember)
	if _, err := s.AppendCommit(ctx(t), msg(g, alice, "add mallory"), 0, []store.DeviceID{alice, bob, mallory}); err != nil {
		t.Fatal(err)
	}
	if a := mustAppend(t, s, m); a.Duplicate || a.Seq != 2 {
		t.Fatalf("append after joining = %+v", a)
	}
	if p := fetch(t, s, bob, 0); !slices.Equal(payloads(p), []string{"add mallory", "hello"}) {
		t.Fatalf("bob fetched %v", payloads(p))
	}
}

// testAppendConcurrentOrdering: concurrent senders get distinct,
// contiguous sequence numbers, and each sender's messages keep its order.
func testAppendConcurrentOrdering(t *testing.T, s store.Store) {
	const senders, each = 8, 40
	ds := devices(t, s, senders+1)
	reader := ds[senders]
	g := group(t, s, ds...)
	seqs := make([][]uint64, senders)
	errs := make([]error, senders)
	runConcurrently(senders, func(i int) {
		for j := range each {
			a, err := s.AppendMessage(context.Background(), msg(g, ds[i], fmt.Sprintf("%d/%d", i, j)))
			if err != nil {
				errs[i] = err
				return
			}
			seqs[i] = append(seqs[i], a.Seq)
		}
	})
	var all []uint64
	for i := range senders {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if !slices.IsSorted(seqs[i]) {
			t.Fatalf("sender %d got seqs out of order: %v", i, seqs[i])
		}
		all = append(all, seqs[i]...)
	}
	slices.Sort(all)
	for i, seq := range all {
		if seq != uint64(i+1) {
			t.Fatalf("seqs are not 1..%d: %v", senders*each, all)
		}
	}
	// The log reads back in seq order, and matches what each sender saw.
	var got []store.Message
	for {
		p := fetch(t, s, reader, 64)
		if len(p.Messages) == 0 {
			break
		}
		got = append(got, p.Messages...)
		mustAck(t, s, reader, g, p.Messages[len(p.Messages)-1].Seq)
	}
	if len(got) != senders*each {
		t.Fatalf("read back %d messages", len(got))
	}
	for i, m := range got {
		var sender, j int
		fmt.Sscanf(string(m.Payload), "%d/%d", &sender, &j)
		if m.Seq != uint64(i+1) || seqs[sender][j] != m.Seq {
			t.Fatalf("message %q has seq %d", m.Payload, m.Seq)
		}
	}
}

func testCursors(t *testing.T, s store.Store) {
	alice, bob, carol := device(t, s), device(t, s), device(t, s)
	g := group(t, s, alice, bob)
	for i := range 5 {
		mustAppend(t, s, msg(g, alice, fmt.Sprint(i)))
	}
	mustAck(t, s, bob, g, 2)
	if p := fetch(t, s, bob, 0); !slices.Equal(payloads(p), []string{"2", "3", "4"}) {
		t.Fatalf("after ack 2: %v", payloads(p))
	}
	mustAck(t, s, bob, g, 4)
	mustAck(t, s, bob, g, 1) // backwards: no-op
	mustAck(t, s, bob, g, 4) // repeat: no-op
	if p := fetch(t, s, bob, 0); !slices.Equal(payloads(p), []string{"4"}) {
		t.Fatalf("after ack 4 then 1: %v", payloads(p))
	}
	wantErr(t, s.Ack(ctx(t), bob, g, 6), store.ErrInvalid)
	wantErr(t, s.Ack(ctx(t), carol, g, 1), store.ErrNotMember)
	wantErr(t, s.Ack(ctx(t), bob, store.GroupID(randBytes(32)), 1), store.ErrNotFound)
	mustAck(t, s, bob, g, 5)
	if p := fetch(t, s, bob, 0); len(p.Messages) != 0 {
		t.Fatalf("after acking everything: %v", payloads(p))
	}
	// Alice acking past her own messages is allowed.
	mustAck(t, s, alice, g, 5)
	// New messages arrive after the cursor.
	mustAppend(t, s, msg(g, alice, "5"))
	if p := fetch(t, s, bob, 0); !slices.Equal(payloads(p), []string{"5"}) {
		t.Fatalf("new message: %v", payloads(p))
	}
}

func testFetchAcrossGroups(t *testing.T, s store.Store) {
	alice, bob, carol := device(t, s), device(t, s), device(t, s)
	g1 := group(t, s, alice, bob)
	g2 := group(t, s, carol, bob)
	g3 := group(t, s, alice, carol) // bob is not in it
	for i := range 3 {
		mustAppend(t, s, msg(g1, alice, fmt.Sprint("g1-", i)))
		mustAppend(t, s, msg(g2, carol, fmt.Sprint("g2-", i)))
		mustAppend(t, s, msg(g3, alice, fmt.Sprint("g3-", i)))
	}
	p := fetch(t, s, bob, 0)
	byGroup := map[string][]uint64{}
	for _, m := range p.Messages {
		if bytes.Equal(m.GroupID, g3) {
			t.Fatal("fetched a message of a group the device is not in")
		}
		byGroup[string(m.GroupID)] = append(byGroup[string(m.GroupID)], m.Seq)
	}
	for _, g := range []store.GroupID{g1, g2} {
		if !slices.Equal(byGroup[string(g)], []uint64{1, 2, 3}) {
			t.Fatalf("group %s: seqs %v", g, byGroup[string(g)])
		}
	}
	// Cursors are per group.
	mustAck(t, s, bob, g1, 3)
	p = fetch(t, s, bob, 0)
	if !slices.Equal(payloads(p), []string{"g2-0", "g2-1", "g2-2"}) {
		t.Fatalf("after acking g1: %v", payloads(p))
	}
	// A small limit still yields each group's messages in order.
	mustAppend(t, s, msg(g1, alice, "g1-3"))
	var got []string
	for range 10 {
		p := fetch(t, s, bob, 1)
		if len(p.Messages) == 0 {
			break
		}
		got = append(got, payloads(p)...)
		mustAck(t, s, bob, p.Messages[0].GroupID, p.Messages[0].Seq)
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{"g1-3", "g2-0", "g2-1", "g2-2"}) {
		t.Fatalf("paged fetch: %v", got)
	}
}

func testCommit(t *testing.T, s store.Store) {
	alice, bob, carol, dave := device(t, s), device(t, s), device(t, s), device(t, s)
	g := group(t, s, alice, bob, carol)
	mustAppend(t, s, msg(g, alice, "before"))

	// Replace carol by dave.
	c := msg(g, alice, "commit 0")
	c.Kind = store.KindCommit
	a, err := s.AppendCommit(ctx(t), c, 0, []store.DeviceID{alice, bob, dave})
	if err != nil {
		t.Fatal(err)
	}
	if a.Seq != 2 || a.Duplicate {
		t.Fatalf("AppendCommit = %+v", a)
	}
	gr, _ := s.Group(ctx(t), g)
	if gr.Epoch != 1 || gr.LastSeq != 2 || !slices.Equal(gr.Roster, sortedIDs([]store.DeviceID{alice, bob, dave})) {
		t.Fatalf("after commit: %+v", gr)
	}
	mustAppend(t, s, msg(g, bob, "after"))
	// Bob sees everything; dave only what came after the commit adding
	// him; carol nothing more, and she can no longer send or ack.
	if p := fetch(t, s, bob, 0); !slices.Equal(payloads(p), []string{"before", "commit 0"}) {
		t.Fatalf("bob: %v", payloads(p))
	}
	if p := fetch(t, s, dave, 0); !slices.Equal(payloads(p), []string{"after"}) {
		t.Fatalf("dave: %v", payloads(p))
	}
	if p := fetch(t, s, carol, 0); len(p.Messages) != 0 {
		t.Fatalf("removed carol: %v", payloads(p))
	}
	_, err = s.AppendMessage(ctx(t), msg(g, carol, "still here?"))
	wantErr(t, err, store.ErrNotMember)
	wantErr(t, s.Ack(ctx(t), carol, g, 1), store.ErrNotMember)

	// A stale commit stores nothing and reports the current epoch.
	_, err = s.AppendCommit(ctx(t), msg(g, bob, "stale"), 0, []store.DeviceID{bob})
	wantErr(t, err, store.ErrEpochConflict)
	var ec *store.EpochConflictError
	if !errors.As(err, &ec) || ec.Current != 1 {
		t.Fatalf("error %v, want EpochConflictError{Current: 1}", err)
	}
	if gr, _ := s.Group(ctx(t), g); gr.Epoch != 1 || gr.LastSeq != 3 || len(gr.Roster) != 3 {
		t.Fatalf("stale commit changed the group: %+v", gr)
	}
	// A retried commit that won is a duplicate, not a conflict.
	if a, err := s.AppendCommit(ctx(t), c, 0, []store.DeviceID{alice, bob, dave}); err != nil || !a.Duplicate || a.Seq != 2 {
		t.Fatalf("retried commit = %+v, %v", a, err)
	}
	// A device can be removed and added back; it starts afresh.
	if _, err := s.AppendCommit(ctx(t), msg(g, alice, "commit 1"), 1, []store.DeviceID{alice, bob, dave, carol}); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, s, msg(g, dave, "welcome back"))
	if p := fetch(t, s, carol, 0); !slices.Equal(payloads(p), []string{"welcome back"}) {
		t.Fatalf("re-added carol: %v", payloads(p))
	}
	// An empty roster is allowed (the group is then dormant).
	if _, err := s.AppendCommit(ctx(t), msg(g, alice, "commit 2"), 2, nil); err != nil {
		t.Fatal(err)
	}
	if gr, _ := s.Group(ctx(t), g); gr.Epoch != 3 || len(gr.Roster) != 0 {
		t.Fatalf("after emptying: %+v", gr)
	}
	// The new roster must name existing devices.
	g2 := group(t, s, alice)
	_, err = s.AppendCommit(ctx(t), msg(g2, alice, "c"), 0, []store.DeviceID{alice, store.NewDeviceID()})
	wantErr(t, err, store.ErrNotFound)
	if gr, _ := s.Group(ctx(t), g2); gr.Epoch != 0 || gr.LastSeq != 0 {
		t.Fatalf("failed commit changed the group: %+v", gr)
	}
	_, err = s.AppendCommit(ctx(t), msg(store.GroupID(randBytes(32)), alice, "c"), 0, nil)
	wantErr(t, err, store.ErrNotFound)
}

// testCommitConcurrent: of commits competing for an epoch, exactly one
// wins, round after round.
func testCommitConcurrent(t *testing.T, s store.Store) {
	const members, rounds = 8, 5
	ds := devices(t, s, members)
	g := group(t, s, ds...)
	epoch := uint64(0)
	for round := range rounds {
		results := make([]store.Appended, members)
		errs := make([]error, members)
		runConcurrently(members, func(i int) {
			m := msg(g, ds[i], fmt.Sprintf("commit %d by %d", round, i))
			m.Kind = store.KindCommit
			// Each proposes to remove the member after it, so that the
			// resulting roster shows who won.
			j := (i + 1) % members
			roster := slices.Delete(slices.Clone(ds), j, j+1)
			results[i], errs[i] = s.AppendCommit(context.Background(), m, epoch, roster)
		})
		winner := -1
		for i := range members {
			if errs[i] == nil {
				if winner >= 0 {
					t.Fatalf("round %d: both %d and %d won", round, winner, i)
				}
				winner = i
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: nobody won: %v", round, errs)
		}
		for i := range members {
			var ec *store.EpochConflictError
			switch {
			case i == winner:
			case i == (winner+1)%members && errors.Is(errs[i], store.ErrNotMember):
				// Removed by the winner before its own attempt ran.
			case errors.As(errs[i], &ec) && errors.Is(errs[i], store.ErrEpochConflict):
				if ec.Current != epoch+1 {
					t.Fatalf("round %d: %v, want current epoch %d", round, errs[i], epoch+1)
				}
			default:
				t.Fatalf("round %d, member %d: %v", round, i, errs[i])
			}
		}
		gr, _ := s.Group(ctx(t), g)
		if gr.Epoch != epoch+1 || gr.LastSeq != results[winner].Seq || len(gr.Roster) != members-1 ||
			slices.Contains(gr.Roster, ds[(winner+1)%members]) {
			t.Fatalf("round %d: group %+v after winner %d", round, gr, winner)
		}
		// The winner adds the removed member back, for the next round.
		if _, err := s.AppendCommit(ctx(t), msg(g, ds[winner], "re-add"), epoch+1, ds); err != nil {
			t.Fatal(err)
		}
		epoch += 2
	}
}

func testDirect(t *testing.T, s store.Store) {
	alice, bob := device(t, s), device(t, s)
	g := group(t, s, alice, bob)
	mustAppend(t, s, msg(g, alice, "group message"))
	w := store.Direct{To: bob, Sender: alice, ClientMsgID: "welcome-1", GroupID: g, Kind: store.KindWelcome, Payload: []byte("welcome")}
	a1, err := s.AppendDirect(ctx(t), w)
	if err != nil || a1.Seq != 1 || a1.Duplicate {
		t.Fatalf("AppendDirect = %+v, %v", a1, err)
	}
	if dup, err := s.AppendDirect(ctx(t), w); err != nil || !dup.Duplicate || dup.Seq != 1 || !dup.SentAt.Equal(a1.SentAt) {
		t.Fatalf("duplicate AppendDirect = %+v, %v", dup, err)
	}
	a2, err := s.AppendDirect(ctx(t), store.Direct{To: bob, Sender: alice, ClientMsgID: "note", Kind: store.KindApplication, Payload: []byte("note")})
	if err != nil || a2.Seq != 2 {
		t.Fatalf("second AppendDirect = %+v, %v", a2, err)
	}
	// The same key from the same sender to another device is distinct.
	if a, err := s.AppendDirect(ctx(t), store.Direct{To: alice, Sender: alice, ClientMsgID: "welcome-1", Payload: []byte("x")}); err != nil || a.Duplicate || a.Seq != 1 {
		t.Fatalf("AppendDirect to another device = %+v, %v", a, err)
	}

	p := fetch(t, s, bob, 0)
	if len(p.Direct) != 2 || len(p.Messages) != 1 {
		t.Fatalf("Fetch = %d direct, %d messages", len(p.Direct), len(p.Messages))
	}
	d := p.Direct[0]
	if d.To != bob || d.Seq != 1 || d.Sender != alice || d.ClientMsgID != "welcome-1" || !bytes.Equal(d.GroupID, g) ||
		d.Kind != store.KindWelcome || string(d.Payload) != "welcome" || !d.SentAt.Equal(a1.SentAt) || d.ExpiresAt != nil {
		t.Fatalf("direct = %+v", d)
	}
	if p.Direct[1].GroupID != nil || p.Direct[1].Seq != 2 {
		t.Fatalf("second direct = %+v", p.Direct[1])
	}
	// Direct mail comes first and counts against the limit.
	if p := fetch(t, s, bob, 2); len(p.Direct) != 2 || len(p.Messages) != 0 {
		t.Fatalf("Fetch(2) = %d direct, %d messages", len(p.Direct), len(p.Messages))
	}
	if err := s.AckDirect(ctx(t), bob, 1); err != nil {
		t.Fatal(err)
	}
	if p := fetch(t, s, bob, 0); len(p.Direct) != 1 || p.Direct[0].Seq != 2 {
		t.Fatalf("after AckDirect(1): %+v", p.Direct)
	}
	if err := s.AckDirect(ctx(t), bob, 2); err != nil {
		t.Fatal(err)
	}
	// Inbox sequence numbers keep increasing after acks.
	if a, err := s.AppendDirect(ctx(t), store.Direct{To: bob, Sender: alice, ClientMsgID: "later", Payload: []byte("later")}); err != nil || a.Seq != 3 {
		t.Fatalf("AppendDirect after acks = %+v, %v", a, err)
	}
	_, err = s.AppendDirect(ctx(t), store.Direct{To: store.NewDeviceID(), Sender: alice, ClientMsgID: "x"})
	wantErr(t, err, store.ErrNotFound)
}

func testExpiry(t *testing.T, s store.Store) {
	alice, bob := device(t, s), device(t, s)
	g := group(t, s, alice, bob)
	past := time.Now().Add(-time.Minute)
	future := time.Now().Add(time.Hour)
	m := msg(g, alice, "expired")
	m.ExpiresAt = &past
	mustAppend(t, s, m)
	m = msg(g, alice, "live")
	m.ExpiresAt = &future
	mustAppend(t, s, m)
	if _, err := s.AppendDirect(ctx(t), store.Direct{To: bob, Sender: alice, ClientMsgID: "d", Payload: []byte("d"), ExpiresAt: &past}); err != nil {
		t.Fatal(err)
	}
	p := fetch(t, s, bob, 0)
	if !slices.Equal(payloads(p), []string{"live"}) || len(p.Direct) != 0 {
		t.Fatalf("fetched %v and %d direct; expired mail must not be delivered", payloads(p), len(p.Direct))
	}
	if got := p.Messages[0].ExpiresAt; got == nil || !got.Equal(future.UTC().Truncate(time.Microsecond)) {
		t.Fatalf("ExpiresAt = %v, want %v", got, future)
	}
	r, err := s.Purge(ctx(t), time.Now(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if r.Messages != 1 || r.Direct != 1 {
		t.Fatalf("Purge = %+v, want 1 message and 1 direct", r)
	}
	r, err = s.Purge(ctx(t), future.Add(time.Second), 0)
	if err != nil || r.Messages != 1 {
		t.Fatalf("Purge after the second expiry = %+v, %v", r, err)
	}
	if p := fetch(t, s, bob, 0); len(p.Messages) != 0 {
		t.Fatalf("after purge: %v", payloads(p))
	}
}

// testDisappearing: a disappearing message is deleted as soon as every
// recipient has acknowledged it; ordinary ones wait for Purge.
func testDisappearing(t *testing.T, s store.Store) {
	alice, bob, carol := device(t, s), device(t, s), device(t, s)
	g := group(t, s, alice, bob, carol)
	future := time.Now().Add(time.Hour)
	mustAppend(t, s, msg(g, alice, "ordinary"))
	m := msg(g, alice, "disappearing")
	m.ExpiresAt = &future
	mustAppend(t, s, m)
	mustAck(t, s, bob, g, 2)
	// Carol has not acknowledged: still there for her.
	if p := fetch(t, s, carol, 0); !slices.Equal(payloads(p), []string{"ordinary", "disappearing"}) {
		t.Fatalf("carol: %v", payloads(p))
	}
	mustAck(t, s, carol, g, 2)
	// Alice, the sender, never acknowledged her own messages, and need not.
	// The disappearing message is gone already; Purge finds only the
	// ordinary one.
	r, err := s.Purge(ctx(t), time.Now(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if r.Messages != 1 {
		t.Fatalf("Purge deleted %d messages, want 1 (the ordinary one)", r.Messages)
	}
}

func testRetention(t *testing.T, s store.Store) {
	alice, bob := device(t, s), device(t, s)
	g := group(t, s, alice, bob)
	mustAppend(t, s, msg(g, alice, "unread"))
	if _, err := s.AppendDirect(ctx(t), store.Direct{To: bob, Sender: alice, ClientMsgID: "d", Payload: []byte("d")}); err != nil {
		t.Fatal(err)
	}
	old, err := s.CreateBlob(ctx(t), store.Blob{ID: store.NewBlobID(), Uploader: alice, Size: 10})
	if err != nil {
		t.Fatal(err)
	}
	soon := time.Now().Add(time.Hour)
	expiring, err := s.CreateBlob(ctx(t), store.Blob{ID: store.NewBlobID(), Uploader: alice, Size: 10, ExpiresAt: &soon})
	if err != nil {
		t.Fatal(err)
	}
	// Nothing is due yet: unread messages are kept.
	if r, err := s.Purge(ctx(t), time.Now(), store.DefaultRetention); err != nil || r.Messages+r.Direct != 0 || len(r.Blobs) != 0 {
		t.Fatalf("early Purge = %+v, %v", r, err)
	}
	// An hour on, the expiring blob goes.
	if r, err := s.Purge(ctx(t), soon.Add(time.Second), store.DefaultRetention); err != nil || !slices.Equal(r.Blobs, []store.BlobID{expiring.ID}) {
		t.Fatalf("Purge at expiry = %+v, %v", r, err)
	}
	// Past the retention limit everything goes, read or not.
	r, err := s.Purge(ctx(t), time.Now().Add(store.DefaultRetention+time.Minute), 0) // 0: the default
	if err != nil {
		t.Fatal(err)
	}
	if r.Messages != 1 || r.Direct != 1 || !slices.Equal(r.Blobs, []store.BlobID{old.ID}) {
		t.Fatalf("Purge past retention = %+v", r)
	}
	if p := fetch(t, s, bob, 0); len(p.Messages)+len(p.Direct) != 0 {
		t.Fatal("purged mail still fetched")
	}
	_, err = s.Blob(ctx(t), old.ID)
	wantErr(t, err, store.ErrNotFound)
	// A shorter retention, as a parameter.
	mustAppend(t, s, msg(g, alice, "short-lived"))
	if r, err := s.Purge(ctx(t), time.Now().Add(2*time.Hour), time.Hour); err != nil || r.Messages != 1 {
		t.Fatalf("Purge with 1h retention = %+v, %v", r, err)
	}
	// The log's sequence numbers continue after a purge.
	if a := mustAppend(t, s, msg(g, alice, "next")); a.Seq != 3 {
		t.Fatalf("seq after purge = %d, want 3", a.Seq)
	}
}

func testBlobs(t *testing.T, s store.Store) {
	alice := device(t, s)
	exp := time.Now().Add(time.Hour).UTC().Truncate(time.Microsecond)
	b, err := s.CreateBlob(ctx(t), store.Blob{ID: store.NewBlobID(), Uploader: alice, Size: 1234, Digest: []byte("digest"), ExpiresAt: &exp})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Blob(ctx(t), b.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != b.ID || got.Uploader != alice || got.Size != 1234 || string(got.Digest) != "digest" ||
		!got.CreatedAt.Equal(b.CreatedAt) || got.ExpiresAt == nil || !got.ExpiresAt.Equal(exp) {
		t.Fatalf("Blob = %+v, want %+v", got, b)
	}
	_, err = s.CreateBlob(ctx(t), store.Blob{ID: b.ID, Uploader: alice})
	wantErr(t, err, store.ErrExists)
	plain, err := s.CreateBlob(ctx(t), store.Blob{ID: store.NewBlobID(), Uploader: alice})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Blob(ctx(t), plain.ID); got.Digest != nil || got.ExpiresAt != nil {
		t.Fatalf("optional fields = %+v", got)
	}
	_, err = s.Blob(ctx(t), store.NewBlobID())
	wantErr(t, err, store.ErrNotFound)
	_, err = s.CreateBlob(ctx(t), store.Blob{ID: store.NewBlobID(), Size: -1})
	wantErr(t, err, store.ErrInvalid)
}

func testValidation(t *testing.T, s store.Store) {
	alice := device(t, s)
	g := group(t, s, alice)
	marker := "SECRET-PAYLOAD-" + randHex(8)
	for _, m := range []store.Message{
		{GroupID: g, Sender: alice, Payload: []byte(marker)},                                       // no client id
		{GroupID: g, Sender: alice, ClientMsgID: strings.Repeat("x", 65), Payload: []byte(marker)}, // too long
		{GroupID: nil, Sender: alice, ClientMsgID: "c", Payload: []byte(marker)},
		{GroupID: make(store.GroupID, 256), Sender: alice, ClientMsgID: "c", Payload: []byte(marker)},
		{GroupID: g, Sender: alice, ClientMsgID: "c", Epoch: 1 << 63, Payload: []byte(marker)},
	} {
		_, err := s.AppendMessage(ctx(t), m)
		wantErr(t, err, store.ErrInvalid)
		if strings.Contains(err.Error(), marker) {
			t.Fatalf("error %q contains the payload", err)
		}
	}
	_, err := s.AppendCommit(ctx(t), msg(g, alice, marker), 1<<63, nil)
	wantErr(t, err, store.ErrInvalid)
	wantErr(t, s.Ack(ctx(t), alice, g, 1<<63), store.ErrInvalid)
	_, err = s.AppendDirect(ctx(t), store.Direct{To: alice, Sender: alice, Payload: []byte(marker)})
	wantErr(t, err, store.ErrInvalid)
	wantErr(t, s.CreateGroup(ctx(t), nil, alice, 0, nil), store.ErrInvalid)
	// Errors about members carry ids, never payloads.
	mallory := device(t, s)
	_, err = s.AppendMessage(ctx(t), msg(g, mallory, marker))
	if !errors.Is(err, store.ErrNotMember) || strings.Contains(err.Error(), marker) {
		t.Fatalf("error %v", err)
	}
}

func testContext(t *testing.T, s store.Store) {
	alice, bob := device(t, s), device(t, s)
	g := group(t, s, alice, bob)
	c, cancel := context.WithCancel(ctx(t))
	cancel()
	if _, err := s.AppendMessage(c, msg(g, alice, "cancelled")); err == nil {
		t.Fatal("AppendMessage with a cancelled context succeeded")
	}
	if err := s.Ack(c, bob, g, 0); err == nil {
		t.Fatal("Ack with a cancelled context succeeded")
	}
	if _, err := s.Fetch(c, bob, 0); err == nil {
		t.Fatal("Fetch with a cancelled context succeeded")
	}
	if gr, _ := s.Group(ctx(t), g); gr.LastSeq != 0 {
		t.Fatal("a cancelled append was stored")
	}
}

func testClosed(t *testing.T, s store.Store) {
	alice := device(t, s)
	g := group(t, s, alice)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AppendMessage(ctx(t), msg(g, alice, "late")); err == nil {
		t.Fatal("AppendMessage after Close succeeded")
	}
	if _, err := s.Fetch(ctx(t), alice, 0); err == nil {
		t.Fatal("Fetch after Close succeeded")
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}
