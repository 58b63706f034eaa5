package calls

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/hush-chat/hush/client/call"
	"github.com/hush-chat/hush/proto"
)

// TestCallRecordings runs a 1:1 call and a 4-person call: each participant
// publishes audio and video from files in real time and records every
// other participant; every recording holds exactly the frames that were
// sent, and the SFU saw only SFrame ciphertext.
func TestCallRecordings(t *testing.T) {
	sizes := []int{2, 4}
	if raceEnabled {
		sizes = sizes[:1]
	}
	for _, n := range sizes {
		t.Run(fmt.Sprintf("%d participants", n), func(t *testing.T) {
			h := newHarness(t, Options{})
			ps := h.newMembers(n)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()

			type result struct {
				name string
				err  error
			}
			results := make(chan result, 2*n*n)
			dirs := make([]string, n)
			for i, p := range ps {
				dir := t.TempDir()
				dirs[i] = dir
				p.join(ctx, func(r *call.Remote) {
					go func() {
						name, err := call.Record(dir, r)
						results <- result{name, err}
					}()
				})
			}
			h.settle(ps)

			ms := make([]*media, n)
			for i := range ms {
				ms[i] = newMedia(t, uint64(i+1), 2*time.Second)
			}
			var wg sync.WaitGroup
			for i, p := range ps {
				wg.Go(func() {
					if err := call.Publish(ctx, p.call, bytes.NewReader(ms[i].audioFile), bytes.NewReader(ms[i].ivfFile)); err != nil {
						t.Errorf("%s: publish: %v", p.name, err)
					}
				})
			}
			wg.Wait()
			// Wait for the last frames in flight, however loaded the machine.
			for i, p := range ps {
				for j, q := range ps {
					if i != j {
						p.waitFrames(ctx, q.name+"/audio", len(ms[j].audio))
						p.waitFrames(ctx, q.name+"/video", len(ms[j].video))
					}
				}
			}
			for _, p := range ps {
				p.call.Leave(ctx)
			}
			for range 2 * n * (n - 1) {
				select {
				case r := <-results:
					if r.err != nil {
						t.Errorf("record %s: %v", r.name, r.err)
					}
				case <-ctx.Done():
					t.Fatal("recordings did not end")
				}
			}

			for i := range ps {
				for j, q := range ps {
					if i == j {
						continue
					}
					for _, ext := range []string{".ogg", ".ivf"} {
						name := filepath.Join(dirs[i], q.name+ext)
						got := readRecording(t, name)
						want := ms[j].audio
						if kindOf(name) == webrtc.RTPCodecTypeVideo {
							want = ms[j].video
						}
						if !slices.EqualFunc(got, want, bytes.Equal) {
							t.Errorf("%s's recording of %s%s: %d frames, want the %d sent (first difference at %d)", ps[i].name, q.name, ext, len(got), len(want), firstDiff(got, want))
						}
					}
				}
			}
			h.checkCiphertext(ms)
			if st := h.sfu.Stats(); st.PacketsOut != st.PacketsIn*uint64(n-1) {
				t.Errorf("stats: %d packets in, %d out; want each forwarded to %d", st.PacketsIn, st.PacketsOut, n-1)
			}
		})
	}
}

// bound is a timing bound of the tests, loosened under the race detector.
func bound(d time.Duration) time.Duration {
	if raceEnabled {
		return 3 * d
	}
	return d
}

func firstDiff(a, b [][]byte) int {
	for i := range min(len(a), len(b)) {
		if !bytes.Equal(a[i], b[i]) {
			return i
		}
	}
	return min(len(a), len(b))
}

// arrival is one frame a participant decrypted, and when.
type arrival struct {
	at   time.Time
	data []byte
}

// collector keeps what a participant decrypts from each other device.
type collector struct {
	mu  sync.Mutex
	got map[string][]arrival // by device
}

func (c *collector) onRemote(r *call.Remote) {
	if r.Kind != webrtc.RTPCodecTypeAudio {
		return
	}
	go func() {
		for {
			f, err := r.ReadFrame()
			if err != nil {
				return
			}
			c.mu.Lock()
			c.got[r.Device] = append(c.got[r.Device], arrival{time.Now(), f.Data})
			c.mu.Unlock()
		}
	}()
}

func (c *collector) frames(device string) []arrival {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.got[device])
}

