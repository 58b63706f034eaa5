package calls

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
	"github.com/pion/webrtc/v4"
	"golang.org/x/net/ipv4"

	"github.com/hush-chat/hush/client/call"
	"github.com/hush-chat/hush/internal/rtc"
	"github.com/hush-chat/hush/mls"
	"github.com/hush-chat/hush/proto"
	"github.com/hush-chat/hush/sframe"
)

// Load of BenchmarkForward: rooms of participants, each publishing audio
// (20 ms Opus frames) and video (single-packet frames at videoFPS).
const (
	benchRooms        = 10
	benchParticipants = 4
	benchDuration     = 5 * time.Second
	idleDuration      = 3 * time.Second
)

// videoRates are the rates of each participant's video packets that
// BenchmarkForward runs at. At 200 packets/s (with audio: 10,000 packets/s
// in, 30,000 out) the SFU is about a third busy, and part of what it
// spends is the Go runtime waking up and going idle between packets; at
// 1,000 (42,000 in, 126,000 out) it keeps about one core busy, which
// gives what a core forwards.
var videoRates = []int{200, 1000}

// videoFPS is the child's rate of video packets per participant, set by
// its parent in HUSH_CALLS_VIDEO_FPS.
var videoFPS = func() int {
	if n, err := strconv.Atoi(os.Getenv("HUSH_CALLS_VIDEO_FPS")); err == nil && n > 0 {
		return n
	}
	return videoRates[0]
}()

// signal is one signalling message between the SFU (this process) and a
// device of the load generator (a child process).
type signal struct {
	Device string      `json:"device"`
	Call   *proto.Call `json:"call"`
}

// BenchmarkForward measures the SFU's forwarding cost: 10 rooms of 4
// participants, each sending audio and video through real PeerConnections
// on loopback, at each of videoRates. The participants run in a child
// process, so that the CPU time this process uses is the SFU's alone; it
// reports forwarded packets per second and per CPU-second of the SFU, and
// how busy the SFU was (sfu-cpu-s/s).
func BenchmarkForward(b *testing.B) {
	for _, rate := range videoRates {
		b.Run(fmt.Sprintf("video=%dpps", rate), func(b *testing.B) {
			s, err := New(Options{LoopbackOnly: true, MaxParticipants: benchParticipants})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			for b.Loop() {
				runForward(b, s, rate)
			}
		})
	}
}

