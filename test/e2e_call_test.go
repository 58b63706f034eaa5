package test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media/oggwriter"

	hush "github.com/hush-chat/hush/client"
	"github.com/hush-chat/hush/client/call"
	"github.com/hush-chat/hush/proto"
	"github.com/hush-chat/hush/server"
	"github.com/hush-chat/hush/server/calls"
	"github.com/hush-chat/hush/server/cluster"
	"github.com/hush-chat/hush/sframe"
)

// Calls end to end: real clients (package client and client/call) in a
// real server's SFU, on loopback. Every frame carries a plaintext marker,
// so that the SFU's view of the payloads (calls.Options.TestHookForward)
// can be searched for plaintext.

// plainMarker starts every test frame's plaintext (after an Opus TOC
// byte for audio).
var plainMarker = []byte("HUSH-PLAINTEXT-MARKER")

// forwardWatch checks every payload the SFU forwards: no plaintext
// marker, and each frame's first packet starts with an SFrame header.
// It keeps the audio payloads (whole SFrame frames) for later checks.
type forwardWatch struct {
	packets, plaintext, noHeader atomic.Int64

	mu    sync.Mutex
	audio [][]byte
}

func (w *forwardWatch) hook(f calls.Forwarded) {
	w.packets.Add(1)
	if bytes.Contains(f.Payload, plainMarker) {
		w.plaintext.Add(1)
	}
	ct := f.Payload
	if f.Kind == webrtc.RTPCodecTypeVideo {
		var vp codecs.VP8Packet
		var err error
		if ct, err = vp.Unmarshal(f.Payload); err != nil {
			w.noHeader.Add(1)
			return
		}
		if vp.S == 0 || vp.PID != 0 {
			return // a frame's later packet: ciphertext without a header
		}
	}
	if _, _, err := sframe.ParseHeader(ct); err != nil {
		w.noHeader.Add(1)
		return
	}
	if f.Kind == webrtc.RTPCodecTypeAudio {
		w.mu.Lock()
		if len(w.audio) < 20000 {
			w.audio = append(w.audio, bytes.Clone(f.Payload))
		}
		w.mu.Unlock()
	}
}

func (w *forwardWatch) check(t *testing.T) {
	t.Helper()
	if w.packets.Load() == 0 {
		t.Error("the SFU forwarded nothing")
	}
	if n := w.plaintext.Load(); n > 0 {
		t.Errorf("%d forwarded payloads hold plaintext", n)
	}
	if n := w.noHeader.Load(); n > 0 {
		t.Errorf("%d forwarded frames do not start with an SFrame header", n)
	}
}

func startCallServer(t *testing.T) (*e2eServer, *forwardWatch) {
	w := &forwardWatch{}
	return startE2E(t, func(o *server.Options) { o.Calls.TestHookForward = w.hook }), w
}

// callPeer is one device in a call, with what it received.
type callPeer struct {
	*e2eDevice
	name string
	s    *call.Session

	mu      sync.Mutex
	remotes []*call.Remote
	got     map[string][]gotFrame // by device "/" kind
	joined  time.Time
	first   map[string]time.Time // first frame from each device
	warm    map[string]int       // warm-up frames received, by device "/" kind
}

// warmMarker marks the frames of warmUp, which read counts apart.
var warmMarker = []byte("HUSH-WARMUP")

// warmUp has every peer send warm-up frames until each receives audio
// and video from every other: from then on every forwarding path is
// live, and no frame sent is lost to a subscription being set up.
func warmUp(t *testing.T, peers []*callPeer) {
	t.Helper()
	defer sendWarmFrames(peers)()
	for _, q := range peers {
		for _, p := range peers {
			if p == q {
				continue
			}
			id := p.deviceID(t)
			waitUntil(t, 20*time.Second, q.name+"'s warm-up from "+p.name, func() bool {
				q.mu.Lock()
				defer q.mu.Unlock()
				return q.warm[id+"/audio"] > 0 && q.warm[id+"/video"] > 0
			})
		}
	}
}

// sendWarmFrames has every peer send a warm-up audio and video frame
// every 20 ms until the returned function is called.
func sendWarmFrames(peers []*callPeer) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	for _, p := range peers {
		wg.Go(func() {
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				case <-tick.C:
				}
				f := append([]byte{0xf8}, warmMarker...)
				p.s.Audio().WriteFrame(f, uint32(i*960))
				p.s.Video().WriteFrame(f[1:], uint32(i*1800))
			}
		})
	}
	return func() { close(done); wg.Wait() }
}

type gotFrame struct {
	data []byte
	at   time.Time
}

// online runs the device's push connection until the test ends.
func online(t *testing.T, d *e2eDevice) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); d.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	waitUntil(t, 10*time.Second, "push connection", d.Online)
}

// waitUntil polls cond until it holds, failing the test after limit.
func waitUntil(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// join places or joins the conversation's call and reads every remote
// stream into p.got.
func (p *callPeer) join(t *testing.T, conv string) {
	t.Helper()
	p.got = map[string][]gotFrame{}
	p.first = map[string]time.Time{}
	p.joined = time.Now()
	s, err := call.Start(context.Background(), p.Client, conv, call.SessionOptions{
		LoopbackOnly: true,
		Logger:       slog.New(slog.NewTextHandler(testWriter{t, p.name}, &slog.HandlerOptions{Level: slog.LevelWarn})),
		OnRemote: func(r *call.Remote) {
			p.mu.Lock()
			p.remotes = append(p.remotes, r)
			p.mu.Unlock()
			go p.read(r)
		},
	})
	if err != nil {
		t.Fatalf("%s: %v", p.name, err)
	}
	p.s = s
	t.Cleanup(func() { s.Leave(context.Background()) })
}

// testWriter logs a peer's call warnings in the test's log.
type testWriter struct {
	t    *testing.T
	name string
}

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s: %s", w.name, bytes.TrimSpace(p))
	return len(p), nil
}