// TestCallRemovalRekey removes a member from the group mid-call: the
// others move to the new epoch's keys and go on hearing each other with
// no gap of a second, while the removed member, still connected to the
// SFU and still receiving packets, decrypts none of the frames sent after
// the switch. Evicting it from the SFU then ends its call.
func TestCallRemovalRekey(t *testing.T) {
	h := newHarness(t, Options{})
	ps := h.newMembers(4)
	gone := ps[3]
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cols := make([]*collector, len(ps))
	for i, p := range ps {
		cols[i] = &collector{got: make(map[string][]arrival)}
		p.join(ctx, cols[i].onRemote)
	}
	h.settle(ps)

	// Each participant sends 20 ms audio frames, noting which went out
	// after the rekey.
	var (
		mu        sync.Mutex
		switched  bool
		afterSwap = make(map[string]bool) // frames sent after the switch
		sent      [][]byte
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i, p := range ps {
		wg.Go(func() {
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				f := fmt.Appendf([]byte{opusTOC}, "%s frame %d %s", p.name, n, strings.Repeat("x", 40+i))
				mu.Lock()
				after := switched
				mu.Unlock()
				if err := p.call.Audio().WriteFrame(f, uint32(n*960)); err != nil {
					t.Errorf("%s: %v", p.name, err)
					return
				}
				mu.Lock()
				sent = append(sent, f)
				if after {
					afterSwap[string(f)] = true
				}
				mu.Unlock()
			}
		})
	}
	time.Sleep(time.Second)
	h.remove(ps, gone)
	switchedAt := time.Now()
	mu.Lock()
	switched = true
	mu.Unlock()
	time.Sleep(1500 * time.Millisecond)
	close(stop)
	wg.Wait()
	time.Sleep(200 * time.Millisecond)

	for i, p := range ps[:3] {
		for _, q := range ps[:3] {
			if p == q {
				continue
			}
			got := cols[i].frames(q.name)
			if len(got) == 0 {
				t.Fatalf("%s heard nothing from %s", p.name, q.name)
			}
			var gap time.Duration
			var late int
			for k := 1; k < len(got); k++ {
				gap = max(gap, got[k].at.Sub(got[k-1].at))
			}
			for _, a := range got {
				if a.at.After(switchedAt) {
					late++
				}
			}
			if gap >= bound(time.Second) {
				t.Errorf("%s heard %s with a gap of %v", p.name, q.name, gap)
			}
			if late < 50/int(bound(time.Second)/time.Second) {
				t.Errorf("%s heard only %d frames from %s after the rekey", p.name, late, q.name)
			}
			t.Logf("%s from %s: %d frames, longest gap %v", p.name, q.name, len(got), gap)
		}
	}
	removed := cols[3]
	for _, q := range ps[:3] {
		got := removed.frames(q.name)
		if len(got) == 0 {
			t.Errorf("the removed member never heard %s, even before the rekey", q.name)
		}
		mu.Lock()
		for _, a := range got {
			if afterSwap[string(a.data)] {
				t.Errorf("the removed member decrypted a frame %s sent after the rekey", q.name)
			}
		}
		mu.Unlock()
		gone.mu.Lock()
		r := gone.remotes[q.name+"/audio"]
		gone.mu.Unlock()
		if st := r.Stats(); st.Undecryptable == 0 {
			t.Errorf("the removed member received no frame of the new epoch from %s: %+v", q.name, st)
		}
	}
	h.checkCiphertext([]*media{{audio: sent}})

	h.sfu.Evict(h.group, gone.name)
	select {
	case <-gone.call.Done():
		if !strings.Contains(gone.call.Reason(), "removed") {
			t.Errorf("evicted with reason %q", gone.call.Reason())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the evicted member's call did not end")
	}
	if got := h.sfu.Participants(h.group, h.callID); len(got) != 3 || slices.Contains(got, gone.name) {
		t.Errorf("participants after eviction: %v", got)
	}
}

// TestCallLateJoiner has a member join a call in progress: it decrypts
// both other participants within a second, and records an unbroken run
// of what they send from then on.
func TestCallLateJoiner(t *testing.T) {
	h := newHarness(t, Options{})
	ps := h.newMembers(3)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	first, late := ps[:2], ps[2]
	for _, p := range first {
		p.join(ctx, nil)
	}
	h.settle(first)
	ms := []*media{newMedia(t, 1, 3*time.Second), newMedia(t, 2, 3*time.Second)}
	var wg sync.WaitGroup
	for i, p := range first {
		wg.Go(func() {
			if err := call.Publish(ctx, p.call, bytes.NewReader(ms[i].audioFile), bytes.NewReader(ms[i].ivfFile)); err != nil {
				t.Errorf("%s: publish: %v", p.name, err)
			}
		})
	}
	time.Sleep(time.Second)

	col := &collector{got: make(map[string][]arrival)}
	late.join(ctx, col.onRemote)
	deadline := time.Now().Add(5 * time.Second)
	for len(col.frames(first[0].name)) == 0 || len(col.frames(first[1].name)) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the late joiner heard nothing")
		}
		time.Sleep(5 * time.Millisecond)
	}
	wg.Wait()
	time.Sleep(300 * time.Millisecond)
	for i, q := range first {
		got := col.frames(q.name)
		if d := got[0].at.Sub(late.joined); d >= bound(time.Second) {
			t.Errorf("the late joiner first heard %s after %v", q.name, d)
		} else {
			t.Logf("the late joiner first heard %s after %v", q.name, d)
		}
		start := slices.IndexFunc(ms[i].audio, func(f []byte) bool { return bytes.Equal(f, got[0].data) })
		if start < 0 {
			t.Fatalf("the late joiner's first frame from %s was never sent", q.name)
		}
		want := ms[i].audio[start:]
		if len(got) != len(want) || slices.ContainsFunc(got, func(a arrival) bool { return !bytes.Equal(a.data, want[0]) && false }) {
			t.Errorf("the late joiner got %d frames from %s, want the %d sent from its first", len(got), q.name, len(want))
		}
		for k := range min(len(got), len(want)) {
			if !bytes.Equal(got[k].data, want[k]) {
				t.Fatalf("the late joiner's frame %d from %s differs from the one sent", k, q.name)
			}
		}
	}
}

