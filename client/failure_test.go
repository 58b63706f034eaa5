package client_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hush-chat/hush/client"
	"github.com/hush-chat/hush/mls"
	"github.com/hush-chat/hush/proto"
)

// crashingStorage fails the commit of the next writable transaction that
// writes to the armed table, as a process killed just before its commit
// would: nothing of the transaction is written.
type crashingStorage struct {
	client.Storage
	mu    sync.Mutex
	table string
}

func (s *crashingStorage) arm(table string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.table = table
}

func (s *crashingStorage) Begin(ctx context.Context, writable bool) (client.StorageTx, error) {
	tx, err := s.Storage.Begin(ctx, writable)
	if err != nil {
		return nil, err
	}
	return &crashingTx{StorageTx: tx, s: s}, nil
}

type crashingTx struct {
	client.StorageTx
	s     *crashingStorage
	armed bool
}

var errCrash = errors.New("simulated crash before commit")

func (t *crashingTx) Put(table, key string, value []byte) error {
	t.s.mu.Lock()
	if table == t.s.table {
		t.armed = true
	}
	t.s.mu.Unlock()
	return t.StorageTx.Put(table, key, value)
}

func (t *crashingTx) Commit() error {
	if t.armed {
		t.s.mu.Lock()
		t.s.table = ""
		t.s.mu.Unlock()
		t.StorageTx.Rollback()
		return errCrash
	}
	return t.StorageTx.Commit()
}