// joinInvited waits for the invitation to the call that caller placed
// (an MLS message), then joins that call.
func (p *callPeer) joinInvited(t *testing.T, conv string, caller *callPeer) {
	t.Helper()
	waitUntil(t, 10*time.Second, p.name+"'s invitation", func() bool {
		for _, e := range p.eventsOf(hush.EventCall) {
			if e.Text == string(hush.CallInvite) && e.CallID == caller.s.ID() && e.User == caller.name {
				return true
			}
		}
		return false
	})
	p.join(t, conv)
	if p.s.ID() != caller.s.ID() {
		t.Fatalf("%s joined call %s, not %s's", p.name, p.s.ID(), caller.name)
	}
}

func (p *callPeer) read(r *call.Remote) {
	key := r.Device + "/" + r.Kind.String()
	for {
		f, err := r.ReadFrame()
		if err != nil {
			return
		}
		now := time.Now()
		p.mu.Lock()
		if bytes.Contains(f.Data, warmMarker) {
			if p.warm == nil {
				p.warm = map[string]int{}
			}
			p.warm[key]++
			p.mu.Unlock()
			continue
		}
		p.got[key] = append(p.got[key], gotFrame{data: f.Data, at: now})
		if _, ok := p.first[r.Device]; !ok {
			p.first[r.Device] = now
		}
		p.mu.Unlock()
	}
}

func (p *callPeer) remoteCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.remotes)
}

func (p *callPeer) frames(device, kind string) []gotFrame {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.got[device+"/"+kind])
}