func runForward(b *testing.B, s *SFU, videoRate int) {
	toChild, childIn, err := os.Pipe()
	if err != nil {
		b.Fatal(err)
	}
	childOut, fromChild, err := os.Pipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestLoadGenerator$")
	mode := os.Getenv("HUSH_CALLS_LOADGEN") // "clients" for full clients
	if mode == "" {
		mode = "replay"
	}
	cmd.Env = append(os.Environ(), "HUSH_CALLS_LOADGEN="+mode, fmt.Sprintf("HUSH_CALLS_VIDEO_FPS=%d", videoRate))
	cmd.ExtraFiles = []*os.File{toChild, fromChild}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	toChild.Close()
	fromChild.Close()

	var wmu sync.Mutex
	enc := json.NewEncoder(childIn)
	sessions := make(map[string]*Session)
	dec := json.NewDecoder(bufio.NewReader(childOut))
	var idle, idleCPU, start, startCPU time.Time
	var idleCost float64 // CPU-seconds per second with every call connected and no media
	var in0, out0, resent0 uint64
	// HUSH_CALLS_CPUPROFILE=NAME writes a CPU profile of the SFU while the
	// load runs, without the set-up, to NAME.RATE (run with -benchtime 1x).
	var prof *os.File
	if name := os.Getenv("HUSH_CALLS_CPUPROFILE"); name != "" {
		if prof, err = os.Create(fmt.Sprintf("%s.%d", name, videoRate)); err != nil {
			b.Fatal(err)
		}
		defer prof.Close()
	}
	for {
		var m signal
		if err := dec.Decode(&m); err != nil {
			b.Fatalf("load generator: %v", err)
		}
		if m.Call == nil { // the generator's marks: idle, start, then stop
			if idle.IsZero() {
				idle, idleCPU = time.Now(), cpuTime()
				continue
			}
			if start.IsZero() {
				idleCost = float64(cpuTime().Sub(idleCPU)) / float64(time.Since(idle))
				st := s.Stats()
				in0, out0, resent0 = st.PacketsIn, st.PacketsOut, st.PacketsResent
				start, startCPU = time.Now(), cpuTime()
				if prof != nil {
					if err := pprof.StartCPUProfile(prof); err != nil {
						b.Fatal(err)
					}
				}
				continue
			}
			if prof != nil {
				pprof.StopCPUProfile()
			}
			break
		}
		se := sessions[m.Device]
		if se == nil {
			dev := m.Device
			se = s.Connect(dev, func(c *proto.Call) {
				wmu.Lock()
				defer wmu.Unlock()
				enc.Encode(signal{Device: dev, Call: c})
			})
			sessions[m.Device] = se
		}
		if err := se.Handle(context.Background(), m.Call); err != nil {
			b.Fatalf("%s: %v", m.Device, err)
		}
	}
	elapsed, cpu := time.Since(start), cpuTime().Sub(startCPU)
	st := s.Stats()
	// The generator's participants still signal as they leave: drain
	// them, or the child blocks on a full pipe and cmd.Wait waits on it.
	go io.Copy(io.Discard, childOut)
	for _, se := range sessions {
		se.Close()
	}
	childIn.Close()
	cmd.Wait()
	out := float64(st.PacketsOut - out0)
	b.ReportMetric(float64(st.PacketsIn-in0)/elapsed.Seconds(), "pkts-in/s")
	b.ReportMetric(out/elapsed.Seconds(), "pkts-out/s")
	// Resent on NACKs, not counted as out: losses on loopback, when the
	// machine is too busy for some process to drain its sockets in time.
	b.ReportMetric(float64(st.PacketsResent-resent0)/elapsed.Seconds(), "resent/s")
	b.ReportMetric(out/time.Duration(cpu).Seconds(), "pkts-out/cpu-s")
	// The same, without the cost of keeping the calls up (ICE checks, RTCP
	// reports, timers), which the idle window measures: the marginal cost
	// of forwarding.
	b.ReportMetric(out/(time.Duration(cpu).Seconds()-idleCost*elapsed.Seconds()), "pkts-out/marginal-cpu-s")
	b.ReportMetric(idleCost, "idle-cpu-s/s")
	b.ReportMetric(time.Duration(cpu).Seconds()/elapsed.Seconds(), "sfu-cpu-s/s")
}

// cpuTime returns the CPU time (user and system) this process has used,
// as a time.Time for easy subtraction.
func cpuTime() time.Time {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Unix(0, ru.Utime.Nano()+ru.Stime.Nano())
}

// loadDevice is one participant of BenchmarkForward's load generator.
type loadDevice interface {
	Handle(ctx context.Context, c *proto.Call) error
	Connected() <-chan struct{}
	Leave(ctx context.Context) error
	// pump sends audio and video until stop.
	pump(stop <-chan struct{})
}

