// Package keys is the KeyPackage directory: devices upload batches of MLS
// KeyPackages, and other devices claim one per device of the users they
// want to add to a group.
//
// A claimed KeyPackage is deleted at once, so that no two groups get the
// same one (its init key is single-use). When a device's batch runs out,
// claims hand out its last-resort KeyPackage instead, which is kept:
// reusing it weakens forward secrecy a little, which is better than being
// unreachable. Count and upload answers carry proto.RefillBelow, the count
// under which a client uploads more.
//
// # Security considerations
//
// The directory parses each KeyPackage (it must be an
// MLSMessage(KeyPackage)) and names it by its KeyPackageRef, but it cannot
// tell whether the KeyPackage really belongs to the uploading device: that
// binding is the device certificate's, checked by the clients that claim
// it. A malicious server could hand out a stale or foreign KeyPackage; see
// docs/THREAT-MODEL.md.
package keys

import (
	"context"
	"errors"
	"fmt"

	"github.com/hush-chat/hush/mls"
	"github.com/hush-chat/hush/proto"
	"github.com/hush-chat/hush/store"
)

// Directory is the KeyPackage directory.
type Directory struct {
	store store.Store
}

// New returns a Directory over st.
func New(st store.Store) *Directory { return &Directory{store: st} }

func badRequest(format string, args ...any) *proto.Error {
	return &proto.Error{Code: proto.CodeBadRequest, Message: fmt.Sprintf(format, args...)}
}

func tooLarge(format string, args ...any) *proto.Error {
	return &proto.Error{Code: proto.CodeTooLarge, Message: fmt.Sprintf(format, args...)}
}

// Parse checks that data is an MLSMessage(KeyPackage) whose last_resort
// extension agrees with lastResort, and returns it ready for the store.
func Parse(data []byte, lastResort bool) (store.KeyPackage, error) {
	if len(data) > proto.MaxKeyPackageBytes {
		return store.KeyPackage{}, tooLarge("KeyPackage is larger than %d bytes", proto.MaxKeyPackageBytes)
	}
	m, err := mls.UnmarshalMLSMessage(data)
	if err != nil || m.WireFormat != mls.WireFormatKeyPackage {
		return store.KeyPackage{}, badRequest("not an MLSMessage(KeyPackage)")
	}
	if m.KeyPackage.IsLastResort() != lastResort {
		return store.KeyPackage{}, badRequest("last_resort does not match the KeyPackage's last_resort extension")
	}
	ref, err := m.KeyPackage.Ref()
	if err != nil {
		return store.KeyPackage{}, badRequest("KeyPackage of an unsupported cipher suite")
	}
	return store.KeyPackage{Ref: ref, Data: data, LastResort: lastResort}, nil
}

// Upload stores a batch of KeyPackages for dev and returns the new count.
// Nothing is stored unless every KeyPackage is well-formed; at most one may
// be a last-resort KeyPackage.
func (d *Directory) Upload(ctx context.Context, dev store.DeviceID, batch []proto.KeyPackage) (proto.KeyPackageCount, error) {
	switch {
	case len(batch) == 0:
		return proto.KeyPackageCount{}, badRequest("key_packages is empty")
	case len(batch) > proto.MaxKeyPackageBatch:
		return proto.KeyPackageCount{}, tooLarge("more than %d KeyPackages in one upload", proto.MaxKeyPackageBatch)
	}
	kps := make([]store.KeyPackage, len(batch))
	lastResort := 0
	for i, kp := range batch {
		var err error
		if kps[i], err = Parse(kp.Data, kp.LastResort); err != nil {
			e := err.(*proto.Error)
			e.Message = fmt.Sprintf("key_packages[%d]: %s", i, e.Message)
			return proto.KeyPackageCount{}, e
		}
		if kp.LastResort {
			lastResort++
		}
	}
	if lastResort > 1 {
		return proto.KeyPackageCount{}, badRequest("more than one last-resort KeyPackage")
	}
	if err := d.store.UploadKeyPackages(ctx, dev, kps); err != nil {
		return proto.KeyPackageCount{}, err
	}
	return d.Count(ctx, dev)
}

// Count returns how many ordinary KeyPackages dev has left.
func (d *Directory) Count(ctx context.Context, dev store.DeviceID) (proto.KeyPackageCount, error) {
	n, err := d.store.CountKeyPackages(ctx, dev)
	if err != nil {
		return proto.KeyPackageCount{}, err
	}
	return proto.KeyPackageCount{Count: n, RefillBelow: proto.RefillBelow}, nil
}

// Claim claims one KeyPackage for each live device of each listed user
// and for each listed device. store.ErrNoKeyPackage if there is none at
// all; users and devices without one are left out of the answer, which
// the client notices.
func (d *Directory) Claim(ctx context.Context, req *proto.Claim) (proto.Claimed, error) {
	n := len(req.Usernames) + len(req.DeviceIDs)
	switch {
	case n == 0:
		return proto.Claimed{}, badRequest("claim lists no username and no device")
	case n > proto.MaxClaimTargets:
		return proto.Claimed{}, tooLarge("claim lists more than %d usernames and devices", proto.MaxClaimTargets)
	}
	devices := make([]store.DeviceID, len(req.DeviceIDs))
	for i, s := range req.DeviceIDs {
		id, err := store.ParseDeviceID(s)
		if err != nil {
			return proto.Claimed{}, badRequest("device_ids[%d] is not a device id", i)
		}
		devices[i] = id
	}
	out := proto.Claimed{KeyPackages: []proto.ClaimedKeyPackage{}}
	for _, name := range req.Usernames {
		u, err := d.store.UserByName(ctx, name)
		if err != nil {
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			return proto.Claimed{}, err
		}
		kps, err := d.store.ClaimUserKeyPackages(ctx, u.ID)
		if err != nil && !errors.Is(err, store.ErrNoKeyPackage) {
			return proto.Claimed{}, err
		}
		for _, kp := range kps {
			out.KeyPackages = append(out.KeyPackages, proto.ClaimedKeyPackage{UserID: u.ID.String(), DeviceID: kp.Device.String(), Data: kp.Data})
		}
	}
	if len(devices) > 0 {
		kps, err := d.store.ClaimKeyPackages(ctx, devices)
		if err != nil && !errors.Is(err, store.ErrNoKeyPackage) {
			return proto.Claimed{}, err
		}
		for _, kp := range kps {
			dev, err := d.store.Device(ctx, kp.Device)
			if err != nil {
				return proto.Claimed{}, err
			}
			out.KeyPackages = append(out.KeyPackages, proto.ClaimedKeyPackage{UserID: dev.UserID.String(), DeviceID: kp.Device.String(), Data: kp.Data})
		}
	}
	if len(out.KeyPackages) == 0 {
		return proto.Claimed{}, store.ErrNoKeyPackage
	}
	return out, nil
}
