package metrics

import (
	"context"
	"time"

	"github.com/hush-chat/hush/store"
)

// Store wraps a store.Store and records each call's latency in
// StoreSeconds.
type Store struct {
	s store.Store
	h map[string]interface{ Observe(float64) }
}

var _ store.Store = (*Store)(nil)

// storeOps are the operations timed, one histogram series each.
var storeOps = []string{
	"CreateUser", "User", "UserByName",
	"CreateDevice", "Device", "UserDevices", "TouchDevice", "RevokeDevice",
	"UploadKeyPackages", "ClaimKeyPackages", "ClaimUserKeyPackages", "CountKeyPackages",
	"CreateGroup", "Group", "AppendMessage", "AppendCommit", "AppendDirect", "Fetch", "FetchGroup", "Ack", "AckDirect",
	"CreateBlob", "Blob", "ExpireBlobs", "Purge", "PurgeExpired", "Close",
}

// InstrumentStore returns s timed into m.
func (m *Metrics) InstrumentStore(s store.Store) *Store {
	h := make(map[string]interface{ Observe(float64) }, len(storeOps))
	for _, op := range storeOps {
		h[op] = m.StoreSeconds.WithLabelValues(op)
	}
	return &Store{s: s, h: h}
}

func (s *Store) since(op string, start time.Time) {
	s.h[op].Observe(time.Since(start).Seconds())
}

func (s *Store) CreateUser(ctx context.Context, username string, identityKey []byte) (store.User, error) {
	defer s.since("CreateUser", time.Now())
	return s.s.CreateUser(ctx, username, identityKey)
}

func (s *Store) User(ctx context.Context, id store.UserID) (store.User, error) {
	defer s.since("User", time.Now())
	return s.s.User(ctx, id)
}

func (s *Store) UserByName(ctx context.Context, username string) (store.User, error) {
	defer s.since("UserByName", time.Now())
	return s.s.UserByName(ctx, username)
}

func (s *Store) CreateDevice(ctx context.Context, user store.UserID, authHash, credential []byte) (store.Device, error) {
	defer s.since("CreateDevice", time.Now())
	return s.s.CreateDevice(ctx, user, authHash, credential)
}

func (s *Store) Device(ctx context.Context, id store.DeviceID) (store.Device, error) {
	defer s.since("Device", time.Now())
	return s.s.Device(ctx, id)
}

func (s *Store) UserDevices(ctx context.Context, user store.UserID) ([]store.Device, error) {
	defer s.since("UserDevices", time.Now())
	return s.s.UserDevices(ctx, user)
}

func (s *Store) TouchDevice(ctx context.Context, id store.DeviceID, at time.Time) error {
	defer s.since("TouchDevice", time.Now())
	return s.s.TouchDevice(ctx, id, at)
}

func (s *Store) RevokeDevice(ctx context.Context, id store.DeviceID) error {
	defer s.since("RevokeDevice", time.Now())
	return s.s.RevokeDevice(ctx, id)
}

func (s *Store) UploadKeyPackages(ctx context.Context, device store.DeviceID, kps []store.KeyPackage) error {
	defer s.since("UploadKeyPackages", time.Now())
	return s.s.UploadKeyPackages(ctx, device, kps)
}

func (s *Store) ClaimKeyPackages(ctx context.Context, devices []store.DeviceID) ([]store.ClaimedKeyPackage, error) {
	defer s.since("ClaimKeyPackages", time.Now())
	return s.s.ClaimKeyPackages(ctx, devices)
}

func (s *Store) ClaimUserKeyPackages(ctx context.Context, user store.UserID) ([]store.ClaimedKeyPackage, error) {
	defer s.since("ClaimUserKeyPackages", time.Now())
	return s.s.ClaimUserKeyPackages(ctx, user)
}

func (s *Store) CountKeyPackages(ctx context.Context, device store.DeviceID) (int, error) {
	defer s.since("CountKeyPackages", time.Now())
	return s.s.CountKeyPackages(ctx, device)
}