func (p *callPeer) deviceID(t *testing.T) string {
	id, err := p.DeviceID()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// testFrame makes frame i of a stream: the marker, the sender's epoch,
// the index, and random bytes; audio starts with an Opus TOC byte (CELT,
// 20 ms, one frame), video is large enough for several packets.
func testFrame(rng *rand.Rand, video bool, epoch uint64, i int) []byte {
	size := 40 + rng.IntN(120)
	var f []byte
	if video {
		size = 1500 + rng.IntN(2500)
	} else {
		f = append(f, 0xf8)
	}
	f = append(f, plainMarker...)
	f = binary.BigEndian.AppendUint64(f, epoch)
	f = binary.BigEndian.AppendUint32(f, uint32(i))
	for len(f) < size {
		f = append(f, byte(rng.Uint32()))
	}
	return f
}

// frameEpoch returns the epoch a test frame was sent under (as its
// sender's keys said just before encrypting it).
func frameEpoch(f []byte) uint64 {
	off := bytes.Index(f, plainMarker) + len(plainMarker)
	return binary.BigEndian.Uint64(f[off:])
}

// streamer sends a peer's audio every 20 ms and video every 100 ms.
type streamer struct {
	mu    sync.Mutex
	audio [][]byte
	video [][]byte
	stop  chan struct{}
	done  chan struct{}
}

// stream sends ticks frames of audio (and one video frame every fifth),
// or until stop when ticks is negative.
func stream(p *callPeer, seed uint64, ticks int) *streamer {
	st := &streamer{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(st.done)
		rng := rand.New(rand.NewPCG(seed, 1))
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ticks < 0 || i < ticks; i++ {
			select {
			case <-st.stop:
				return
			case <-tick.C:
			}
			epoch := p.s.Keys().Epoch()
			a := testFrame(rng, false, epoch, i)
			if p.s.Audio().WriteFrame(a, uint32(i*960)) != nil {
				return
			}
			st.mu.Lock()
			st.audio = append(st.audio, a)
			st.mu.Unlock()
			if i%5 == 0 {
				v := testFrame(rng, true, epoch, i)
				if p.s.Video().WriteFrame(v, uint32(i*1800)) != nil {
					return
				}
				st.mu.Lock()
				st.video = append(st.video, v)
				st.mu.Unlock()
			}
		}
	}()
	return st
}

func (st *streamer) halt() {
	close(st.stop)
	<-st.done
}

func (st *streamer) sent(kind string) [][]byte {
	st.mu.Lock()
	defer st.mu.Unlock()
	if kind == "video" {
		return slices.Clone(st.video)
	}
	return slices.Clone(st.audio)
}

// callGroup registers n users, puts them in one group conversation, and
// brings each online.
func callGroup(t *testing.T, s *e2eServer, names ...string) ([]*callPeer, string) {
	t.Helper()
	var peers []*callPeer
	for _, n := range names {
		peers = append(peers, &callPeer{e2eDevice: s.register(t, n), name: n})
	}
	cv := peers[0].newGroup("call", names[1:]...)
	for _, p := range peers {
		p.sync()
		online(t, p.e2eDevice)
	}
	return peers, cv.ID
}

// waitConnected waits until every peer's call is connected and receives
// the audio and video of every other peer.
func waitConnected(t *testing.T, peers []*callPeer) {
	t.Helper()
	for _, p := range peers {
		select {
		case <-p.s.Connected():
		case <-time.After(20 * time.Second):
			t.Fatalf("%s: the call did not connect", p.name)
		}
		waitUntil(t, 20*time.Second, p.name+"'s remote streams", func() bool { return p.remoteCount() >= 2*(len(peers)-1) })
	}
}

// TestCallGroup runs a 4-person group call through the real server:
// every participant receives every other participant's audio and video
// frames byte for byte, and the SFU saw only SFrame ciphertext.
func TestCallGroup(t *testing.T) {
	s, watch := startCallServer(t)
	peers, conv := callGroup(t, s, "alice", "bob", "carol", "dave")

	peers[0].join(t, conv)
	if !peers[0].s.Started {
		t.Fatal("alice's call did not start a new call")
	}
	for _, p := range peers[1:] {
		p.joinInvited(t, conv, peers[0])
	}
	waitConnected(t, peers)
	warmUp(t, peers)

	const ticks = 60 // 1.2 s of audio, 12 video frames, per participant
	var sts []*streamer
	for i, p := range peers {
		sts = append(sts, stream(p, uint64(i+1), ticks))
	}
	for _, st := range sts {
		<-st.done
	}
	for i, p := range peers {
		want := map[string][][]byte{"audio": sts[i].sent("audio"), "video": sts[i].sent("video")}
		if len(want["audio"]) != ticks {
			t.Fatalf("%s sent %d audio frames of %d", p.name, len(want["audio"]), ticks)
		}
		id := p.deviceID(t)
		for _, q := range peers {
			if q == p {
				continue
			}
			for kind, frames := range want {
				waitUntil(t, 10*time.Second, fmt.Sprintf("%s's %s from %s", q.name, kind, p.name), func() bool {
					return len(q.frames(id, kind)) >= len(frames)
				})
				got := q.frames(id, kind)
				if len(got) != len(frames) {
					t.Fatalf("%s got %d %s frames from %s, sent %d", q.name, len(got), kind, p.name, len(frames))
				}
				for j := range got {
					if !bytes.Equal(got[j].data, frames[j]) {
						t.Fatalf("%s's %s frame %d from %s differs from what was sent", q.name, kind, j, p.name)
					}
				}
			}
		}
	}
	watch.check(t)
	// Without the group's keys nothing opens: keys of another group (the
	// same device, alice's, with another epoch secret) fail on every
	// forwarded audio frame.
	other := peers[0].newGroup("other", "bob")
	g, err := peers[0].MLSGroup(context.Background(), other.ID)
	if err != nil {
		t.Fatal(err)
	}
	outsider, err := call.NewKeys(g)
	g.Wipe()
	if err != nil {
		t.Fatal(err)
	}
	defer outsider.Close()
	watch.mu.Lock()
	forwarded := slices.Clone(watch.audio)
	watch.mu.Unlock()
	if len(forwarded) < ticks {
		t.Fatalf("the SFU forwarded %d audio frames", len(forwarded))
	}
	for _, ct := range forwarded {
		if _, err := outsider.Open(nil, ct); err == nil {
			t.Fatal("a forwarded frame opens without the group's keys")
		}
	}

	// Hanging up is signalled to the members, and the call ends when the
	// last one leaves.
	for _, p := range peers {
		if err := p.s.Leave(context.Background()); err != nil {
			t.Fatalf("%s: leave: %v", p.name, err)
		}
	}
	waitUntil(t, 10*time.Second, "the SFU's room to close", func() bool { return s.Calls().Rooms() == 0 })
	waitUntil(t, 10*time.Second, "alice to see the call over", func() bool {
		_, ok, err := peers[0].CurrentCall(context.Background(), conv)
		return err == nil && !ok
	})
}

// TestCallLateJoinAndRemoval: a late joiner receives every other
// participant within 1 s; a member removed mid-call stops decrypting
// after the rekey, and the others go on with no gap over 1 s.
func TestCallLateJoinAndRemoval(t *testing.T) {
	s, watch := startCallServer(t)
	peers, conv := callGroup(t, s, "alice", "bob", "carol", "dave")
	alice, dave := peers[0], peers[3]
	alice.join(t, conv)
	for _, p := range peers[1:3] {
		p.joinInvited(t, conv, alice)
	}
	waitConnected(t, peers[:3])
	var sts []*streamer
	for i, p := range peers[:3] {
		sts = append(sts, stream(p, uint64(10+i), -1))
	}
	defer func() {
		for _, st := range sts {
			st.halt()
		}
	}()

	// The late joiner.
	dave.joinInvited(t, conv, alice)
	for _, p := range peers[:3] {
		id := p.deviceID(t)
		waitUntil(t, 10*time.Second, "dave's first frame from "+p.name, func() bool {
			dave.mu.Lock()
			defer dave.mu.Unlock()
			_, ok := dave.first[id]
			return ok
		})
		dave.mu.Lock()
		took := dave.first[id].Sub(dave.joined)
		dave.mu.Unlock()
		t.Logf("late joiner: first frame from %s %v after joining", p.name, took)
		if took > time.Second {
			t.Errorf("the late joiner received %s only %v after joining", p.name, took)
		}
	}
	sts = append(sts, stream(dave, 13, -1))
	time.Sleep(500 * time.Millisecond)

	// Remove dave mid-call.
	before := alice.s.Keys().Epoch()
	removed := time.Now()
	if err := alice.RemoveMember(context.Background(), conv, "dave"); err != nil {
		t.Fatal(err)
	}
	newEpoch := before + 1
	for _, p := range peers[:3] {
		waitUntil(t, 10*time.Second, p.name+"'s rekey", func() bool { return p.s.Keys().Epoch() >= newEpoch })
	}
	rekeyed := time.Now()
	t.Logf("removal: every remaining member rekeyed %v after the remove started", rekeyed.Sub(removed))
	// The server does not route the removing commit to dave (he is off
	// the roster), but the SFU evicts him.
	select {
	case <-dave.s.Done():
		t.Logf("dave's call ended: %s", dave.s.Reason())
	case <-time.After(10 * time.Second):
		t.Error("the SFU did not evict dave")
	}
	time.Sleep(1500 * time.Millisecond) // the others talk on
	for _, st := range sts {
		st.halt()
	}
	sts = nil

	// dave decrypted nothing sent under the new epoch.
	for _, p := range peers[:3] {
		for _, f := range dave.frames(p.deviceID(t), "audio") {
			if frameEpoch(f.data) >= newEpoch {
				t.Fatalf("dave decrypted %s's frame of epoch %d after his removal", p.name, frameEpoch(f.data))
			}
		}
	}
	// Nor could he: every audio frame of the new epoch the SFU forwarded
	// fails under dave's keys, and opens under a member's.
	g, err := peers[1].MLSGroup(context.Background(), conv)
	if err != nil {
		t.Fatal(err)
	}
	bobKeys, err := call.NewKeys(g)
	g.Wipe()
	if err != nil {
		t.Fatal(err)
	}
	defer bobKeys.Close()
	watch.mu.Lock()
	audio := slices.Clone(watch.audio)
	watch.mu.Unlock()
	var fresh, opened int
	for _, ct := range audio {
		h, _, err := sframe.ParseHeader(ct)
		if err != nil || h.KID&(1<<sframe.DefaultEpochBits-1) != newEpoch%(1<<sframe.DefaultEpochBits) {
			continue
		}
		fresh++
		if _, err := dave.s.Keys().Open(nil, ct); err == nil {
			t.Fatal("dave's keys open a frame of the epoch after his removal")
		}
		if pt, err := bobKeys.Open(nil, ct); err == nil && bytes.Contains(pt, plainMarker) {
			opened++
		}
	}
	if fresh == 0 || opened == 0 {
		t.Fatalf("of %d forwarded frames of the new epoch, a member opened %d", fresh, opened)
	}

	// The others went on: no gap over 1 s in any stream among them.
	for _, p := range peers[:3] {
		id := p.deviceID(t)
		for _, q := range peers[:3] {
			if q == p {
				continue
			}
			fs := q.frames(id, "audio")
			var gap time.Duration
			var after int
			for j := 1; j < len(fs); j++ {
				if fs[j].at.Before(removed.Add(-time.Second)) {
					continue
				}
				gap = max(gap, fs[j].at.Sub(fs[j-1].at))
				if frameEpoch(fs[j].data) >= newEpoch {
					after++
				}
			}
			t.Logf("%s hears %s: longest gap around the removal %v", q.name, p.name, gap)
			if gap > time.Second {
				t.Errorf("%s's audio from %s stopped for %v around the removal", q.name, p.name, gap)
			}
			if after == 0 {
				t.Errorf("%s received nothing from %s after the rekey", q.name, p.name)
			}
		}
	}
	watch.check(t)
}

// TestCall1to1Files: a 1:1 call through the real server, each side
// publishing an Ogg Opus and an IVF file (call.Publish) and recording the
// other (call.Record): the recordings hold exactly the frames of the
// other side's files.
func TestCall1to1Files(t *testing.T) {
	s, watch := startCallServer(t)
	alice := &callPeer{e2eDevice: s.register(t, "alice"), name: "alice"}
	bob := &callPeer{e2eDevice: s.register(t, "bob"), name: "bob"}
	cv := alice.direct("bob")
	bob.sync()
	online(t, alice.e2eDevice)
	online(t, bob.e2eDevice)

	dir := t.TempDir()
	type files struct {
		ogg, ivf     string
		audio, video [][]byte
		rec          string
		recorded     []string
		recErr       chan error
	}
	make1 := func(name string, seed uint64) *files {
		f := &files{ogg: filepath.Join(dir, name+".ogg"), ivf: filepath.Join(dir, name+".ivf"), rec: filepath.Join(dir, name+"-rec"), recErr: make(chan error, 2)}
		f.audio, f.video = writeMedia(t, f.ogg, f.ivf, seed, 40, 8)
		if err := os.Mkdir(f.rec, 0o700); err != nil {
			t.Fatal(err)
		}
		return f
	}
	fa, fb := make1("alice", 1), make1("bob", 2)
	var recMu sync.Mutex
	start := func(p *callPeer, f *files) {
		s, err := call.Start(context.Background(), p.Client, cv.ID, call.SessionOptions{
			LoopbackOnly: true,
			OnRemote: func(r *call.Remote) {
				p.mu.Lock()
				p.remotes = append(p.remotes, r)
				p.mu.Unlock()
				go func() {
					name, err := call.Record(f.rec, r)
					recMu.Lock()
					f.recorded = append(f.recorded, name)
					recMu.Unlock()
					f.recErr <- err
				}()
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		p.s = s
	}
	start(alice, fa)
	waitUntil(t, 10*time.Second, "bob's invitation", func() bool {
		_, ok, _ := bob.CurrentCall(context.Background(), cv.ID)
		return ok
	})
	start(bob, fb)
	waitConnected(t, []*callPeer{alice, bob})
	warmUpRecorded(t, alice, bob)
	// Once the warm-up's last frames are in, count from there.
	warm := map[*callPeer]uint64{}
	for _, p := range []*callPeer{alice, bob} {
		last := decrypted(p)
		for {
			time.Sleep(100 * time.Millisecond)
			n := decrypted(p)
			if n == last {
				break
			}
			last = n
		}
		warm[p] = last
	}

	publish := func(p *callPeer, f *files) chan error {
		done := make(chan error, 1)
		go func() {
			a, err := os.Open(f.ogg)
			if err != nil {
				done <- err
				return
			}
			defer a.Close()
			v, err := os.Open(f.ivf)
			if err != nil {
				done <- err
				return
			}
			defer v.Close()
			done <- call.Publish(context.Background(), p.s.Call, a, v)
		}()
		return done
	}
	da, db := publish(alice, fa), publish(bob, fb)
	if err := errors.Join(<-da, <-db); err != nil {
		t.Fatal(err)
	}
	// Wait until each side has decrypted everything the other sent, then
	// hang up, which ends the recordings.
	for _, pair := range []struct {
		p *callPeer
		f *files
	}{{alice, fb}, {bob, fa}} {
		waitUntil(t, 10*time.Second, pair.p.name+"'s frames", func() bool {
			return decrypted(pair.p) >= warm[pair.p]+uint64(len(pair.f.audio)+len(pair.f.video))
		})
	}
	for _, p := range []*callPeer{alice, bob} {
		if err := p.s.Leave(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []*files{fa, fb} {
		for range 2 {
			if err := <-f.recErr; err != nil {
				t.Fatal(err)
			}
		}
	}
	check := func(f *files, other *callPeer, of *files) {
		id := other.deviceID(t)
		// The recordings start with the warm-up frames; the files' frames
		// follow, every one.
		audio := dropWarm(readOgg(t, filepath.Join(f.rec, id+".ogg")))
		video := dropWarm(readIVF(t, filepath.Join(f.rec, id+".ivf")))
		if !slices.EqualFunc(audio, of.audio, bytes.Equal) {
			t.Errorf("the recording of %s's audio has %d frames, not the %d sent", other.name, len(audio), len(of.audio))
		}
		if !slices.EqualFunc(video, of.video, bytes.Equal) {
			t.Errorf("the recording of %s's video has %d frames, not the %d sent", other.name, len(video), len(of.video))
		}
	}
	check(fa, bob, fb)
	check(fb, alice, fa)
	watch.check(t)
}

// warmUpRecorded is warmUp for peers whose remote streams go to
// call.Record: it counts the frames decrypted instead.
func warmUpRecorded(t *testing.T, a, b *callPeer) {
	t.Helper()
	defer sendWarmFrames([]*callPeer{a, b})()
	for _, p := range []*callPeer{a, b} {
		waitUntil(t, 20*time.Second, p.name+"'s warm-up", func() bool {
			p.mu.Lock()
			defer p.mu.Unlock()
			n := 0
			for _, r := range p.remotes {
				if r.Stats().Frames > 0 {
					n++
				}
			}
			return n == 2
		})
	}
}

// decrypted counts the frames p decrypted from all its remote streams.
func decrypted(p *callPeer) uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	var n uint64
	for _, r := range p.remotes {
		n += r.Stats().Frames
	}
	return n
}

// dropWarm drops the leading warm-up frames of a recording.
func dropWarm(frames [][]byte) [][]byte {
	for len(frames) > 0 && bytes.Contains(frames[0], warmMarker) {
		frames = frames[1:]
	}
	return frames
}

// writeMedia writes an Ogg Opus file of n 20 ms packets and an IVF (VP8)
// file of m frames at 10 fps, and returns their frames.
func writeMedia(t *testing.T, oggPath, ivfPath string, seed uint64, n, m int) (audio, video [][]byte) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 2))
	ow, err := oggwriter.New(oggPath, 48000, 2)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		f := testFrame(rng, false, 0, i)
		audio = append(audio, f)
		if err := ow.WriteRTP(&rtp.Packet{Header: rtp.Header{Timestamp: uint32(i * 960)}, Payload: f}); err != nil {
			t.Fatal(err)
		}
	}
	if err := ow.Close(); err != nil {
		t.Fatal(err)
	}
	vf, err := os.Create(ivfPath)
	if err != nil {
		t.Fatal(err)
	}
	iw, err := call.NewIVFWriter(vf, call.IVFHeader{FourCC: "VP80", Width: 64, Height: 48, Numerator: 1, Denominator: 10})
	if err != nil {
		t.Fatal(err)
	}
	for i := range m {
		f := testFrame(rng, true, 0, i)
		video = append(video, f)
		if err := iw.WriteFrame(f, uint64(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := errors.Join(iw.Close(), vf.Close()); err != nil {
		t.Fatal(err)
	}
	return audio, video
}

func readOgg(t *testing.T, path string) [][]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := call.NewOpusReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for {
		p, err := r.ReadPacket()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
}

func readIVF(t *testing.T, path string) [][]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := call.NewIVFReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for {
		fr, _, err := r.ReadFrame()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, fr)
	}
}

// TestCallCLI runs `hush call` twice, for alice and bob in their 1:1
// conversation, each publishing files and recording the other, and ends
// both with `hush call --hangup` from other processes.
func TestCallCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the hush binary")
	}
	bin := filepath.Join(t.TempDir(), "hush")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/hush-chat/hush/cmd/hush").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	s := startE2E(t)
	data, media := t.TempDir(), t.TempDir()
	command := func(args ...string) *exec.Cmd {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+data, "HOME="+data)
		return cmd
	}
	run := func(args ...string) string {
		t.Helper()
		out, err := command(args...).CombinedOutput()
		if err != nil {
			t.Fatalf("hush %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	run("register", "--server", s.URL(), "alice")
	run("register", "--server", s.URL(), "--profile", "bob", "bob")
	run("send", "bob", "call me")
	run("read", "--profile", "bob")

	type side struct {
		name, profile, peer string
		audio, video        [][]byte
		rec                 string
		cmd                 *exec.Cmd
		out                 *syncBuffer
	}
	sides := []*side{{name: "alice", profile: "default", peer: "bob"}, {name: "bob", profile: "bob", peer: "alice"}}
	for i, sd := range sides {
		ogg, ivf := filepath.Join(media, sd.name+".ogg"), filepath.Join(media, sd.name+".ivf")
		sd.audio, sd.video = writeMedia(t, ogg, ivf, uint64(i+5), 100, 20)
		sd.rec = filepath.Join(media, sd.name+"-rec")
		sd.out = &syncBuffer{}
		if i == 1 {
			// bob declines first (alice sees it), then joins all the same.
			if out := run("call", "alice", "--profile", "bob", "--decline"); !strings.Contains(out, "declined call") {
				t.Fatalf("--decline: %s", out)
			}
			waitUntil(t, 20*time.Second, "alice to see bob decline", func() bool { return strings.Contains(sides[0].out.String(), "declined") })
		}
		sd.cmd = command("call", sd.peer, "--profile", sd.profile, "--audio", ogg, "--video", ivf, "--record", sd.rec)
		sd.cmd.Stdout, sd.cmd.Stderr = sd.out, sd.out
		if err := sd.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { sd.cmd.Process.Kill(); sd.cmd.Wait() })
		waitUntil(t, 20*time.Second, sd.name+"'s call to connect", func() bool { return strings.Contains(sd.out.String(), "connected") })
	}
	if !strings.Contains(sides[0].out.String(), "started call") || !strings.Contains(sides[1].out.String(), "joined call") {
		t.Fatalf("alice:\n%s\nbob:\n%s", sides[0].out, sides[1].out)
	}
	waitUntil(t, 20*time.Second, "alice to see bob join", func() bool { return strings.Contains(sides[0].out.String(), "bob (device") })
	for _, sd := range sides {
		waitUntil(t, 20*time.Second, sd.name+"'s files to end", func() bool { return strings.Contains(sd.out.String(), "media files ended") })
	}
	time.Sleep(500 * time.Millisecond) // the last frames in flight
	for _, sd := range sides {
		out, err := command("call", "--hangup", "--profile", sd.profile).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "hung up") {
			t.Fatalf("%s: hush call --hangup: %v\n%s", sd.name, err, out)
		}
		if err := sd.cmd.Wait(); err != nil {
			t.Fatalf("%s's hush call: %v\n%s", sd.name, err, sd.out)
		}
	}
	if out, err := command("call", "--hangup").CombinedOutput(); err == nil {
		t.Errorf("--hangup with no call running succeeded:\n%s", out)
	}
	// Each recording holds the other side's frames exactly, from the
	// moment it was subscribed to them (bob joined after alice started
	// playing) to the end of the files.
	for i, sd := range sides {
		other := sides[1-i]
		entries, err := os.ReadDir(sd.rec)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		if len(names) != 2 {
			t.Fatalf("%s recorded %v", sd.name, names)
		}
		for _, n := range names {
			path := filepath.Join(sd.rec, n)
			got, want := readOgg, other.audio
			if filepath.Ext(n) == ".ivf" {
				got, want = readIVF, other.video
			}
			frames := got(t, path)
			if len(frames) < len(want)/2 || !slices.EqualFunc(frames, want[len(want)-len(frames):], bytes.Equal) {
				t.Errorf("%s's recording %s: %d frames, not the last of the %d %s sent", sd.name, n, len(frames), len(want), other.name)
			}
		}
	}
}

