package client

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"

	"github.com/hush-chat/hush/mls"
	"github.com/hush-chat/hush/proto"
)

// group loads the MLS state of a group, or nil if we have none.
func (tx *tx) group(id string) (*mls.Group, error) {
	var data []byte
	ok, err := tx.get(tableGroups, id, &data)
	if err != nil || !ok {
		return nil, err
	}
	defer clear(data)
	g, err := mls.UnmarshalGroup(data, mls.Config{})
	if err != nil {
		return nil, fmt.Errorf("client: group %s: %w", shortID(id), err)
	}
	return g, nil
}

func (tx *tx) putGroup(id string, g *mls.Group) error {
	data, err := g.MarshalBinary()
	if err != nil {
		return err
	}
	defer clear(data)
	return tx.put(tableGroups, id, data)
}

// usersOf lists the users with a device in the group, sorted.
func usersOf(g *mls.Group) []string {
	var out []string
	for _, m := range g.Members() {
		if u, _, ok := parseCredential(m.Credential); ok {
			out = append(out, u)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Members lists the devices of a conversation, with whether each was
// verified against its owner's pinned identity key.
func (c *Client) Members(ctx context.Context, conv string) ([]Member, error) {
	a, err := c.account()
	if err != nil {
		return nil, err
	}
	var out []Member
	err = c.db.view(ctx, func(tx *tx) error {
		g, err := tx.group(conv)
		if err != nil {
			return err
		}
		if g == nil {
			return fmt.Errorf("%w: conversation %s", ErrNotFound, shortID(conv))
		}
		defer g.Wipe()
		for _, m := range g.Members() {
			u, d, ok := parseCredential(m.Credential)
			if !ok {
				out = append(out, Member{User: "?", Device: "?"})
				continue
			}
			v, err := memberVerified(tx, u, d, m.SignatureKey)
			if err != nil {
				return err
			}
			out = append(out, Member{User: u, Device: d, Verified: v, Self: d == a.DeviceID})
		}
		return nil
	})
	return out, err
}

// MLSGroup returns the conversation's MLS group as stored, for what needs
// the group itself: exporting keys (calls), or comparing epoch
// authenticators. Changes to it are not saved. It holds every secret of
// the group: Wipe it when done.
func (c *Client) MLSGroup(ctx context.Context, conv string) (*mls.Group, error) {
	var g *mls.Group
	err := c.db.view(ctx, func(tx *tx) error {
		var err error
		if g, err = tx.group(conv); err == nil && g == nil {
			err = fmt.Errorf("%w: conversation %s", ErrNotFound, shortID(conv))
		}
		return err
	})
	return g, err
}

// claimedKeyPackage is a KeyPackage whose device certificate checked out.
type claimedKeyPackage struct {
	user, device string
	kp           *mls.KeyPackage
}

// claim claims a KeyPackage for every device of the users (and for the
// listed devices of our own), and checks each against the owner's device
// certificate and pinned identity key. Any that fails is an error: we
// never add a device whose owner did not certify it.
func (c *Client) claim(ctx context.Context, users []string, ownDevices []string) ([]claimedKeyPackage, error) {
	a, err := c.account()
	if err != nil {
		return nil, err
	}
	infos := map[string]*proto.UserInfo{}
	for _, u := range users {
		if infos[u], err = c.fetchUser(ctx, u); err != nil {
			return nil, err
		}
	}
	if len(ownDevices) > 0 {
		if infos[a.Username], err = c.fetchUser(ctx, a.Username); err != nil {
			return nil, err
		}
	}
	var events []Event
	// Pin (or check) identity keys before spending anyone's KeyPackages.
	err = c.db.update(ctx, func(tx *tx) error {
		for _, u := range users {
			if _, err := c.pin(tx, u, infos[u].IdentityKey, &events); err != nil {
				return err
			}
		}
		return nil
	})
	c.emit(events)
	if err != nil {
		return nil, err
	}
	var reqs []proto.Claim
	for chunk := range slices.Chunk(users, proto.MaxClaimTargets) {
		reqs = append(reqs, proto.Claim{Usernames: chunk})
	}
	for chunk := range slices.Chunk(ownDevices, proto.MaxClaimTargets) {
		reqs = append(reqs, proto.Claim{DeviceIDs: chunk})
	}
	var claimed []proto.ClaimedKeyPackage
	for _, req := range reqs {
		var resp proto.Claimed
		if err := c.call(ctx, "POST", proto.PathClaim, true, req, &resp); err != nil {
			if isCode(err, proto.CodeNoKeyPackage) && len(req.Usernames) == 0 {
				continue // our other devices have none: go on without them
			}
			return nil, fmt.Errorf("client: claim KeyPackages: %w", err)
		}
		claimed = append(claimed, resp.KeyPackages...)
	}
	var out []claimedKeyPackage
	err = c.db.update(ctx, func(tx *tx) error {
		for _, ck := range claimed {
			m, err := mls.UnmarshalMLSMessage(ck.Data)
			if err != nil || m.WireFormat != mls.WireFormatKeyPackage {
				return fmt.Errorf("client: the server handed out a malformed KeyPackage for device %s", ck.DeviceID)
			}
			user, dev, ok := parseCredential(m.KeyPackage.LeafNode.Credential)
			info := infos[user]
			if !ok || dev != ck.DeviceID || info == nil || (user == a.Username && !slices.Contains(ownDevices, dev)) {
				return fmt.Errorf("%w: KeyPackage of device %s names another device", ErrBadCertificate, ck.DeviceID)
			}
			if err := c.checkDevice(ctx, tx, user, dev, m.KeyPackage.LeafNode.SignatureKey, info, &events); err != nil {
				return fmt.Errorf("client: refusing to add %s: %w", user, err)
			}
			if lt := m.KeyPackage.LeafNode.Lifetime; uint64(c.o.Now().Unix()) > lt.NotAfter {
				// A device that has not refreshed its KeyPackages for
				// long: leave it out rather than fail the whole change.
				c.log.Warn("leaving out a device whose KeyPackage expired", "device", dev)
				continue
			}
			out = append(out, claimedKeyPackage{user: user, device: dev, kp: m.KeyPackage})
		}
		return nil
	})
	c.emit(events)
	if err != nil {
		return nil, err
	}
	for _, u := range users {
		if !slices.ContainsFunc(out, func(k claimedKeyPackage) bool { return k.user == u }) {
			return nil, fmt.Errorf("client: %s has no device to add (no KeyPackage left)", u)
		}
	}
	return out, nil
}

// ownOtherDevices lists our account's devices other than this one.
func (c *Client) ownOtherDevices(ctx context.Context) ([]string, error) {
	a, err := c.account()
	if err != nil {
		return nil, err
	}
	info, err := c.fetchUser(ctx, a.Username)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, d := range info.Devices {
		if d.DeviceID != a.DeviceID {
			out = append(out, d.DeviceID)
		}
	}
	return out, nil
}

// normalizeUsers normalises, deduplicates and drops ourselves.
func (c *Client) normalizeUsers(users []string) ([]string, error) {
	a, err := c.account()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, u := range users {
		n, err := NormalizeUsername(u)
		if err != nil {
			return nil, err
		}
		if n != a.Username && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out, nil
}

// CreateGroup starts a group conversation with the users; all their
// devices, and our own other devices, are added. The name travels only
// inside the group.
func (c *Client) CreateGroup(ctx context.Context, name string, users ...string) (*Conversation, error) {
	if len(name) > MaxNameBytes {
		return nil, fmt.Errorf("client: group name longer than %d bytes", MaxNameBytes)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	users, err := c.normalizeUsers(users)
	if err != nil {
		return nil, err
	}
	if len(users) == 0 {
		return nil, errors.New("client: a group needs at least one other user")
	}
	return c.create(ctx, KindGroup, name, users)
}

// Direct returns the 1:1 chat with a user, starting it if there is none.
func (c *Client) Direct(ctx context.Context, username string) (*Conversation, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	users, err := c.normalizeUsers([]string{username})
	if err != nil {
		return nil, err
	}
	if len(users) == 0 {
		return nil, errors.New("client: a 1:1 chat needs another user")
	}
	if cv, err := c.FindConversation(ctx, "@"+users[0]); err == nil && cv.Kind == KindDirect {
		return cv, nil
	}
	return c.create(ctx, KindDirect, "", users)
}

// create makes a new group with the users' devices and our other ones.
func (c *Client) create(ctx context.Context, kind ConversationKind, name string, users []string) (*Conversation, error) {
	a, err := c.account()
	if err != nil {
		return nil, err
	}
	if err := c.flushOutbox(ctx); err != nil {
		return nil, err
	}
	own, err := c.ownOtherDevices(ctx)
	if err != nil {
		return nil, err
	}
	kps, err := c.claim(ctx, users, own)
	if err != nil {
		return nil, err
	}
	gid := make([]byte, 32)
	rand.Read(gid)
	id := hex.EncodeToString(gid)
	if err := c.call(ctx, "POST", proto.PathGroups, true, proto.CreateGroup{GroupID: gid}, nil); err != nil {
		return nil, fmt.Errorf("client: create group: %w", err)
	}
	key, err := a.signatureKey()
	if err != nil {
		return nil, err
	}
	g, err := mls.CreateGroup(key, a.credential(), mls.CreateGroupOptions{
		GroupID: gid, Extensions: groupExtensions(), LeafExtensions: []mls.ExtensionType{ExtensionTimer},
	})
	if err != nil {
		return nil, err
	}
	now := c.o.Now().UTC()
	cv := &Conversation{ID: id, Kind: kind, Name: name, Active: true, Created: now, Last: now}
	if kind == KindDirect {
		cv.Peer = users[0]
	}
	err = c.db.update(ctx, func(tx *tx) error {
		if err := tx.putGroup(id, g); err != nil {
			return err
		}
		return tx.putConv(cv)
	})
	g.Wipe()
	if err != nil {
		return nil, err
	}
	if err := c.commitAdd(ctx, cv, kps); err != nil {
		return nil, err
	}
	return cv, nil
}

// commitAdd adds the devices of kps to the conversation, then tells the
// group (the new members included) its kind and name.
func (c *Client) commitAdd(ctx context.Context, cv *Conversation, kps []claimedKeyPackage) error {
	err := c.commitChange(ctx, cv.ID, func(tx *tx, g *mls.Group) (*commitPlan, error) {
		// Planned on the group as it is now: a commit that lost its epoch
		// to one adding some of the same devices (another of our devices
		// linking or catching up) is planned again without them.
		p := &commitPlan{}
		in := memberDevices(g)
		for _, k := range kps {
			if in[k.device] {
				continue
			}
			p.opts.Add = append(p.opts.Add, k.kp)
			p.added = append(p.added, k.device)
			if !slices.Contains(p.addedUsers, k.user) {
				p.addedUsers = append(p.addedUsers, k.user)
			}
		}
		if len(p.added) == 0 {
			return nil, errNothingToAdd
		}
		return p, nil
	})
	if errors.Is(err, errNothingToAdd) {
		return nil
	}
	if err != nil {
		return err
	}
	_, err = c.sendContent(ctx, cv.ID, &Content{Type: TypeMeta, Meta: &Meta{Kind: cv.Kind, Name: cv.Name}})
	return err
}

// errNothingToAdd ends a commit plan that found every device in already.
var errNothingToAdd = errors.New("client: every device is in the group already")

// memberDevices returns the devices that are members of g.
func memberDevices(g *mls.Group) map[string]bool {
	in := map[string]bool{}
	for _, m := range g.Members() {
		if _, dev, ok := parseCredential(m.Credential); ok {
			in[dev] = true
		}
	}
	return in
}

// AddMembers adds users (all their devices) to a group conversation.
func (c *Client) AddMembers(ctx context.Context, conv string, users ...string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	users, err := c.normalizeUsers(users)
	if err != nil {
		return err
	}
	var cv *Conversation
	var present []string
	err = c.db.view(ctx, func(tx *tx) error {
		if cv, err = tx.conv(conv); err != nil {
			return err
		}
		g, err := tx.group(conv)
		if err != nil || g == nil {
			return errors.Join(err, fmt.Errorf("%w: conversation %s", ErrNotFound, shortID(conv)))
		}
		present = usersOf(g)
		g.Wipe()
		return nil
	})
	if err != nil {
		return err
	}
	if cv.Kind == KindDirect {
		return errors.New("client: cannot add people to a 1:1 chat; create a group")
	}
	for _, u := range users {
		if slices.Contains(present, u) {
			return fmt.Errorf("client: %s is already in %s", u, cv.Title())
		}
	}
	if err := c.flushOutbox(ctx); err != nil {
		return err
	}
	kps, err := c.claim(ctx, users, nil)
	if err != nil {
		return err
	}
	return c.commitAdd(ctx, cv, kps)
}

// RemoveMember removes a user, with all their devices, from a group
// conversation. From the next epoch on they can decrypt nothing.
func (c *Client) RemoveMember(ctx context.Context, conv, user string) error {
	user, err := NormalizeUsername(user)
	if err != nil {
		return err
	}
	a, err := c.account()
	if err != nil {
		return err
	}
	if user == a.Username {
		return errors.New("client: cannot remove yourself (leaving a group is not supported yet)")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.flushOutbox(ctx); err != nil {
		return err
	}
	return c.commitChange(ctx, conv, func(tx *tx, g *mls.Group) (*commitPlan, error) {
		p := &commitPlan{removedUsers: []string{user}}
		for _, m := range g.Members() {
			if u, _, ok := parseCredential(m.Credential); ok && u == user {
				p.opts.Remove = append(p.opts.Remove, m.Index)
			}
		}
		if len(p.opts.Remove) == 0 {
			return nil, fmt.Errorf("client: %s is not in this conversation", user)
		}
		return p, nil
	})
}

// commitPlan is what one commit does.
type commitPlan struct {
	opts         mls.CommitOptions
	added        []string // device ids, who get the Welcome
	addedUsers   []string
	removedUsers []string
}

// maxCommitAttempts bounds the retries of a commit that loses its epoch
// to another member's commit.
const maxCommitAttempts = 5

// errEpochConflict is returned by deliver when another commit won.
var errEpochConflict = errors.New("client: another commit won the epoch")

// commitChange makes, sends and merges one commit. plan says what it
// does, from the group as it stands: when another commit wins the epoch,
// commitChange catches up with the group and plans again.
func (c *Client) commitChange(ctx context.Context, conv string, plan func(*tx, *mls.Group) (*commitPlan, error)) error {
	for range maxCommitAttempts {
		var key string
		var ob *outboxRecord
		err := c.db.update(ctx, func(tx *tx) error {
			g, err := tx.group(conv)
			if err != nil {
				return err
			}
			if g == nil || !g.Active() {
				return fmt.Errorf("%w: conversation %s (or this device is no longer in it)", ErrNotFound, shortID(conv))
			}
			defer g.Wipe()
			p, err := plan(tx, g)
			if err != nil {
				return err
			}
			p.opts.InlineTree, p.opts.SkipCached = true, true
			epoch, before := g.Epoch(), g.Members()
			res, err := g.Commit(p.opts)
			if err != nil {
				return fmt.Errorf("client: commit: %w", err)
			}
			payload, err := res.Commit.Marshal()
			if err != nil {
				return err
			}
			var roster []string
			for _, m := range before {
				_, dev, ok := parseCredential(m.Credential)
				if ok && !slices.ContainsFunc(res.Staged.Removed, func(r mls.RemovedMember) bool { return r.Index == m.Index }) {
					roster = append(roster, dev)
				}
			}
			roster = append(roster, p.added...)
			slices.Sort(roster)
			ob = &outboxRecord{Group: conv, Commit: true, Added: p.addedUsers, Removed: p.removedUsers, Send: proto.Send{
				ClientMsgID: NewMessageID(), Kind: proto.KindCommit, Epoch: epoch, Payload: payload, Roster: slices.Compact(roster),
			}}
			if res.Welcome != nil {
				w, err := res.Welcome.Marshal()
				if err != nil {
					return err
				}
				ob.Send.Welcomes = []proto.Welcome{{DeviceIDs: p.added, Payload: w}}
			}
			// The group is saved with its commit pending, and the commit
			// queued, before it is sent: after a crash, the resend tells
			// whether it won.
			if err := tx.putGroup(conv, g); err != nil {
				return err
			}
			key, err = tx.queue(ob)
			return err
		})
		if err != nil {
			return err
		}
		err = c.deliver(ctx, key, ob)
		if !errors.Is(err, errEpochConflict) {
			return err
		}
		c.log.Info("commit lost its epoch; catching up", "conversation", conv)
		if err := c.syncLocked(ctx); err != nil {
			return err
		}
	}
	return fmt.Errorf("client: conversation %s: gave up after %d conflicting commits", shortID(conv), maxCommitAttempts)
}
