package calls

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media/oggwriter"

	"github.com/hush-chat/hush/client/call"
	"github.com/hush-chat/hush/mls"
	"github.com/hush-chat/hush/proto"
	"github.com/hush-chat/hush/sframe"
)

// harness runs an SFU and participants with real PeerConnections on
// loopback, real MLS groups and real SFrame keys. Signalling goes through
// Session values, as the server's WebSocket handler passes it.
type harness struct {
	t      testing.TB
	sfu    *SFU
	group  []byte
	callID string

	mu        sync.Mutex
	forwarded []Forwarded // copies of every payload the SFU forwarded
	kidShapes []kidShape  // the (epoch, tree size) pairs keys were made for
}

type kidShape struct {
	epoch uint64
	size  uint32
}

func newHarness(t testing.TB, opts Options) *harness {
	h := &harness{t: t, group: []byte("group-1"), callID: "call-1"}
	opts.LoopbackOnly = true
	opts.TestHookForward = func(f Forwarded) {
		f.Payload = bytes.Clone(f.Payload)
		h.mu.Lock()
		h.forwarded = append(h.forwarded, f)
		h.mu.Unlock()
	}
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	h.sfu = s
	t.Cleanup(func() { s.Close() })
	return h
}

// participant is one device in a call.
type participant struct {
	h      *harness
	name   string
	group  *mls.Group
	keys   *call.Keys
	call   *call.Call
	sess   *Session
	inbox  chan *proto.Call
	joined time.Time

	mu      sync.Mutex
	remotes map[string]*call.Remote // by device and kind
}

// newMembers makes an MLS group of n members and a participant for each.
func (h *harness) newMembers(n int) []*participant {
	h.t.Helper()
	cs := mls.DefaultCipherSuite
	sig := func() *mls.SignatureKey {
		k, err := mls.GenerateSignatureKey(cs)
		if err != nil {
			h.t.Fatal(err)
		}
		return k
	}
	g0, err := mls.CreateGroup(sig(), mls.BasicCredential([]byte("dev0")), mls.CreateGroupOptions{GroupID: h.group})
	if err != nil {
		h.t.Fatal(err)
	}
	groups := []*mls.Group{g0}
	if n > 1 {
		var kps []*mls.KeyPackagePrivate
		var pubs []*mls.KeyPackage
		for i := 1; i < n; i++ {
			kp, err := mls.NewKeyPackage(sig(), mls.KeyPackageOptions{Credential: mls.BasicCredential(fmt.Appendf(nil, "dev%d", i))})
			if err != nil {
				h.t.Fatal(err)
			}
			kps, pubs = append(kps, kp), append(pubs, kp.KeyPackage)
		}
		res, err := g0.Commit(mls.CommitOptions{Add: pubs})
		if err != nil {
			h.t.Fatal(err)
		}
		if err := g0.MergePendingCommit(); err != nil {
			h.t.Fatal(err)
		}
		for _, kp := range kps {
			g, err := mls.Join(res.Welcome.Welcome, kp, mls.JoinOptions{RatchetTree: g0.RatchetTree()})
			if err != nil {
				h.t.Fatal(err)
			}
			groups = append(groups, g)
		}
	}
	ps := make([]*participant, n)
	for i, g := range groups {
		keys, err := call.NewKeys(g)
		if err != nil {
			h.t.Fatal(err)
		}
		h.t.Cleanup(keys.Close)
		ps[i] = &participant{h: h, name: fmt.Sprintf("dev%d", i), group: g, keys: keys, remotes: make(map[string]*call.Remote)}
	}
	h.noteEpoch(g0)
	return ps
}

func (h *harness) noteEpoch(g *mls.Group) {
	ms := g.Members()
	h.mu.Lock()
	h.kidShapes = append(h.kidShapes, kidShape{g.Epoch(), ms[len(ms)-1].Index + 1})
	h.mu.Unlock()
}

// remove has members[0] commit the removal of gone; every other member
// processes the commit and, unless it is gone, moves its keys on.
func (h *harness) remove(members []*participant, gone *participant) {
	h.t.Helper()
	res, err := members[0].group.Commit(mls.CommitOptions{Remove: []uint32{gone.group.Index()}})
	if err != nil {
		h.t.Fatal(err)
	}
	data, err := res.Commit.Marshal()
	if err != nil {
		h.t.Fatal(err)
	}
	if err := members[0].group.MergePendingCommit(); err != nil {
		h.t.Fatal(err)
	}
	h.noteEpoch(members[0].group)
	for _, p := range members[1:] {
		m, err := mls.UnmarshalMLSMessage(data)
		if err != nil {
			h.t.Fatal(err)
		}
		ev, err := p.group.Process(m)
		if err != nil {
			h.t.Fatal(err)
		}
		if err := p.group.Merge(ev.(*mls.StagedCommit)); err != nil {
			h.t.Fatal(err)
		}
	}
	for _, p := range members {
		if p == gone {
			if err := p.keys.Update(p.group); err != call.ErrNotMember {
				h.t.Fatalf("removed member's keys: %v", err)
			}
			continue
		}
		if err := p.keys.Update(p.group); err != nil {
			h.t.Fatal(err)
		}
	}
}