// TestLoadGenerator is BenchmarkForward's child process: it runs the
// rooms' participants, signalling over fd 3 (in) and 4 (out).
//
// By default each participant replays SFrame frames it encrypted once,
// and reads the media it receives without decrypting it (replayDevice),
// so that the generator costs little more than its PeerConnections and
// reaches its nominal rate on a small machine. HUSH_CALLS_LOADGEN=clients
// runs full clients instead (client/call: SFrame-encrypting every frame,
// depacketizing and decrypting everything received), as devices do.
func TestLoadGenerator(t *testing.T) {
	mode := os.Getenv("HUSH_CALLS_LOADGEN")
	if mode == "" {
		t.Skip("run by BenchmarkForward")
	}
	in, out := os.NewFile(3, "in"), os.NewFile(4, "out")
	var wmu sync.Mutex
	enc := json.NewEncoder(out)
	send := func(m signal) {
		wmu.Lock()
		defer wmu.Unlock()
		enc.Encode(m)
	}
	ctx := context.Background()
	calls := make(map[string]loadDevice)
	var cmu sync.Mutex
	var all []loadDevice
	for r := range benchRooms {
		h := &harness{t: t, group: fmt.Appendf(nil, "room-%d", r), callID: "bench"}
		for _, p := range h.newMembers(benchParticipants) {
			dev := fmt.Sprintf("r%d-%s", r, p.name)
			if mode != "clients" {
				d, err := newReplayDevice(p, func(c *proto.Call) { send(signal{Device: dev, Call: c}) })
				if err != nil {
					t.Fatal(err)
				}
				cmu.Lock()
				calls[dev] = d
				all = append(all, d)
				cmu.Unlock()
				continue
			}
			c, err := call.Join(ctx, call.Config{
				GroupID: h.group, CallID: h.callID, Keys: p.keys, LoopbackOnly: true,
				Signal: func(_ context.Context, c *proto.Call) error {
					send(signal{Device: dev, Call: c})
					return nil
				},
				OnRemote: func(r *call.Remote) {
					go func() {
						for {
							if _, err := r.ReadFrame(); err != nil {
								return
							}
						}
					}()
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			cmu.Lock()
			calls[dev] = clientDevice{c}
			all = append(all, clientDevice{c})
			cmu.Unlock()
		}
	}
	go func() {
		dec := json.NewDecoder(bufio.NewReader(in))
		for {
			var m signal
			if dec.Decode(&m) != nil {
				return
			}
			cmu.Lock()
			c := calls[m.Device]
			cmu.Unlock()
			go c.Handle(ctx, m.Call)
		}
	}()
	for _, c := range all {
		<-c.Connected()
	}
	time.Sleep(time.Second) // renegotiations settle

	send(signal{}) // idle: connected, no media
	time.Sleep(idleDuration)
	send(signal{}) // start
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, c := range all {
		wg.Go(func() { c.pump(stop) })
	}
	time.Sleep(benchDuration)
	close(stop)
	wg.Wait()
	send(signal{}) // stop
	for _, c := range all {
		c.Leave(ctx)
	}
}

// clientDevice is a full client.
type clientDevice struct{ *call.Call }

func (c clientDevice) pump(stop <-chan struct{}) {
	var wg sync.WaitGroup
	wg.Go(func() { pump(c.Audio(), 20*time.Millisecond, 960, 120, stop) })
	wg.Go(func() { pump(c.Video(), time.Second/time.Duration(videoFPS), uint32(90000/videoFPS), 1000, stop) })
	wg.Wait()
}

// replayDevice is a participant that sends what a client would, SFrame
// frames in RTP packets as client/call packetizes them, but encrypts
// only replayFrames frames of each stream, once, and replays them; and
// that reads what it receives as RTP, without depacketizing or
// decrypting it. Its PeerConnection is a client's (rtc.NewAPI).
type replayDevice struct {
	send         func(*proto.Call)
	api          *webrtc.API
	audio, video *webrtc.TrackLocalStaticRTP
	// The packets' payloads: audio an SFrame frame, video a VP8 payload
	// descriptor and an SFrame frame.
	audioFrames, videoFrames [][]byte

	mu        sync.Mutex
	pc        *webrtc.PeerConnection
	connected chan struct{}
	once      sync.Once
}

// replayFrames is how many frames of each stream a replayDevice encrypts.
const replayFrames = 64

func newReplayDevice(p *participant, send func(*proto.Call)) (*replayDevice, error) {
	api, err := rtc.NewAPI(rtc.Config{LoopbackOnly: true})
	if err != nil {
		return nil, err
	}
	d := &replayDevice{send: send, api: api, connected: make(chan struct{})}
	if d.audio, err = webrtc.NewTrackLocalStaticRTP(rtc.Opus, "audio", "hush"); err != nil {
		return nil, err
	}
	if d.video, err = webrtc.NewTrackLocalStaticRTP(rtc.VP8, "video", "hush"); err != nil {
		return nil, err
	}
	size := uint32(len(p.group.Members()))
	for ctxID, frames := range []*[][]byte{&d.audioFrames, &d.videoFrames} {
		// The context ids and suite of client/call's Keys.
		k, err := sframe.NewMLSKeys(sframe.MLSConfig{Suite: call.Suite, LeafIndex: p.group.Index(), ContextID: uint64(ctxID)}, p.group.Epoch(), size, p.group.Export)
		if err != nil {
			return nil, err
		}
		plain := make([]byte, 120)
		plain[0] = opusTOC
		var prefix []byte
		if ctxID == 1 {
			plain = make([]byte, 1000)
			prefix = []byte{0x10} // VP8 payload descriptor: start of partition 0
		}
		for range replayFrames {
			ct, err := k.Encrypt(bytes.Clone(prefix), nil, plain)
			if err != nil {
				return nil, err
			}
			*frames = append(*frames, ct)
		}
	}
	send(&proto.Call{GroupID: p.h.group, CallID: p.h.callID, Op: proto.CallJoin})
	return d, nil
}

func (d *replayDevice) Connected() <-chan struct{} { return d.connected }

// Handle answers the SFU's offers as client/call does.
func (d *replayDevice) Handle(ctx context.Context, c *proto.Call) error {
	if c.Op != proto.CallOffer {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.pc == nil {
		pc, err := d.api.NewPeerConnection(webrtc.Configuration{BundlePolicy: webrtc.BundlePolicyMaxBundle})
		if err != nil {
			return err
		}
		pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
			if s == webrtc.PeerConnectionStateConnected {
				d.once.Do(func() { close(d.connected) })
			}
		})
		pc.OnTrack(func(t *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
			buf := make([]byte, 1500)
			for {
				if _, _, err := t.Read(buf); err != nil {
					return
				}
			}
		})
		d.pc = pc
		if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: c.SDP}); err != nil {
			return err
		}
		for _, t := range []webrtc.TrackLocal{d.audio, d.video} {
			s, err := pc.AddTrack(t)
			if err != nil {
				return err
			}
			go func() {
				for {
					if _, _, err := s.ReadRTCP(); err != nil {
						return
					}
				}
			}()
		}
	} else if err := d.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: c.SDP}); err != nil {
		return err
	}
	a, err := d.pc.CreateAnswer(nil)
	if err != nil {
		return err
	}
	gathered := webrtc.GatheringCompletePromise(d.pc)
	if err := d.pc.SetLocalDescription(a); err != nil {
		return err
	}
	<-gathered
	d.send(&proto.Call{GroupID: c.GroupID, CallID: c.CallID, Op: proto.CallAnswer, SDP: d.pc.LocalDescription().SDP})
	return nil
}

