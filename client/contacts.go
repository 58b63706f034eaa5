package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hush-chat/hush/mls"
	"github.com/hush-chat/hush/proto"
)

// contactRecord is a user we have met: the identity key pinned on first
// use, and the devices whose certificates we have checked against it.
type contactRecord struct {
	Username    string `json:"username"`
	IdentityKey []byte `json:"identity_key"`
	Verified    bool   `json:"verified"`
	// ChangedKey is an identity key the server presented for the user
	// that differs from the pinned one. It is never used until the user
	// accepts it (ConfirmVerified).
	ChangedKey []byte            `json:"changed_key,omitempty"`
	Devices    map[string][]byte `json:"devices,omitempty"` // device id → checked MLS signature key
	FirstSeen  time.Time         `json:"first_seen"`
}

// Contact is a user this device has met.
type Contact struct {
	Username    string
	IdentityKey []byte // the pinned key
	// Verified is set once the user confirmed the safety number.
	Verified bool
	// KeyChanged reports that the server now presents another identity
	// key for the user, which has not been accepted: compare safety
	// numbers again (ChangedSafetyNumber) before confirming.
	KeyChanged bool
	// SafetyNumber is computed from our identity key and the pinned one;
	// ChangedSafetyNumber from the new key when KeyChanged.
	SafetyNumber        string
	ChangedSafetyNumber string
}

// ErrIdentityChanged is returned when a user's identity key differs from
// the one pinned when we first met them.
var ErrIdentityChanged = errors.New("client: identity key changed")

func (tx *tx) contact(username string) (*contactRecord, error) {
	var cr contactRecord
	ok, err := tx.get(tableContacts, tx.s.blindIndex("contact", username), &cr)
	if err != nil || !ok {
		return nil, err
	}
	return &cr, nil
}

func (tx *tx) putContact(cr *contactRecord) error {
	return tx.put(tableContacts, tx.s.blindIndex("contact", cr.Username), cr)
}

func (tx *tx) contacts() ([]*contactRecord, error) {
	var out []*contactRecord
	err := tx.scan(tableContacts, "", func(_ string, decode func(any) error) error {
		var cr contactRecord
		if err := decode(&cr); err != nil {
			return err
		}
		out = append(out, &cr)
		return nil
	})
	return out, err
}

// fetchUser gets a user's identity key and devices from the server.
func (c *Client) fetchUser(ctx context.Context, username string) (*proto.UserInfo, error) {
	var info proto.UserInfo
	if err := c.call(ctx, "GET", pathWith(proto.PathUser, "username", username), true, nil, &info); err != nil {
		return nil, fmt.Errorf("client: look up %s: %w", username, err)
	}
	return &info, nil
}

// pin checks the identity key the server presents for a user against the
// pinned one, pinning it on first use. A different key is recorded, a
// warning event is added, and ErrIdentityChanged returned.
func (c *Client) pin(tx *tx, username string, key []byte, events *[]Event) (*contactRecord, error) {
	cr, err := tx.contact(username)
	if err != nil {
		return nil, err
	}
	switch {
	case cr == nil:
		cr = &contactRecord{Username: username, IdentityKey: bytes.Clone(key), FirstSeen: c.o.Now().UTC()}
		return cr, tx.putContact(cr)
	case bytes.Equal(cr.IdentityKey, key):
		return cr, nil
	}
	if !bytes.Equal(cr.ChangedKey, key) {
		cr.ChangedKey = bytes.Clone(key)
		if err := tx.putContact(cr); err != nil {
			return nil, err
		}
		*events = append(*events, Event{Type: EventIdentityChanged, User: username,
			Text: fmt.Sprintf("%s's identity key has changed: compare safety numbers before trusting it", username)})
	}
	return cr, fmt.Errorf("%w: %s (run: hush verify %s)", ErrIdentityChanged, username, username)
}

// checkDevice verifies that the device's MLS signature key is certified
// by the user's pinned identity key, caching the result. info is the
// user's directory entry, fetched if nil and needed.
func (c *Client) checkDevice(ctx context.Context, tx *tx, username, deviceID string, sigKey []byte, info *proto.UserInfo, events *[]Event) error {
	cr, err := tx.contact(username)
	if err != nil {
		return err
	}
	if cr != nil && cr.ChangedKey == nil && bytes.Equal(cr.Devices[deviceID], sigKey) {
		return nil
	}
	if info == nil {
		if info, err = c.fetchUser(ctx, username); err != nil {
			return err
		}
	}
	if cr, err = c.pin(tx, username, info.IdentityKey, events); err != nil {
		return err
	}
	for _, d := range info.Devices {
		if d.DeviceID != deviceID {
			continue
		}
		cert, err := ParseDeviceCertificate(d.Certificate)
		if err != nil {
			return fmt.Errorf("%w: device %s of %s", err, deviceID, username)
		}
		if err := cert.Verify(cr.IdentityKey, username, sigKey); err != nil {
			return fmt.Errorf("%w: device %s of %s", err, deviceID, username)
		}
		if cr.Devices == nil {
			cr.Devices = map[string][]byte{}
		}
		cr.Devices[deviceID] = bytes.Clone(sigKey)
		return tx.putContact(cr)
	}
	return fmt.Errorf("%w: %s has no device %s", ErrBadCertificate, username, deviceID)
}