// join puts p in the call. onRemote, if set, is called for each stream p
// receives, after p records it in p.remotes.
func (p *participant) join(ctx context.Context, onRemote func(*call.Remote)) {
	p.h.t.Helper()
	p.inbox = make(chan *proto.Call, 64)
	p.sess = p.h.sfu.Connect(p.name, func(c *proto.Call) { p.inbox <- c })
	p.joined = time.Now()
	c, err := call.Join(ctx, call.Config{
		GroupID:      p.h.group,
		CallID:       p.h.callID,
		Keys:         p.keys,
		LoopbackOnly: true,
		Signal:       func(ctx context.Context, c *proto.Call) error { return p.sess.Handle(ctx, c) },
		OnRemote: func(r *call.Remote) {
			p.mu.Lock()
			p.remotes[r.Device+"/"+r.Kind.String()] = r
			p.mu.Unlock()
			if onRemote != nil {
				onRemote(r)
			}
		},
	})
	if err != nil {
		p.h.t.Fatal(err)
	}
	p.call = c
	go func() {
		for f := range p.inbox {
			if err := c.Handle(ctx, f); err != nil && ctx.Err() == nil && !errors.Is(err, call.ErrEnded) {
				p.h.t.Errorf("%s: handle %s: %v", p.name, f.Op, err)
			}
		}
	}()
	p.h.t.Cleanup(func() { c.Leave(context.Background()) })
}

// waitFrames waits until p has decrypted n frames of a remote stream, or
// ctx ends.
func (p *participant) waitFrames(ctx context.Context, stream string, n int) {
	for ctx.Err() == nil {
		p.mu.Lock()
		r := p.remotes[stream]
		p.mu.Unlock()
		if r != nil && r.Stats().Frames >= uint64(n) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (p *participant) remoteCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.remotes)
}

