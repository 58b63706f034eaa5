package loadgen

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/errgroup"

	"github.com/hush-chat/hush/mls"
	"github.com/hush-chat/hush/proto"
)

// PayloadSize is the size the generated MLS application messages aim at:
// a short text message of a real client (content, padding, signature and
// framing) is about this big.
const PayloadSize = 350

// poolSize is how many distinct pre-encrypted messages a group's senders
// cycle through.
const poolSize = 256

// RegisterMany registers n devices, device i on servers[i%len(servers)],
// with up to conc registrations at once.
func RegisterMany(ctx context.Context, hc *http.Client, servers []string, n, conc int) ([]*Device, error) {
	devs := make([]*Device, n)
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(max(conc, 1))
	for i := range devs {
		g.Go(func() error {
			d, err := Register(ctx, hc, servers[i%len(servers)])
			devs[i] = d
			return err
		})
	}
	return devs, g.Wait()
}

// Member is a device of a Group and, with real MLS work, its group state.
type Member struct {
	Dev *Device
	mu  sync.Mutex
	g   *mls.Group
}

// Group is a conversation on the server, at epoch 1, whose roster holds
// all its members.
type Group struct {
	ID      []byte
	Epoch   uint64
	Members []*Member
	realMLS bool
	text    []byte   // plaintext of the generated messages
	pool    [][]byte // pre-encrypted application messages, without realMLS
	next    atomic.Uint64
	// DecryptErrors counts pushed messages a member failed to decrypt
	// (real MLS work only).
	DecryptErrors atomic.Int64
}

// NewGroup makes an MLS group of the devices, with devs[0] creating it,
// and registers it on the server: one commit (epoch 0 → 1) whose roster
// lists every device. With realMLS every device gets its own group state
// (the commit adds them from KeyPackages, and they join from its Welcome),
// so that messages are encrypted by their sender and decrypted by each
// receiver; without, devs[0]'s group encrypts poolSize messages up front,
// which every sender replays.
func NewGroup(ctx context.Context, devs []*Device, realMLS bool) (*Group, error) {
	suite := mls.DefaultCipherSuite
	creatorKey, err := mls.GenerateSignatureKey(suite)
	if err != nil {
		return nil, err
	}
	gid := randomBytes(32)
	cg, err := mls.CreateGroup(creatorKey, mls.BasicCredential([]byte(devs[0].DeviceID)), mls.CreateGroupOptions{GroupID: gid})
	if err != nil {
		return nil, err
	}
	g := &Group{ID: gid, Epoch: 1, realMLS: realMLS}
	g.Members = append(g.Members, &Member{Dev: devs[0], g: cg})
	var kps []*mls.KeyPackage
	var privs []*mls.KeyPackagePrivate
	if realMLS {
		for _, d := range devs[1:] {
			key, err := mls.GenerateSignatureKey(suite)
			if err != nil {
				return nil, err
			}
			kp, err := mls.NewKeyPackage(key, mls.KeyPackageOptions{Credential: mls.BasicCredential([]byte(d.DeviceID))})
			if err != nil {
				return nil, err
			}
			kps, privs = append(kps, kp.KeyPackage), append(privs, kp)
		}
	}
	res, err := cg.Commit(mls.CommitOptions{Add: kps, ForcePath: len(kps) == 0, InlineTree: true})
	if err != nil {
		return nil, err
	}
	commit, err := res.Commit.Marshal()
	if err != nil {
		return nil, err
	}
	send := proto.Send{ClientMsgID: "setup", Kind: proto.KindCommit, Epoch: 0, Payload: commit}
	for _, d := range devs {
		send.Roster = append(send.Roster, d.DeviceID)
	}
	if res.Welcome != nil {
		w, err := res.Welcome.Marshal()
		if err != nil {
			return nil, err
		}
		send.Welcomes = []proto.Welcome{{DeviceIDs: send.Roster[1:], Payload: w}}
	}
	if err := devs[0].Call(ctx, "POST", proto.PathGroups, proto.CreateGroup{GroupID: gid}, nil); err != nil {
		return nil, fmt.Errorf("create group: %w", err)
	}
	if err := devs[0].Call(ctx, "POST", GroupPath(gid), send, nil); err != nil {
		return nil, fmt.Errorf("group commit: %w", err)
	}
	if err := cg.MergePendingCommit(); err != nil {
		return nil, err
	}
	for i, d := range devs[1:] {
		m := &Member{Dev: d}
		if realMLS {
			if m.g, err = mls.Join(res.Welcome.Welcome, privs[i], mls.JoinOptions{}); err != nil {
				return nil, fmt.Errorf("join: %w", err)
			}
		}
		g.Members = append(g.Members, m)
	}
	// Size the plaintext so that the ciphertext is about PayloadSize.
	probe, err := encrypt(cg, make([]byte, 100))
	if err != nil {
		return nil, err
	}
	g.text = []byte(strings.Repeat("x", max(1, PayloadSize-(len(probe)-100))))
	if !realMLS {
		for range poolSize {
			p, err := encrypt(cg, g.text)
			if err != nil {
				return nil, err
			}
			g.pool = append(g.pool, p)
		}
	}
	return g, nil
}

func encrypt(g *mls.Group, text []byte) ([]byte, error) {
	m, err := g.Encrypt(text, nil)
	if err != nil {
		return nil, err
	}
	return m.Marshal()
}

// Payload returns the next application message from m: encrypted now by
// m's group state with real MLS work, else the next pre-encrypted one.
func (g *Group) Payload(m *Member) ([]byte, error) {
	if !g.realMLS {
		return g.pool[g.next.Add(1)%uint64(len(g.pool))], nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return encrypt(m.g, g.text)
}

// Receive does a receiver's MLS work on a pushed message (nothing without
// real MLS work).
func (g *Group) Receive(m *Member, env *proto.Envelope) {
	if !g.realMLS || env.Inbox || env.Kind != proto.KindApplication {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	msg, err := mls.UnmarshalMLSMessage(env.Payload)
	if err == nil {
		var ev mls.Event
		ev, err = m.g.Process(msg)
		if _, ok := ev.(*mls.ApplicationMessage); err == nil && !ok {
			err = errors.New("not an application message")
		}
	}
	if err != nil {
		g.DecryptErrors.Add(1)
	}
}

// PayloadLen is the size of the group's application messages.
func (g *Group) PayloadLen() int {
	if len(g.pool) > 0 {
		return len(g.pool[0])
	}
	return PayloadSize
}