func TestCallFull(t *testing.T) {
	h := newHarness(t, Options{MaxParticipants: 2})
	ctx := context.Background()
	for i := range 3 {
		s := h.sfu.Connect(fmt.Sprint("dev", i), func(*proto.Call) {})
		defer s.Close()
		err := s.Handle(ctx, &proto.Call{GroupID: h.group, CallID: h.callID, Op: proto.CallJoin})
		var pe *proto.Error
		switch {
		case i < 2 && err != nil:
			t.Fatalf("join %d: %v", i, err)
		case i == 2 && (!errors.As(err, &pe) || pe.Code != proto.CodeCallFull):
			t.Fatalf("third join: %v, want %s", err, proto.CodeCallFull)
		}
	}
}

func TestCallRefusals(t *testing.T) {
	h := newHarness(t, Options{Authorize: func(_ context.Context, group []byte, device string) error {
		if device == "outsider" {
			return &proto.Error{Code: proto.CodeForbidden, Message: "not on the roster"}
		}
		return nil
	}})
	ctx := context.Background()
	offers := make(chan *proto.Call, 4)
	s := h.sfu.Connect("dev0", func(c *proto.Call) { offers <- c })
	defer s.Close()
	code := func(err error) proto.Code {
		var pe *proto.Error
		if errors.As(err, &pe) {
			return pe.Code
		}
		return ""
	}
	join := &proto.Call{GroupID: h.group, CallID: h.callID, Op: proto.CallJoin}
	if err := s.Handle(ctx, &proto.Call{GroupID: h.group, CallID: h.callID, Op: proto.CallAnswer, SDP: "v=0"}); code(err) != proto.CodeNotFound {
		t.Errorf("answer outside a call: %v", err)
	}
	if err := s.Handle(ctx, &proto.Call{GroupID: h.group, Op: proto.CallJoin}); code(err) != proto.CodeBadRequest {
		t.Errorf("join without a call id: %v", err)
	}
	out := h.sfu.Connect("outsider", func(*proto.Call) {})
	if err := out.Handle(ctx, join); code(err) != proto.CodeForbidden {
		t.Errorf("outsider's join: %v", err)
	}
	if err := s.Handle(ctx, join); err != nil {
		t.Fatal(err)
	}
	if err := s.Handle(ctx, join); code(err) != proto.CodeConflict {
		t.Errorf("second join: %v", err)
	}
	offer := <-offers
	if offer.Op != proto.CallOffer || !strings.Contains(offer.SDP, "m=audio") || !strings.Contains(offer.SDP, "m=video") {
		t.Fatalf("offer: %+v", offer)
	}
	// An answer that is not SDP is refused.
	if err := s.Handle(ctx, &proto.Call{GroupID: h.group, CallID: h.callID, Op: proto.CallAnswer, SDP: "v=0\r\nnot sdp"}); code(err) != proto.CodeBadRequest {
		t.Errorf("answer that is not SDP: %v", err)
	}
	s.Close()
	if n := h.sfu.Rooms(); n != 0 {
		t.Errorf("%d rooms after the last participant left", n)
	}
}

// TestImports keeps keys out of the SFU: it must not link the packages
// that hold or derive media keys.
func TestImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{"/sframe", "/mls", "/client"} {
			if strings.HasPrefix(dep, "github.com/hush-chat/hush") && strings.Contains(dep, banned) {
				t.Errorf("server/calls depends on %s", dep)
			}
		}
	}
}