// settle waits until every participant is connected, receives both
// streams of every other, and has answered the SFU's last offer, so that
// every frame sent from then on reaches everyone.
func (h *harness) settle(ps []*participant) {
	h.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		ok := true
		for _, p := range ps {
			select {
			case <-p.call.Connected():
			default:
				ok = false
			}
			if p.remoteCount() != 2*(len(ps)-1) {
				ok = false
			}
		}
		if ok && h.sfuSettled(len(ps)) {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatal("the call did not settle")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// sfuSettled reports whether the room has n peers, each with its two
// tracks forwarded and no offer awaiting an answer.
func (h *harness) sfuSettled(n int) bool {
	h.sfu.mu.Lock()
	r := h.sfu.rooms[roomKey{string(h.group), h.callID}]
	h.sfu.mu.Unlock()
	if r == nil {
		return false
	}
	r.mu.Lock()
	peers := make([]*peer, 0, len(r.members))
	for _, p := range r.members {
		peers = append(peers, p)
	}
	nf := len(r.forwarders)
	r.mu.Unlock()
	if len(peers) != n || nf != 2*n {
		return false
	}
	for _, p := range peers {
		p.sigMu.Lock()
		busy := p.offerOut || p.again
		p.sigMu.Unlock()
		if busy {
			return false
		}
	}
	return true
}

// media is one participant's generated media: the frames and the files
// that hold them.
type media struct {
	audio, video       [][]byte
	audioFile, ivfFile []byte
}

// opusTOC is the TOC byte of a 20 ms CELT fullband mono Opus packet with
// one frame.
const opusTOC = 0xf8

// newMedia generates d of synthetic audio (20 ms Opus packets) and video
// (VP8 frames at 30 fps, a keyframe each second, keyframes spanning
// several RTP packets). The bytes are random behind valid container
// framing and frame headers: they need not decode.
func newMedia(t testing.TB, seed uint64, d time.Duration) *media {
	rng := rand.New(rand.NewPCG(seed, 1))
	fill := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	m := &media{}
	var ogg bytes.Buffer
	w, err := oggwriter.NewWith(&ogg, 48000, 1)
	if err != nil {
		t.Fatal(err)
	}
	for range int(d / (20 * time.Millisecond)) {
		f := fill(40 + rng.IntN(120))
		f[0] = opusTOC
		m.audio = append(m.audio, f)
		if err := w.WriteRTP(&rtp.Packet{Payload: f}); err != nil {
			t.Fatal(err)
		}
	}
	m.audioFile = ogg.Bytes()

	var ivf bytes.Buffer
	v, err := call.NewIVFWriter(&ivf, call.IVFHeader{FourCC: "VP80", Width: 320, Height: 240, Numerator: 1, Denominator: 30})
	if err != nil {
		t.Fatal(err)
	}
	for i := range int(d * 30 / time.Second) {
		var f []byte
		if i%30 == 0 {
			f = fill(6000 + rng.IntN(3000))
			f[0] &^= 1 // keyframe
			copy(f[3:], []byte{0x9d, 0x01, 0x2a, 320 & 0xff, 320 >> 8, 240, 0})
		} else {
			f = fill(200 + rng.IntN(1200))
			f[0] |= 1
		}
		m.video = append(m.video, f)
		if err := v.WriteFrame(f, uint64(i)); err != nil {
			t.Fatal(err)
		}
	}
	m.ivfFile = ivf.Bytes()
	return m
}

// readRecording returns the frames of a recorded file.
func readRecording(t testing.TB, name string) [][]byte {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out [][]byte
	if filepath.Ext(name) == ".ivf" {
		v, err := call.NewIVFReader(f)
		if err != nil {
			t.Fatal(err)
		}
		for {
			fr, _, err := v.ReadFrame()
			if err != nil {
				break
			}
			out = append(out, fr)
		}
		return out
	}
	o, err := call.NewOpusReader(f)
	if err != nil {
		t.Fatal(err)
	}
	for {
		p, err := o.ReadPacket()
		if err != nil {
			break
		}
		out = append(out, p)
	}
	return out
}

// checkCiphertext checks what the SFU saw: every payload carries SFrame
// ciphertext in the codec's payload format, each frame starting with an
// SFrame header under a KID of a member, and no run of plaintext from any
// sent frame appears in any payload.
func (h *harness) checkCiphertext(sent []*media) {
	h.t.Helper()
	const window = 16
	plain := make(map[[window]byte]bool)
	for _, m := range sent {
		for _, f := range append(append([][]byte(nil), m.audio...), m.video...) {
			for i := 0; i+window <= len(f); i += 32 {
				plain[[window]byte(f[i:])] = true
			}
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.forwarded) == 0 {
		h.t.Fatal("the SFU forwarded nothing")
	}
	for _, f := range h.forwarded {
		// Audio: the payload is the SFrame ciphertext. Video: the RFC 7741
		// descriptor in the clear, then a fragment of the ciphertext; a
		// frame's first packet (S = 1, PID = 0) starts with its header.
		ct := f.Payload
		if f.Kind == webrtc.RTPCodecTypeVideo {
			var vp codecs.VP8Packet
			var err error
			if ct, err = vp.Unmarshal(f.Payload); err != nil {
				h.t.Fatalf("video payload from %s without a VP8 descriptor: %v", f.From, err)
			}
			if vp.S == 0 || vp.PID != 0 {
				ct = nil
			}
		}
		if ct != nil {
			hdr, _, err := sframe.ParseHeader(ct)
			if err != nil {
				h.t.Fatalf("frame from %s without an SFrame header: %v", f.From, err)
			}
			if !h.knownKID(hdr.KID) {
				h.t.Fatalf("frame from %s under unknown KID %#x", f.From, hdr.KID)
			}
		}
		for i := 0; i+window <= len(f.Payload); i++ {
			if plain[[window]byte(f.Payload[i:])] {
				h.t.Fatalf("plaintext in a payload from %s", f.From)
			}
		}
	}
}

// knownKID reports whether kid is a KID some member sends under: its
// epoch bits, leaf index and context (0 audio, 1 video) fit one of the
// epochs of the call.
func (h *harness) knownKID(kid uint64) bool {
	const e = sframe.DefaultEpochBits
	for _, s := range h.kidShapes {
		ib := uint(bits.Len32(s.size - 1))
		if kid&(1<<e-1) == s.epoch%(1<<e) && (kid>>e)&(1<<ib-1) < uint64(s.size) && kid>>(ib+e) <= 1 {
			return true
		}
	}
	return false
}

func kindOf(name string) webrtc.RTPCodecType {
	if filepath.Ext(name) == ".ivf" {
		return webrtc.RTPCodecTypeVideo
	}
	return webrtc.RTPCodecTypeAudio
}