func (d *replayDevice) Leave(context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.pc != nil {
		return d.pc.Close()
	}
	return nil
}

func (d *replayDevice) pump(stop <-chan struct{}) {
	var wg sync.WaitGroup
	wg.Go(func() { replay(d.audio, d.audioFrames, 20*time.Millisecond, 960, false, stop) })
	wg.Go(func() {
		replay(d.video, d.videoFrames, time.Second/time.Duration(videoFPS), uint32(90000/videoFPS), true, stop)
	})
	wg.Wait()
}

// replay sends one of frames, in turn, every interval until stop. When
// the machine is busy and a tick comes late, it catches up: the rate
// stays the nominal one on average.
func replay(t *webrtc.TrackLocalStaticRTP, frames [][]byte, interval time.Duration, step uint32, video bool, stop <-chan struct{}) {
	pkt := &rtp.Packet{Header: rtp.Header{Version: 2, Marker: video}}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	start := time.Now()
	for i := 0; ; {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		for due := int(time.Since(start) / interval); i < due; i++ {
			pkt.Payload = frames[i%len(frames)]
			_ = t.WriteRTP(pkt)
			pkt.SequenceNumber++
			pkt.Timestamp += step
		}
	}
}

// pump sends frames of size bytes every interval until stop.
func pump(s *call.Sender, interval time.Duration, step uint32, size int, stop <-chan struct{}) {
	frame := make([]byte, size)
	frame[0] = opusTOC
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for ts := uint32(0); ; ts += step {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		s.WriteFrame(frame, ts)
	}
}

