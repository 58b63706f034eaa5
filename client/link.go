package client

import (
	"bytes"
	"context"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/hush-chat/hush/mls"
	"github.com/hush-chat/hush/proto"
)

// Linking a new device to an account goes through a provisioning channel
// on the server: two mailboxes, "new" and "old", that the server stores
// without being able to read or forge them.
//
//  1. The existing device opens the channel (POST /v1/provision) and shows
//     a one-time code: the channel id and a 128-bit secret that never
//     reaches the server.
//  2. The new device, given the code, makes its MLS signature key and
//     device secret and writes them into the "new" box, sealed with a key
//     derived from the code's secret (HKDF-SHA256, one key per box,
//     XChaCha20-Poly1305, the channel id and box name as associated data).
//  3. The existing device opens the box, certifies the new device's
//     signature key with the identity key, and registers the device (POST
//     /v1/devices, authenticated as itself). The device secret reaches the
//     server then, over TLS, once, exactly as a first device's secret does
//     at registration; the server keeps only its hash. The secret was
//     made by the new device and travelled to the existing one sealed.
//  4. The existing device writes into the "old" box, sealed: the identity
//     key's seed (so that the new device can link further devices), the
//     username, the new device's id and certificate, the contacts with
//     their pinned keys, and the conversations.
//  5. The new device uploads KeyPackages; the existing device claims one
//     per conversation and adds the new device to each with a commit. From
//     then on the new device receives every conversation's new messages
//     (not the history), and its own messages reach the other devices.
//
// Whoever knows the code during its few minutes of life can take over the
// account: it is shown on the existing device only, to be typed on the
// new one.

// linkRequest is the content of the "new" box.
type linkRequest struct {
	CipherSuite  uint16 `json:"cipher_suite"`
	SignatureKey []byte `json:"signature_key"` // public
	Secret       []byte `json:"secret"`
}

// linkGrant is the content of the "old" box.
type linkGrant struct {
	Username      string           `json:"username"`
	UserID        string           `json:"user_id"`
	DeviceID      string           `json:"device_id"`
	IdentitySeed  []byte           `json:"identity_seed"`
	Certificate   []byte           `json:"certificate"`
	Contacts      []*contactRecord `json:"contacts"`
	Conversations []*Conversation  `json:"conversations"`
}

const (
	linkSecretSize = 16
	boxNew         = "new"
	boxOld         = "old"
	linkPoll       = 500 * time.Millisecond
)

var linkEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// formatLinkCode writes the code as the channel id, a dot, and the secret
// in base32, in groups of five.
func formatLinkCode(channel string, secret []byte) string {
	s := strings.ToLower(linkEncoding.EncodeToString(secret))
	var groups []string
	for len(s) > 5 {
		groups, s = append(groups, s[:5]), s[5:]
	}
	return channel + "." + strings.Join(append(groups, s), "-")
}

// ErrBadLinkCode is returned for a code that is not one `hush link` shows.
var ErrBadLinkCode = errors.New("client: malformed link code")

func parseLinkCode(code string) (channel string, secret []byte, err error) {
	code = strings.TrimSpace(code)
	i := strings.LastIndexByte(code, '.')
	if i <= 0 {
		return "", nil, ErrBadLinkCode
	}
	s := strings.ToUpper(strings.NewReplacer("-", "", " ", "").Replace(code[i+1:]))
	secret, err = linkEncoding.DecodeString(s)
	if err != nil || len(secret) != linkSecretSize {
		return "", nil, ErrBadLinkCode
	}
	return code[:i], secret, nil
}

// linkBox seals and opens the boxes of one channel.
type linkBox struct {
	channel string
	secret  []byte
}

func (l *linkBox) aead(box string) (cipher.AEAD, error) {
	k, err := hkdf.Key(sha256.New, l.secret, []byte(l.channel), "hush link v1 "+box, chacha20poly1305.KeySize)
	if err != nil {
		return nil, err
	}
	defer clear(k)
	return chacha20poly1305.NewX(k)
}

func (l *linkBox) ad(box string) []byte { return []byte("hush link v1\x00" + l.channel + "\x00" + box) }