func (s *Store) CreateGroup(ctx context.Context, id store.GroupID, creator store.DeviceID, epoch uint64, roster []store.DeviceID) error {
	defer s.since("CreateGroup", time.Now())
	return s.s.CreateGroup(ctx, id, creator, epoch, roster)
}

func (s *Store) Group(ctx context.Context, id store.GroupID) (store.Group, error) {
	defer s.since("Group", time.Now())
	return s.s.Group(ctx, id)
}

func (s *Store) AppendMessage(ctx context.Context, m store.Message) (store.Appended, error) {
	defer s.since("AppendMessage", time.Now())
	return s.s.AppendMessage(ctx, m)
}

// QueueMessage passes store.OrderedAppender through, timed as
// AppendMessage (from queueing to durable); over a store without it, it
// appends at once and wait only returns the outcome.
func (s *Store) QueueMessage(ctx context.Context, m store.Message) (func() (store.Appended, error), error) {
	start := time.Now()
	oa, ok := s.s.(store.OrderedAppender)
	if !ok {
		a, err := s.s.AppendMessage(ctx, m)
		s.since("AppendMessage", start)
		if err != nil {
			return nil, err
		}
		return func() (store.Appended, error) { return a, nil }, nil
	}
	wait, err := oa.QueueMessage(ctx, m)
	if err != nil {
		s.since("AppendMessage", start)
		return nil, err
	}
	return func() (store.Appended, error) {
		defer s.since("AppendMessage", start)
		return wait()
	}, nil
}

func (s *Store) AppendCommit(ctx context.Context, m store.Message, expectedEpoch uint64, newRoster []store.DeviceID) (store.Appended, error) {
	defer s.since("AppendCommit", time.Now())
	return s.s.AppendCommit(ctx, m, expectedEpoch, newRoster)
}

func (s *Store) AppendDirect(ctx context.Context, d store.Direct) (store.Appended, error) {
	defer s.since("AppendDirect", time.Now())
	return s.s.AppendDirect(ctx, d)
}

func (s *Store) Fetch(ctx context.Context, device store.DeviceID, limit int) (store.Pending, error) {
	defer s.since("Fetch", time.Now())
	return s.s.Fetch(ctx, device, limit)
}

func (s *Store) FetchGroup(ctx context.Context, device store.DeviceID, group store.GroupID, after uint64, limit int) ([]store.Message, error) {
	defer s.since("FetchGroup", time.Now())
	return s.s.FetchGroup(ctx, device, group, after, limit)
}

func (s *Store) Ack(ctx context.Context, device store.DeviceID, group store.GroupID, seq uint64) error {
	defer s.since("Ack", time.Now())
	return s.s.Ack(ctx, device, group, seq)
}

func (s *Store) AckDirect(ctx context.Context, device store.DeviceID, seq uint64) error {
	defer s.since("AckDirect", time.Now())
	return s.s.AckDirect(ctx, device, seq)
}

func (s *Store) CreateBlob(ctx context.Context, b store.Blob) (store.Blob, error) {
	defer s.since("CreateBlob", time.Now())
	return s.s.CreateBlob(ctx, b)
}

func (s *Store) Blob(ctx context.Context, id store.BlobID) (store.Blob, error) {
	defer s.since("Blob", time.Now())
	return s.s.Blob(ctx, id)
}

func (s *Store) ExpireBlobs(ctx context.Context, uploader store.DeviceID, clientMsgID string, ids []store.BlobID, expiresAt time.Time) error {
	defer s.since("ExpireBlobs", time.Now())
	return s.s.ExpireBlobs(ctx, uploader, clientMsgID, ids, expiresAt)
}

func (s *Store) Purge(ctx context.Context, now time.Time, retention time.Duration) (store.PurgeResult, error) {
	defer s.since("Purge", time.Now())
	return s.s.Purge(ctx, now, retention)
}

func (s *Store) PurgeExpired(ctx context.Context, now time.Time) (store.PurgeResult, error) {
	defer s.since("PurgeExpired", time.Now())
	return s.s.PurgeExpired(ctx, now)
}

func (s *Store) Close() error {
	defer s.since("Close", time.Now())
	return s.s.Close()
}