// BenchmarkSRTP measures what SRTP costs the SFU per forwarded packet:
// encrypting one RTP packet (header parse, encryption, authentication tag)
// for one subscriber, in each protection profile pion offers, for a video
// packet (1,000-byte payload) and an audio one (120 bytes). The SFU pays
// this once per packet per subscriber, and decrypts once per packet
// received.
func BenchmarkSRTP(b *testing.B) {
	profiles := []struct {
		name string
		p    srtp.ProtectionProfile
	}{
		{"AEAD_AES_128_GCM", srtp.ProtectionProfileAeadAes128Gcm},
		{"AEAD_AES_256_GCM", srtp.ProtectionProfileAeadAes256Gcm},
		{"AES_CM_128_HMAC_SHA1_80", srtp.ProtectionProfileAes128CmHmacSha1_80},
	}
	for _, pr := range profiles {
		for _, size := range []int{1000, 120} {
			b.Run(fmt.Sprintf("%s/%d", pr.name, size), func(b *testing.B) {
				keyLen, _ := pr.p.KeyLen()
				saltLen, _ := pr.p.SaltLen()
				ctx, err := srtp.CreateContext(make([]byte, keyLen), make([]byte, saltLen), pr.p)
				if err != nil {
					b.Fatal(err)
				}
				pkt := &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SSRC: 1}, Payload: make([]byte, size)}
				plain := make([]byte, 1500)
				dst := make([]byte, 1500)
				var h rtp.Header
				b.SetBytes(int64(size))
				b.ReportAllocs()
				cpu0 := cpuTime()
				for b.Loop() {
					pkt.SequenceNumber++
					n, _ := pkt.MarshalTo(plain)
					if _, err := ctx.EncryptRTP(dst[:0], plain[:n], &h); err != nil {
						b.Fatal(err)
					}
				}
				// On a shared machine, CPU time is steadier than wall time.
				b.ReportMetric(float64(cpuTime().Sub(cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
			})
		}
	}
}

// BenchmarkUDPLoopback measures the kernel's share of a forwarded
// packet: sending a 1,000-byte UDP datagram on loopback to a socket that
// another goroutine drains, one datagram per sendto (as pion writes) or
// 32 per sendmmsg. cpu-ns/op is the sending thread's CPU time per packet,
// which on loopback includes the receiving socket's delivery.
func BenchmarkUDPLoopback(b *testing.B) {
	for _, batch := range []int{1, 32} {
		b.Run(fmt.Sprint("batch=", batch), func(b *testing.B) {
			rc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				b.Fatal(err)
			}
			defer rc.Close()
			rc.SetReadBuffer(4 << 20)
			go func() {
				buf := make([]byte, 1500)
				for {
					if _, err := rc.Read(buf); err != nil {
						return
					}
				}
			}()
			sc, err := net.DialUDP("udp4", nil, rc.LocalAddr().(*net.UDPAddr))
			if err != nil {
				b.Fatal(err)
			}
			defer sc.Close()
			pc := ipv4.NewPacketConn(sc)
			msgs := make([]ipv4.Message, batch)
			pkt := make([]byte, 1000)
			for i := range msgs {
				msgs[i].Buffers = [][]byte{pkt}
			}
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			cpu0 := threadCPU()
			b.SetBytes(int64(len(pkt)))
			for b.Loop() {
				if batch == 1 {
					sc.Write(pkt)
					continue
				}
				// b.N is rounded to a whole number of batches.
				pc.WriteBatch(msgs, 0)
			}
			n := b.N
			if batch > 1 {
				n *= batch
			}
			b.ReportMetric(float64(threadCPU()-cpu0)/float64(n), "cpu-ns/pkt")
		})
	}
}