// TestCrashBetweenDecryptAndSave kills the receiver after it decrypted a
// batch and before the transaction saving it committed, then again after
// the commit and before the server was acknowledged: each message is
// processed, and shown, exactly once, and the ratchet goes on.
func TestCrashBetweenDecryptAndSave(t *testing.T) {
	ctx := context.Background()
	srv := newFakeServer()
	alice := register(t, srv, "alice")
	bob := register(t, srv, "bob")
	cv, err := alice.Direct(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	mustSync(t, bob) // bob joins
	bob.Close()

	var crash *crashingStorage
	wrap := func(st client.Storage) client.Storage {
		crash = &crashingStorage{Storage: st}
		return crash
	}
	if _, err := alice.SendText(ctx, cv.ID, "one"); err != nil {
		t.Fatal(err)
	}
	// Crash 1: the batch is decrypted, its transaction never commits.
	b := openDevice(t, srv.transport, bob.path, bob.key, wrap)
	crash.arm("cursors")
	if err := b.Sync(ctx); !errors.Is(err, errCrash) {
		t.Fatalf("sync with a crash = %v", err)
	}
	if len(b.eventsOf(client.EventMessage)) != 0 {
		t.Fatal("an event was emitted for a batch that was not saved")
	}
	b.Close()
	b = openDevice(t, srv.transport, bob.path, bob.key, nil)
	mustSync(t, b)
	equal(t, "after the first crash", texts(t, b, cv.ID), []string{"alice: one"})

	// Crash 2: saved, but the acknowledgement never reaches the server.
	if _, err := alice.SendText(ctx, cv.ID, "two"); err != nil {
		t.Fatal(err)
	}
	b.Close()
	lossy := &lossyTransport{fakeServer: srv, failPath: proto.PathAck}
	b = openDevice(t, lossy.transport, bob.path, bob.key, nil)
	if err := b.Sync(ctx); err == nil {
		t.Fatal("sync succeeded although the ack was lost")
	}
	b.Close()
	b = openDevice(t, srv.transport, bob.path, bob.key, nil)
	mustSync(t, b)
	if _, err := alice.SendText(ctx, cv.ID, "three"); err != nil {
		t.Fatal(err)
	}
	mustSync(t, b)
	equal(t, "after the second crash", texts(t, b, cv.ID), []string{"alice: one", "alice: two", "alice: three"})
	if n := len(b.eventsOf(client.EventMessage)); n != 1 {
		t.Errorf("%d message events after reopening, want 1 (for three)", n)
	}
}

// lossyTransport performs a request to failPath but loses the answer
// once, as a dropped connection would.
type lossyTransport struct {
	*fakeServer
	failPath string
	mu       sync.Mutex
	lost     bool
}

func (l *lossyTransport) transport(string) (client.Transport, error) { return l, nil }

func (l *lossyTransport) Do(ctx context.Context, r *client.Request) (io.ReadCloser, error) {
	body, err := l.fakeServer.Do(ctx, r)
	l.mu.Lock()
	defer l.mu.Unlock()
	if err == nil && !l.lost && strings.HasPrefix(r.Path, l.failPath) {
		l.lost = true
		body.Close()
		return nil, errors.New("connection reset")
	}
	return body, err
}

// TestDuplicateSend loses the server's answer to a send: the message is
// resent with the same client message id and stored once.
func TestDuplicateSend(t *testing.T) {
	ctx := context.Background()
	srv := newFakeServer()
	lossy := &lossyTransport{fakeServer: srv, failPath: "/v1/groups/"}
	path := t.TempDir() + "/alice.db"
	alice := openDevice(t, lossy.transport, path, client.NewStoreKey(), nil)
	lossy.lost = true // not yet: registration and group creation go through
	if _, err := alice.Register(ctx, "http://fake", "alice"); err != nil {
		t.Fatal(err)
	}
	bob := register(t, srv, "bob")
	cv, err := alice.Direct(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	lossy.mu.Lock()
	lossy.lost = false
	lossy.mu.Unlock()
	if _, err := alice.SendText(ctx, cv.ID, "once"); err == nil {
		t.Fatal("send succeeded although the answer was lost")
	}
	msgs, _ := alice.Messages(ctx, cv.ID)
	if len(msgs) != 1 || !msgs[0].Pending {
		t.Fatalf("the unanswered message: %+v", msgs)
	}
	mustSync(t, alice, bob) // alice resends from her outbox
	msgs, _ = alice.Messages(ctx, cv.ID)
	if msgs[0].Pending || msgs[0].Seq == 0 {
		t.Errorf("resent message not marked sent: %+v", msgs[0])
	}
	equal(t, "bob", texts(t, bob, cv.ID), []string{"alice: once"})
	n := 0
	for _, g := range srv.groups {
		for _, e := range g.log {
			if e.Kind == proto.KindApplication {
				n++
			}
		}
	}
	if n != 2 { // the meta message and "once"
		t.Errorf("the server stored %d application messages, want 2", n)
	}
}

func TestIdentityChange(t *testing.T) {
	ctx := context.Background()
	srv := newFakeServer()
	alice, _ := register(t, srv, "alice"), register(t, srv, "bob")
	cv, err := alice.Direct(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	before, err := alice.Contact(ctx, "bob")
	if err != nil || before.KeyChanged {
		t.Fatalf("contact = %+v, %v", before, err)
	}
	// The server now presents another identity key for bob.
	other, _ := client.NewIdentity()
	srv.users["bob"].identity = other.Public()
	ct, err := alice.Contact(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	if !ct.KeyChanged || ct.ChangedSafetyNumber == ct.SafetyNumber || ct.SafetyNumber != before.SafetyNumber {
		t.Fatalf("changed key not reported: %+v", ct)
	}
	if ev := alice.eventsOf(client.EventIdentityChanged); len(ev) != 1 || ev[0].User != "bob" {
		t.Fatalf("events = %+v", ev)
	}
	if _, err := alice.SendText(ctx, cv.ID, "still there?"); !errors.Is(err, client.ErrIdentityChanged) {
		t.Fatalf("send to a contact whose key changed = %v", err)
	}
	if _, err := alice.CreateGroup(ctx, "g", "bob"); !errors.Is(err, client.ErrIdentityChanged) {
		t.Fatalf("adding a contact whose key changed = %v", err)
	}
	ct, err = alice.ConfirmVerified(ctx, "bob")
	if err != nil || ct.KeyChanged || !ct.Verified || ct.SafetyNumber == before.SafetyNumber {
		t.Fatalf("after confirming: %+v, %v", ct, err)
	}
	if _, err := alice.SendText(ctx, cv.ID, "ok"); err != nil {
		t.Fatal(err)
	}
}

// TestForgedDevice has the server slip a device into bob's list whose
// certificate is not signed by bob's identity key: nobody adds it.
func TestForgedDevice(t *testing.T) {
	ctx := context.Background()
	srv := newFakeServer()
	alice, _ := register(t, srv, "alice"), register(t, srv, "bob")
	if _, err := alice.Contact(ctx, "bob"); err != nil { // pin bob's real key
		t.Fatal(err)
	}
	key, err := mls.GenerateSignatureKey(mls.DefaultCipherSuite)
	if err != nil {
		t.Fatal(err)
	}
	mallory, _ := client.NewIdentity()
	cert, _ := mallory.Certify("bob", uint16(mls.DefaultCipherSuite), key.Public(), time.Now())
	certBytes, _ := cert.Marshal()
	reg := srv.addDevice(srv.users["bob"], proto.NewDevice{Secret: make([]byte, 32), Certificate: certBytes})
	kp, err := mls.NewKeyPackage(key, mls.KeyPackageOptions{Credential: mls.BasicCredential([]byte("bob/" + reg.DeviceID))})
	if err != nil {
		t.Fatal(err)
	}
	data, _ := (&mls.MLSMessage{WireFormat: mls.WireFormatKeyPackage, KeyPackage: kp.KeyPackage}).Marshal()
	srv.devices[reg.DeviceID].kps = [][]byte{data}
	_, err = alice.Direct(ctx, "bob")
	if !errors.Is(err, client.ErrBadCertificate) || !strings.Contains(err.Error(), "refusing to add bob") {
		t.Fatalf("adding a forged device = %v", err)
	}
}