func (l *linkBox) seal(box string, v any) ([]byte, error) {
	pt, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	defer clear(pt)
	a, err := l.aead(box)
	if err != nil {
		return nil, err
	}
	out := make([]byte, chacha20poly1305.NonceSizeX)
	rand.Read(out)
	return a.Seal(out, out, pt, l.ad(box)), nil
}

// errLinkBox is the one error for a box that does not open: a wrong
// code, or a box written by someone who does not know it.
var errLinkBox = errors.New("client: the linking channel's box does not open (wrong code?)")

func (l *linkBox) open(box string, data []byte, v any) error {
	a, err := l.aead(box)
	if err != nil {
		return err
	}
	if len(data) < chacha20poly1305.NonceSizeX {
		return errLinkBox
	}
	pt, err := a.Open(nil, data[:chacha20poly1305.NonceSizeX], data[chacha20poly1305.NonceSizeX:], l.ad(box))
	if err != nil {
		return errLinkBox
	}
	defer clear(pt)
	if err := json.Unmarshal(pt, v); err != nil {
		return errLinkBox
	}
	return nil
}

func boxPath(channel, box string) string {
	return pathWith(proto.PathProvisionBox, "id", channel) + "?box=" + box
}

// putBox writes a box of the channel.
func (c *Client) putBox(ctx context.Context, l *linkBox, box string, v any, auth bool) error {
	data, err := l.seal(box, v)
	if err != nil {
		return err
	}
	if len(data) > proto.MaxProvisionBytes {
		return fmt.Errorf("client: linking: %d bytes to hand over, more than the server takes (%d)", len(data), proto.MaxProvisionBytes)
	}
	return c.call(ctx, "PUT", pathWith(proto.PathProvisionBox, "id", l.channel), auth, proto.ProvisionBox{Box: box, Data: data}, nil)
}