// threadCPU returns the CPU time, in nanoseconds, of the calling thread.
func threadCPU() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(1 /* RUSAGE_THREAD */, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// BenchmarkCallSetup measures a call's set-up on loopback, from the
// invitation (an MLS application message) to the callee's first
// decrypted frame.
func BenchmarkCallSetup(b *testing.B) {
	h := newHarness(b, Options{})
	ps := h.newMembers(2)
	caller, callee := ps[0], ps[1]
	ctx := context.Background()
	var total time.Duration
	n := 0
	for b.Loop() {
		h.callID = fmt.Sprint("setup-", n)
		n++
		caller.join(ctx, nil)
		stop := make(chan struct{})
		go pump(caller.call.Audio(), 20*time.Millisecond, 960, 120, stop)

		start := time.Now()
		invite, err := caller.group.Encrypt([]byte(`{"call":"`+h.callID+`"}`), nil)
		if err != nil {
			b.Fatal(err)
		}
		data, _ := invite.Marshal()
		m, _ := mls.UnmarshalMLSMessage(data)
		if _, err := callee.group.Process(m); err != nil {
			b.Fatal(err)
		}
		first := make(chan time.Time, 1)
		callee.join(ctx, func(r *call.Remote) {
			if r.Kind.String() != "audio" {
				return
			}
			go func() {
				if _, err := r.ReadFrame(); err == nil {
					first <- time.Now()
				}
			}()
		})
		select {
		case at := <-first:
			total += at.Sub(start)
		case <-time.After(10 * time.Second):
			b.Fatal("no frame")
		}
		close(stop)
		callee.call.Leave(ctx)
		caller.call.Leave(ctx)
	}
	b.ReportMetric(float64(total.Microseconds())/1000/float64(n), "ms-to-first-frame")
}

// BenchmarkRekey measures the switch to new keys after a removal: from
// the commit that removes a member (not in the call) to the first frame a
// remaining participant decrypts under the new epoch.
func BenchmarkRekey(b *testing.B) {
	const spare = 64
	h := newHarness(b, Options{})
	ps := h.newMembers(2 + spare)
	sender, receiver := ps[0], ps[1]
	ctx := context.Background()
	frames := make(chan call.Frame, 1024)
	sender.join(ctx, nil)
	receiver.join(ctx, func(r *call.Remote) {
		if r.Kind.String() != "audio" {
			return
		}
		go func() {
			for {
				f, err := r.ReadFrame()
				if err != nil {
					return
				}
				frames <- f
			}
		}()
	})
	h.settle(ps[:2])
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for ts := uint32(0); ; ts += 240 {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			sender.call.Audio().WriteFrame(fmt.Appendf([]byte{opusTOC}, "epoch %d", sender.keys.Epoch()), ts)
		}
	}()
	next := 2
	var total time.Duration
	for b.Loop() {
		if next >= len(ps) {
			b.Fatal("out of members to remove")
		}
		start := time.Now()
		h.remove([]*participant{sender, receiver}, ps[next])
		want := fmt.Sprintf("epoch %d", sender.keys.Epoch())
		for f := range frames {
			if string(f.Data[1:]) == want {
				break
			}
		}
		total += time.Since(start)
		next++
	}
	b.ReportMetric(float64(total.Microseconds())/1000/float64(next-2), "ms-to-new-epoch-frame")
}