// checkMember checks the credential and certificate of a group member we
// meet in a Welcome or a commit. A failure is reported as a warning
// event: the group goes on (every member must stay in step), but the UI
// shows the member as unverified.
func (c *Client) checkMember(ctx context.Context, tx *tx, conv string, m mls.Member, events *[]Event) error {
	user, dev, ok := parseCredential(m.Credential)
	var err error
	if !ok {
		err = fmt.Errorf("%w: malformed credential", ErrBadCertificate)
	} else {
		err = c.checkDevice(ctx, tx, user, dev, m.SignatureKey, nil, events)
	}
	if err == nil || errors.Is(err, ErrIdentityChanged) {
		return nil // a changed key has its own event
	}
	if !errors.Is(err, ErrBadCertificate) {
		return err // e.g. the network: try again later
	}
	c.log.Warn("group member failed verification", "conversation", conv, "member", m.Index)
	*events = append(*events, Event{Type: EventWarning, Conversation: conv, User: user, Device: dev,
		Text: fmt.Sprintf("a device of %q in this conversation has no valid certificate from its owner's identity key", user)})
	return nil
}

// memberVerified reports, from the local cache only, whether a member's
// device was checked against its owner's pinned key.
func memberVerified(tx *tx, user, dev string, sigKey []byte) (bool, error) {
	cr, err := tx.contact(user)
	if err != nil || cr == nil {
		return false, err
	}
	return cr.ChangedKey == nil && bytes.Equal(cr.Devices[dev], sigKey), nil
}

func (c *Client) publicContact(cr *contactRecord) (*Contact, error) {
	a, err := c.account()
	if err != nil {
		return nil, err
	}
	me := a.public()
	out := &Contact{Username: cr.Username, IdentityKey: bytes.Clone(cr.IdentityKey), Verified: cr.Verified, KeyChanged: cr.ChangedKey != nil,
		SafetyNumber: SafetyNumber(me.Username, me.IdentityKey, cr.Username, cr.IdentityKey)}
	if cr.ChangedKey != nil {
		out.ChangedSafetyNumber = SafetyNumber(me.Username, me.IdentityKey, cr.Username, cr.ChangedKey)
	}
	return out, nil
}

// Contact looks a user up on the server, checks the identity key it
// presents against the pinned one (pinning it on first use), and returns
// the contact with its safety number. A changed key is reported in
// Contact.KeyChanged, with an EventIdentityChanged, not as an error.
func (c *Client) Contact(ctx context.Context, username string) (*Contact, error) {
	username, err := NormalizeUsername(username)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	info, err := c.fetchUser(ctx, username)
	if err != nil {
		return nil, err
	}
	var events []Event
	var cr *contactRecord
	err = c.db.update(ctx, func(tx *tx) error {
		var err error
		cr, err = c.pin(tx, username, info.IdentityKey, &events)
		if errors.Is(err, ErrIdentityChanged) {
			return nil
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	c.emit(events)
	return c.publicContact(cr)
}

// Contacts lists the users this device has met, ourselves included.
func (c *Client) Contacts(ctx context.Context) ([]*Contact, error) {
	var crs []*contactRecord
	if err := c.db.view(ctx, func(tx *tx) error {
		var err error
		crs, err = tx.contacts()
		return err
	}); err != nil {
		return nil, err
	}
	out := make([]*Contact, 0, len(crs))
	for _, cr := range crs {
		pc, err := c.publicContact(cr)
		if err != nil {
			return nil, err
		}
		out = append(out, pc)
	}
	return out, nil
}

// ConfirmVerified records that the user compared the safety number with
// username out of band. If the contact's identity key had changed, the
// new key is accepted and pinned now; its devices will be checked again.
func (c *Client) ConfirmVerified(ctx context.Context, username string) (*Contact, error) {
	username, err := NormalizeUsername(username)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var cr *contactRecord
	err = c.db.update(ctx, func(tx *tx) error {
		var err error
		if cr, err = tx.contact(username); err != nil {
			return err
		}
		if cr == nil {
			return fmt.Errorf("client: %s is not a contact yet (look them up first)", username)
		}
		if cr.ChangedKey != nil {
			cr.IdentityKey, cr.ChangedKey, cr.Devices = cr.ChangedKey, nil, nil
		}
		cr.Verified = true
		return tx.putContact(cr)
	})
	if err != nil {
		return nil, err
	}
	return c.publicContact(cr)
}

// Device is one of our account's devices.
type Device struct {
	ID      string
	Issued  time.Time // when its certificate was issued
	Current bool      // this device
	// Verified reports that the certificate checks against our identity
	// key.
	Verified bool
}

// Devices lists the account's devices, as the server knows them, each
// checked against our identity key.
func (c *Client) Devices(ctx context.Context) ([]Device, error) {
	a, err := c.account()
	if err != nil {
		return nil, err
	}
	info, err := c.fetchUser(ctx, a.Username)
	if err != nil {
		return nil, err
	}
	me := a.public()
	var out []Device
	for _, d := range info.Devices {
		dev := Device{ID: d.DeviceID, Current: d.DeviceID == a.DeviceID}
		if cert, err := ParseDeviceCertificate(d.Certificate); err == nil {
			dev.Issued = cert.Issued
			dev.Verified = cert.Verify(me.IdentityKey, a.Username, cert.SignatureKey) == nil
		}
		out = append(out, dev)
	}
	return out, nil
}