// awaitBox polls a box until it is written, then opens it into v.
func (c *Client) awaitBox(ctx context.Context, l *linkBox, box string, auth bool, v any) error {
	ctx, cancel := context.WithTimeout(ctx, proto.ProvisionTTL)
	defer cancel()
	for {
		var pb proto.ProvisionBox
		err := c.call(ctx, "GET", boxPath(l.channel, box), auth, nil, &pb)
		switch {
		case err == nil && len(pb.Data) > 0:
			return l.open(box, pb.Data, v)
		case err != nil && !isCode(err, proto.CodeNotFound):
			return fmt.Errorf("client: linking: %w", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("client: linking: gave up waiting for the other device: %w", ctx.Err())
		case <-time.After(linkPoll):
		}
	}
}

// LinkOffer is a linking channel opened by an existing device.
type LinkOffer struct {
	// Code is the one-time code to type on the new device.
	Code    string
	Expires time.Time
	c       *Client
	box     *linkBox
}

// Link opens a linking channel; show the offer's Code to the user and
// call Complete.
func (c *Client) Link(ctx context.Context) (*LinkOffer, error) {
	if _, err := c.account(); err != nil {
		return nil, err
	}
	var ch proto.ProvisionChannel
	if err := c.call(ctx, "POST", proto.PathProvision, true, proto.Provision{}, &ch); err != nil {
		return nil, fmt.Errorf("client: open a linking channel: %w", err)
	}
	secret := make([]byte, linkSecretSize)
	rand.Read(secret)
	return &LinkOffer{Code: formatLinkCode(ch.ID, secret), Expires: ch.Expires, c: c, box: &linkBox{channel: ch.ID, secret: secret}}, nil
}

// Complete waits for the new device, registers it, hands it the account,
// and adds it to every conversation. It returns the new device's id.
func (o *LinkOffer) Complete(ctx context.Context) (string, error) {
	c := o.c
	defer clear(o.box.secret)
	var req linkRequest
	if err := c.awaitBox(ctx, o.box, boxNew, true, &req); err != nil {
		return "", err
	}
	defer clear(req.Secret)
	if len(req.Secret) != proto.AuthSecretBytes || !mls.CipherSuite(req.CipherSuite).Supported() {
		return "", errors.New("client: linking: the new device sent an unusable key")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	// Catch up first: a conversation whose Welcome is still waiting on the
	// server is one the new device must be added to as well.
	if err := c.syncLocked(ctx); err != nil {
		return "", fmt.Errorf("client: linking: %w", err)
	}
	a, err := c.account()
	if err != nil {
		return "", err
	}
	id, err := a.identity()
	if err != nil {
		return "", err
	}
	cert, err := id.Certify(a.Username, req.CipherSuite, req.SignatureKey, c.o.Now())
	if err != nil {
		return "", err
	}
	certBytes, err := cert.Marshal()
	if err != nil {
		return "", err
	}
	var reg proto.Registered
	if err := c.call(ctx, "POST", proto.PathDevices, true, proto.NewDevice{Secret: req.Secret, Certificate: certBytes}, &reg); err != nil {
		return "", fmt.Errorf("client: register the new device: %w", err)
	}
	grant := &linkGrant{Username: a.Username, UserID: a.UserID, DeviceID: reg.DeviceID, IdentitySeed: a.IdentitySeed, Certificate: certBytes}
	var convs []*Conversation
	err = c.db.update(ctx, func(tx *tx) error {
		self, err := tx.contact(a.Username)
		if err != nil || self == nil {
			return errors.Join(err, errors.New("client: own contact missing"))
		}
		if self.Devices == nil {
			self.Devices = map[string][]byte{}
		}
		self.Devices[reg.DeviceID] = bytes.Clone(req.SignatureKey)
		if err := tx.putContact(self); err != nil {
			return err
		}
		if grant.Contacts, err = tx.contacts(); err != nil {
			return err
		}
		for _, cr := range grant.Contacts {
			cr.Devices = nil // the new device checks devices itself
		}
		all, err := tx.convs()
		for _, cv := range all {
			if cv.Active {
				convs = append(convs, cv)
			}
		}
		return err
	})
	if err != nil {
		return "", err
	}
	grant.Conversations = convs
	if err := c.putBox(ctx, o.box, boxOld, grant, true); err != nil {
		return "", fmt.Errorf("client: linking: %w", err)
	}
	for _, cv := range convs {
		kp, err := c.awaitKeyPackage(ctx, reg.DeviceID, req.SignatureKey)
		if err != nil {
			return "", err
		}
		if err := c.flushOutbox(ctx); err != nil {
			return "", err
		}
		if err := c.commitAdd(ctx, cv, []claimedKeyPackage{{user: a.Username, device: reg.DeviceID, kp: kp}}); err != nil {
			return "", fmt.Errorf("client: add the new device to %s: %w", cv.Title(), err)
		}
	}
	return reg.DeviceID, nil
}

// addOwnDevices adds to conversation conv, which this device has just
// joined from a Welcome, the account's other devices that are not in
// it. The member who added us added the devices of ours it knew of; one
// linked while that was on its way (or before its KeyPackages were
// claimed) would otherwise never join. Another of our devices may add
// the same one at the same moment (commitAdd then leaves it out). c.mu is
// held.
func (c *Client) addOwnDevices(ctx context.Context, conv string) error {
	own, err := c.ownOtherDevices(ctx)
	if err != nil || len(own) == 0 {
		return err
	}
	var cv *Conversation
	var missing []string
	if err := c.db.view(ctx, func(tx *tx) error {
		var err error
		if cv, err = tx.conv(conv); err != nil {
			return err
		}
		g, err := tx.group(conv)
		if err != nil || g == nil || !g.Active() {
			return err
		}
		defer g.Wipe()
		in := memberDevices(g)
		for _, d := range own {
			if !in[d] {
				missing = append(missing, d)
			}
		}
		return nil
	}); err != nil || len(missing) == 0 || !cv.Active {
		return err
	}
	kps, err := c.claim(ctx, nil, missing)
	if err != nil || len(kps) == 0 {
		return err
	}
	return c.commitAdd(ctx, cv, kps)
}

// awaitKeyPackage claims a KeyPackage of the new device once it has
// uploaded some, and checks that it carries the key we certified.
func (c *Client) awaitKeyPackage(ctx context.Context, device string, sigKey []byte) (*mls.KeyPackage, error) {
	a, err := c.account()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, proto.ProvisionTTL)
	defer cancel()
	for {
		var resp proto.Claimed
		err := c.call(ctx, "POST", proto.PathClaim, true, proto.Claim{DeviceIDs: []string{device}}, &resp)
		if err == nil && len(resp.KeyPackages) == 1 {
			m, err := mls.UnmarshalMLSMessage(resp.KeyPackages[0].Data)
			if err != nil || m.WireFormat != mls.WireFormatKeyPackage {
				return nil, errors.New("client: linking: malformed KeyPackage")
			}
			u, d, ok := parseCredential(m.KeyPackage.LeafNode.Credential)
			if !ok || u != a.Username || d != device || !bytes.Equal(m.KeyPackage.LeafNode.SignatureKey, sigKey) {
				return nil, fmt.Errorf("%w: the new device's KeyPackage does not carry the key it sent", ErrBadCertificate)
			}
			return m.KeyPackage, nil
		}
		if err != nil && !isCode(err, proto.CodeNoKeyPackage) && !isCode(err, proto.CodeNotFound) {
			return nil, fmt.Errorf("client: linking: claim the new device's KeyPackage: %w", err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("client: linking: the new device uploaded no KeyPackage: %w", ctx.Err())
		case <-time.After(linkPoll):
		}
	}
}

// LinkNew links this device, which has no account yet, to the account of
// the device that showed code (see Link). It returns once the account is
// saved here and KeyPackages are uploaded; the conversations' Welcomes
// follow as the other device adds this one (Sync to receive them).
func (c *Client) LinkNew(ctx context.Context, serverURL, code string) (*Account, error) {
	channel, secret, err := parseLinkCode(code)
	if err != nil {
		return nil, err
	}
	defer clear(secret)
	l := &linkBox{channel: channel, secret: secret}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := c.account(); err == nil {
		return nil, ErrAccountExists
	}
	tr, err := c.o.Transport(serverURL)
	if err != nil {
		return nil, err
	}
	c.amu.Lock()
	c.tr = tr
	c.amu.Unlock()
	key, err := mls.GenerateSignatureKey(mls.DefaultCipherSuite)
	if err != nil {
		return nil, err
	}
	devSecret := make([]byte, proto.AuthSecretBytes)
	rand.Read(devSecret)
	req := linkRequest{CipherSuite: uint16(key.CipherSuite()), SignatureKey: key.Public(), Secret: devSecret}
	if err := c.putBox(ctx, l, boxNew, req, false); err != nil {
		return nil, fmt.Errorf("client: linking: %w", err)
	}
	var g linkGrant
	if err := c.awaitBox(ctx, l, boxOld, false, &g); err != nil {
		return nil, err
	}
	defer clear(g.IdentitySeed)
	id, err := ParseIdentity(g.IdentitySeed)
	if err != nil {
		return nil, errLinkBox
	}
	cert, err := ParseDeviceCertificate(g.Certificate)
	if err != nil || cert.Verify(id.Public(), g.Username, key.Public()) != nil {
		return nil, fmt.Errorf("%w: the certificate from the other device does not match", ErrBadCertificate)
	}
	a := &accountRecord{Server: serverURL, Username: g.Username, UserID: g.UserID, DeviceID: g.DeviceID,
		IdentitySeed: bytes.Clone(g.IdentitySeed), CipherSuite: req.CipherSuite, SignatureKey: key.Bytes(),
		Certificate: g.Certificate, Secret: devSecret, Created: c.o.Now().UTC()}
	if err := c.saveAccount(ctx, a); err != nil {
		return nil, err
	}
	err = c.db.update(ctx, func(tx *tx) error {
		for _, cr := range g.Contacts {
			if cr.Username == a.Username {
				continue // pinned from our own identity key by saveAccount
			}
			if err := tx.putContact(cr); err != nil {
				return err
			}
		}
		for _, cv := range g.Conversations {
			cv.Active = false // until its Welcome arrives
			if err := tx.putConv(cv); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := c.uploadKeyPackages(ctx, c.o.KeyPackageBatch, true); err != nil {
		return nil, err
	}
	return a.public(), nil
}