// syncBuffer is a bytes.Buffer safe for a process's output and the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestCallCluster: two server nodes on one PostgreSQL schema and NATS.
// alice, on node 1, places a call, so its room lives on node 1; bob, on
// node 2, joins through node 2, which relays his signalling to node 1
// over NATS (no "moved" frame reaches either device): bob's media goes
// straight to node 1's SFU, the only one that forwards any, and both
// hear each other byte for byte.
func TestCallCluster(t *testing.T) {
	clusterServices(t)
	store := postgresBackend(t).Store
	watches := []*forwardWatch{{}, {}}
	node := func(w *forwardWatch) *e2eServer {
		return startE2E(t, func(o *server.Options) {
			o.Store, o.Bus = store, clusterNATS
			o.Calls.TestHookForward = w.hook
		})
	}
	n1, n2 := node(watches[0]), node(watches[1])
	alice := &callPeer{e2eDevice: n1.register(t, "alice"), name: "alice"}
	bob := &callPeer{e2eDevice: n2.register(t, "bob"), name: "bob"}
	var moved atomic.Int64
	for _, p := range []*callPeer{alice, bob} {
		t.Cleanup(p.OnCallFrame(func(f *proto.Call) {
			if f.Op == proto.CallMoved {
				moved.Add(1)
			}
		}))
	}
	cv := alice.direct("bob")
	bob.sync()
	online(t, alice.e2eDevice)
	online(t, bob.e2eDevice)

	alice.join(t, cv.ID)
	bob.joinInvited(t, cv.ID, alice)
	peers := []*callPeer{alice, bob}
	waitConnected(t, peers)
	if r1, r2 := n1.Calls().Rooms(), n2.Calls().Rooms(); r1 != 1 || r2 != 0 {
		t.Fatalf("rooms: node 1 hosts %d, node 2 %d; want 1 and 0", r1, r2)
	}
	if s1, s2 := n1.CallRelay().Stats(), n2.CallRelay().Stats(); s1.Hosted != 1 || s2.Relayed != 1 || s1.Relayed != 0 || s2.Hosted != 0 {
		t.Fatalf("relayed sessions: node 1 %+v, node 2 %+v; want bob's, from node 2 to node 1", s1, s2)
	}
	warmUp(t, peers)
	sts := []*streamer{stream(alice, 21, 40), stream(bob, 22, 40)}
	for _, st := range sts {
		<-st.done
	}
	for i, p := range peers {
		q := peers[1-i]
		id := p.deviceID(t)
		for _, kind := range []string{"audio", "video"} {
			want := sts[i].sent(kind)
			waitUntil(t, 10*time.Second, fmt.Sprintf("%s's %s from %s", q.name, kind, p.name), func() bool { return len(q.frames(id, kind)) >= len(want) })
			got := q.frames(id, kind)
			if len(got) != len(want) {
				t.Fatalf("%s got %d %s frames from %s, sent %d", q.name, len(got), kind, p.name, len(want))
			}
			for j := range got {
				if !bytes.Equal(got[j].data, want[j]) {
					t.Fatalf("%s's %s frame %d from %s differs", q.name, kind, j, p.name)
				}
			}
		}
	}
	watches[0].check(t)
	if n := watches[1].packets.Load(); n != 0 || n2.Calls().Stats().PacketsIn != 0 {
		t.Errorf("node 2's SFU forwarded %d packets (received %d); the room is node 1's", n, n2.Calls().Stats().PacketsIn)
	}
	if n := moved.Load(); n != 0 {
		t.Errorf("%d moved frames reached the devices; node 2 should relay", n)
	}
	for _, p := range peers {
		if err := p.s.Leave(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, 10*time.Second, "node 1's room to close", func() bool { return n1.Calls().Rooms() == 0 })
	waitUntil(t, 10*time.Second, "the relayed session to close on both nodes", func() bool {
		return n1.CallRelay().Stats() == cluster.RelayStats{} && n2.CallRelay().Stats() == cluster.RelayStats{}
	})
}

// TestCallFramesRoster: through the server's WebSocket, only a device on
// the group's roster may join its call; a malformed call frame gets a
// clear error; a device's call ends when its connection does.
func TestCallFramesRoster(t *testing.T) {
	ts := start(t, sqliteBackend(t))
	alice, eve := register(t, ts), register(t, ts)
	gid := random(16)
	alice.createGroup(gid) // roster: alice alone

	we := eve.dial()
	id := we.write(proto.Frame{Type: proto.FrameCall, Call: &proto.Call{GroupID: gid, CallID: "c1", Op: proto.CallJoin}})
	if f := we.nextOf(proto.FrameError, 10*time.Second); f.ID != id || f.Error.Code != proto.CodeForbidden {
		t.Fatalf("outsider's join: %+v", f.Error)
	}
	id = we.write(proto.Frame{Type: proto.FrameCall})
	if f := we.nextOf(proto.FrameError, 10*time.Second); f.ID != id || f.Error.Code != proto.CodeBadRequest {
		t.Fatalf("call frame without call: %+v", f.Error)
	}
	id = we.write(proto.Frame{Type: proto.FrameCall, Call: &proto.Call{GroupID: gid, CallID: strings.Repeat("x", proto.MaxCallIDBytes+1), Op: proto.CallJoin}})
	if f := we.nextOf(proto.FrameError, 10*time.Second); f.ID != id || f.Error.Code != proto.CodeBadRequest {
		t.Fatalf("long call id: %+v", f.Error)
	}

	wa := alice.dial()
	wa.write(proto.Frame{Type: proto.FrameCall, Call: &proto.Call{GroupID: gid, CallID: "c1", Op: proto.CallJoin}})
	f := wa.nextOf(proto.FrameCall, 20*time.Second)
	if f.Call.Op != proto.CallOffer || !bytes.Equal(f.Call.GroupID, gid) || f.Call.CallID != "c1" || !strings.Contains(f.Call.SDP, "m=audio") {
		t.Fatalf("alice's join: %+v", f.Call)
	}
	if n := ts.Calls().Rooms(); n != 1 {
		t.Fatalf("%d rooms", n)
	}
	anon := &client{tb: t, base: ts.URL(), http: httpClient}
	resp := anon.request("GET", proto.PathMetrics, "", nil)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"hush_call_rooms 1", "hush_call_participants 1", `hush_websocket_frames_total{type="call"} 4`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	wa.close()
	waitUntil(t, 10*time.Second, "the room to close with alice's connection", func() bool { return ts.Calls().Rooms() == 0 })
}

// TestCallClusterRemoval: the call's room is on node 1; bob, on node 2,
// removes carol (also on node 2) from the group: node 2 accepts the
// commit, and node 1, which hosts the room, evicts carol from it when it
// next checks the room's roster.
func TestCallClusterRemoval(t *testing.T) {
	clusterServices(t)
	store := postgresBackend(t).Store
	node := func() *e2eServer {
		return startE2E(t, func(o *server.Options) { o.Store, o.Bus = store, clusterNATS })
	}
	n1, n2 := node(), node()
	alice := &callPeer{e2eDevice: n1.register(t, "alice"), name: "alice"}
	bob := &callPeer{e2eDevice: n2.register(t, "bob"), name: "bob"}
	carol := &callPeer{e2eDevice: n2.register(t, "carol"), name: "carol"}
	cv := alice.newGroup("across", "bob", "carol")
	peers := []*callPeer{alice, bob, carol}
	for _, p := range peers {
		p.sync()
		online(t, p.e2eDevice)
	}
	alice.join(t, cv.ID)
	bob.joinInvited(t, cv.ID, alice)
	carol.joinInvited(t, cv.ID, alice)
	waitConnected(t, peers)
	if n := len(n1.Calls().Participants(mustGroupID(t, cv.ID), alice.s.ID())); n != 3 {
		t.Fatalf("node 1's room holds %d devices", n)
	}
	if err := bob.RemoveMember(context.Background(), cv.ID, "carol"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-carol.s.Done():
		t.Logf("carol's call ended: %s", carol.s.Reason())
	case <-time.After(15 * time.Second):
		t.Fatal("node 1 did not evict carol")
	}
	waitUntil(t, 10*time.Second, "alice's rekey", func() bool { return alice.s.Keys().Epoch() == bob.s.Keys().Epoch() })
	if n := len(n1.Calls().Participants(mustGroupID(t, cv.ID), alice.s.ID())); n != 2 {
		t.Fatalf("node 1's room holds %d devices after the removal", n)
	}
}

func mustGroupID(t *testing.T, conv string) []byte {
	gid, err := hush.GroupID(conv)
	if err != nil {
		t.Fatal(err)
	}
	return gid
}

// TestCallRingsAgainWhenEmpty: a device that vanishes from a call
// without telling the members (its process killed) leaves the call
// current on every device, so the next member to call would join an
// empty room and ring nobody. That member finds nobody else's stream in
// the SFU's first offer and invites the members to the same call again:
// the others' devices get the invite and show the call with that member
// alone in it. A member who then joins the live call does not ring again.
func TestCallRingsAgainWhenEmpty(t *testing.T) {
	s, _ := startCallServer(t)
	peers, conv := callGroup(t, s, "alice", "bob", "carol")
	alice, bob, carol := peers[0], peers[1], peers[2]
	ctx := context.Background()
	start := func(p *callPeer) {
		t.Helper()
		st, err := call.Start(ctx, p.Client, conv, call.SessionOptions{LoopbackOnly: true, RingAgainAfter: time.Nanosecond})
		if err != nil {
			t.Fatalf("%s: %v", p.name, err)
		}
		p.s = st
		t.Cleanup(func() { st.Leave(context.Background()) })
		select {
		case <-st.Connected():
		case <-time.After(20 * time.Second):
			t.Fatalf("%s: the call did not connect", p.name)
		}
	}
	start(alice)
	callID := alice.s.ID()
	// alice vanishes: she leaves the SFU's room, and her devices never
	// tell the members.
	if err := alice.s.Call.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	gid := mustGroupID(t, conv)
	waitUntil(t, 10*time.Second, "alice gone from the room", func() bool { return len(s.Calls().Participants(gid, callID)) == 0 })
	aliceDev := alice.deviceID(t)
	for _, p := range []*callPeer{bob, carol} {
		p.sync()
		st, ok, err := p.CurrentCall(ctx, conv)
		if err != nil || !ok || st.ID != callID || st.Devices[aliceDev] == "" {
			t.Fatalf("%s: current call %+v, %v, %v; want alice's ghost call", p.name, st, ok, err)
		}
	}

	start(bob)
	if bob.s.ID() != callID || bob.s.Started {
		t.Fatalf("bob: call %s (started %v), want to join %s", bob.s.ID(), bob.s.Started, callID)
	}
	waitUntil(t, 10*time.Second, "bob ringing the members again", bob.s.Rang)
	bobDev := bob.deviceID(t)
	waitUntil(t, 10*time.Second, "carol's invitation from bob", func() bool {
		for _, e := range carol.eventsOf(hush.EventCall) {
			if e.Text == string(hush.CallInvite) && e.CallID == callID && e.Device == bobDev {
				return true
			}
		}
		return false
	})
	st, ok, err := carol.CurrentCall(ctx, conv)
	if err != nil || !ok || st.ID != callID || len(st.Devices) != 1 || st.Devices[bobDev] != "bob" {
		t.Fatalf("carol: current call %+v, %v, %v; want %s with bob alone", st, ok, err, callID)
	}

	// bob is sending now; carol joins the live call and rings nobody.
	defer sendWarmFrames([]*callPeer{bob})()
	waitUntil(t, 10*time.Second, "bob's audio and video at the SFU", func() bool { return s.Calls().Stats().PacketsIn >= 20 })
	start(carol)
	// Connected follows carol's answer to the first offer, and the
	// decision to ring follows it on the same goroutine, which Leave
	// waits for.
	if err := carol.s.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	if carol.s.Rang() {
		t.Fatal("carol rang the members again for a call with bob in it")
	}
}
