package calls

import (
	"bytes"
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/hush-chat/hush/internal/rtc"
	"github.com/hush-chat/hush/proto"
)

func TestHistory(t *testing.T) {
	var h history
	if _, ok := h.get(7, nil); ok {
		t.Fatal("an empty history holds packet 7")
	}
	// Fewer packets than the history holds, across the wrap of sequence
	// numbers.
	for seq := uint16(65400); seq != 100; seq++ {
		h.put(seq, []byte{byte(seq), byte(seq >> 8)})
	}
	check := func(held, gone []uint16) {
		t.Helper()
		for _, seq := range held {
			got, ok := h.get(seq, nil)
			if !ok || !bytes.Equal(got, []byte{byte(seq), byte(seq >> 8)}) {
				t.Errorf("packet %d: %x, %v", seq, got, ok)
			}
		}
		for _, seq := range gone {
			if got, ok := h.get(seq, nil); ok {
				t.Errorf("packet %d, overwritten or never sent, is held: %x", seq, got)
			}
		}
	}
	check([]uint16{65400, 65535, 0, 99}, []uint16{65399, 100, 7000})
	// More: the oldest are overwritten.
	for seq := uint16(100); seq != 1000; seq++ {
		h.put(seq, []byte{byte(seq), byte(seq >> 8)})
	}
	check([]uint16{999, 1000 - historySize, 700}, []uint16{1000 - historySize - 1, 65535, 1000})
}

// forwarderOf returns the forwarder of a device's track of a kind.
func (h *harness) forwarderOf(device string, kind webrtc.RTPCodecType) *forwarder {
	h.sfu.mu.Lock()
	r := h.sfu.rooms[roomKey{string(h.group), h.callID}]
	h.sfu.mu.Unlock()
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, f := range r.forwarders {
		if f.from.device == device && f.kind == kind {
			return f
		}
	}
	return nil
}

// TestForwardAllocs checks that forwarding a packet to subscribers, down
// to the UDP socket (pion's interceptors, SRTP, ICE), allocates nothing.
func TestForwardAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector empties sync.Pools at random")
	}
	h := newHarness(t, Options{})
	h.sfu.opts.TestHookForward = nil // the harness's copies every payload
	ps := h.newMembers(3)
	ctx := context.Background()
	for _, p := range ps {
		p.join(ctx, nil)
	}
	h.settle(ps)
	// Nobody publishes, so the test alone calls forward.
	f := h.forwarderOf(ps[0].name, webrtc.RTPCodecTypeVideo)
	if f == nil {
		t.Fatal("no forwarder")
	}
	if bs := f.bindings.Load(); bs == nil || len(*bs) != 2 {
		t.Fatalf("bindings: %v, want 2", bs)
	}
	pkt := &rtp.Packet{
		Header:  rtp.Header{Version: 2, PayloadType: rtc.PayloadTypeVP8, SSRC: 1234},
		Payload: bytes.Repeat([]byte{0xa5}, 1000),
	}
	buf := make([]byte, 1500)
	next := func() []byte {
		pkt.SequenceNumber++
		pkt.Timestamp += 450
		n, err := pkt.MarshalTo(buf)
		if err != nil {
			t.Fatal(err)
		}
		return buf[:n]
	}
	for range historySize { // every slot of the history grown
		f.forward(next())
	}
	before := h.sfu.Stats()
	allocs := testing.AllocsPerRun(1000, func() { f.forward(next()) })
	after := h.sfu.Stats()
	if got := after.PacketsOut - before.PacketsOut; got != 2*1001 {
		t.Errorf("%d packets out, want %d", got, 2*1001)
	}
	if allocs != 0 {
		t.Errorf("forwarding a packet to 2 subscribers allocates %v times", allocs)
	}
}

// TestForwardResendsOnNACK checks that the SFU answers a subscriber's
// NACK by sending the packet again, with the subscriber's SSRC and
// payload type, from the forwarder's history (pion's NACK responder is
// kept off the forwarded streams).
func TestForwardResendsOnNACK(t *testing.T) {
	h := newHarness(t, Options{})
	pub := h.newMembers(1)[0]
	ctx := context.Background()
	pub.join(ctx, nil)
	stop := make(chan struct{})
	defer close(stop)
	go pump(pub.call.Audio(), 20*time.Millisecond, 960, 120, stop)

	// The subscriber is a bare pion PeerConnection that keeps duplicate
	// packets (no SRTP replay protection), so that a resend shows.
	m := &webrtc.MediaEngine{}
	nack := []webrtc.RTCPFeedback{{Type: webrtc.TypeRTCPFBNACK}}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: rtc.Opus.MimeType, ClockRate: 48000, Channels: 2, SDPFmtpLine: rtc.Opus.SDPFmtpLine, RTCPFeedback: nack}, PayloadType: rtc.PayloadTypeOpus}, webrtc.RTPCodecTypeAudio); err != nil {
		t.Fatal(err)
	}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: rtc.VP8.MimeType, ClockRate: 90000, RTCPFeedback: nack}, PayloadType: rtc.PayloadTypeVP8}, webrtc.RTPCodecTypeVideo); err != nil {
		t.Fatal(err)
	}
	var se webrtc.SettingEngine
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetIncludeLoopbackCandidate(true)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	se.DisableSRTPReplayProtection(true)
	api := webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithSettingEngine(se), webrtc.WithInterceptorRegistry(&interceptor.Registry{}))
	pc, err := api.NewPeerConnection(webrtc.Configuration{BundlePolicy: webrtc.BundlePolicyMaxBundle})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	tracks := make(chan *webrtc.TrackRemote, 2)
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) { tracks <- tr })

	offers := make(chan *proto.Call, 64)
	sess := h.sfu.Connect("sub", func(c *proto.Call) {
		select {
		case offers <- c:
		default: // the test is over
		}
	})
	defer sess.Close()
	if err := sess.Handle(ctx, &proto.Call{GroupID: h.group, CallID: h.callID, Op: proto.CallJoin}); err != nil {
		t.Fatal(err)
	}
	// The answering goroutine ends before the test does (and before pc
	// closes), so that it reports no error after the test.
	done := make(chan struct{})
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(done)
	wg.Go(func() {
		for {
			var c *proto.Call
			select {
			case <-done:
				return
			case c = <-offers:
			}
			if c.Op != proto.CallOffer {
				continue
			}
			if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: c.SDP}); err != nil {
				t.Error(err)
				return
			}
			a, err := pc.CreateAnswer(nil)
			if err != nil {
				t.Error(err)
				return
			}
			done := webrtc.GatheringCompletePromise(pc)
			if err := pc.SetLocalDescription(a); err != nil {
				t.Error(err)
				return
			}
			<-done
			sdp, err := rtc.MarkSFrame(pc.LocalDescription().SDP)
			if err != nil {
				t.Error(err)
				return
			}
			if err := sess.Handle(ctx, &proto.Call{GroupID: h.group, CallID: h.callID, Op: proto.CallAnswer, SDP: sdp}); err != nil {
				t.Error(err)
				return
			}
		}
	})

	var tr *webrtc.TrackRemote
	for tr == nil {
		select {
		case x := <-tracks:
			if x.Kind() == webrtc.RTPCodecTypeAudio {
				tr = x
			}
		case <-time.After(bound(10 * time.Second)):
			t.Fatal("no audio track")
		}
	}
	type got struct {
		pkt *rtp.Packet
		err error
	}
	pkts := make(chan got, 64)
	go func() {
		for {
			p, _, err := tr.ReadRTP()
			select {
			case pkts <- got{p, err}:
			case <-done:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	read := func() *rtp.Packet {
		select {
		case g := <-pkts:
			if g.err != nil {
				t.Fatal(g.err)
			}
			return g.pkt
		case <-time.After(bound(10 * time.Second)):
			t.Fatal("no packet")
		}
		return nil
	}
	first := read()
	if first.PayloadType != rtc.PayloadTypeOpus || first.SSRC != uint32(tr.SSRC()) {
		t.Fatalf("packet with PT %d SSRC %d, want %d and %d", first.PayloadType, first.SSRC, rtc.PayloadTypeOpus, tr.SSRC())
	}
	if err := pc.WriteRTCP([]rtcp.Packet{&rtcp.TransportLayerNack{
		MediaSSRC: uint32(tr.SSRC()),
		Nacks:     rtcp.NackPairsFromSequenceNumbers([]uint16{first.SequenceNumber}),
	}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(bound(10 * time.Second))
	for {
		select {
		case <-deadline:
			t.Fatal("the lost packet was not sent again")
		default:
		}
		p := read()
		if p.SequenceNumber != first.SequenceNumber {
			continue
		}
		if p.SSRC != first.SSRC || p.PayloadType != first.PayloadType || p.Timestamp != first.Timestamp || !bytes.Equal(p.Payload, first.Payload) {
			t.Fatalf("resent packet differs: %+v, first %+v", p.Header, first.Header)
		}
		break
	}
	// The copy read may also be the publisher's own resend, forwarded, if
	// the SFU's leg lost the packet; the forwarder's shows in its count,
	// which it updates after the write.
	f := h.forwarderOf(pub.name, webrtc.RTPCodecTypeAudio)
	if f == nil {
		t.Fatal("no forwarder")
	}
	for f.resent.Load() == 0 {
		select {
		case <-deadline:
			t.Fatal("the forwarder counted no resend")
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// FuzzForward feeds the forwarding path what a publisher could send: it
// must not panic, and what it forwards is the packet's payload as sent.
func FuzzForward(f *testing.F) {
	for _, p := range []*rtp.Packet{
		{Header: rtp.Header{Version: 2, PayloadType: rtc.PayloadTypeOpus, SequenceNumber: 1, SSRC: 5}, Payload: []byte{0x10, 1, 2, 3}},
		{Header: rtp.Header{Version: 2, Padding: true, Marker: true, PayloadType: rtc.PayloadTypeVP8, SequenceNumber: 65535, CSRC: []uint32{1, 2}}, Payload: []byte{9, 9, 9}, PaddingSize: 4},
	} {
		b, err := p.Marshal()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	ext := &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: rtc.PayloadTypeVP8}, Payload: []byte{1}}
	if err := ext.SetExtension(1, []byte{0xab, 0xcd}); err != nil {
		f.Fatal(err)
	}
	b, err := ext.Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Fuzz(func(t *testing.T, pkt []byte) {
		var seen []byte
		s := &SFU{opts: Options{TestHookForward: func(p Forwarded) { seen = bytes.Clone(p.Payload) }}}
		fw := &forwarder{room: &room{sfu: s, key: roomKey{"g", "c"}}, from: &peer{device: "d"}}
		fw.forward(pkt)
		if s.stats.packetsIn.Load() == 0 {
			if seen != nil {
				t.Fatal("a refused packet reached the hook")
			}
			return
		}
		var h rtp.Header
		n, err := h.Unmarshal(pkt)
		if err != nil || !bytes.Equal(seen, pkt[n:]) {
			t.Fatalf("forwarded %x of %x (%v)", seen, pkt, err)
		}
		if got, ok := fw.hist.get(h.SequenceNumber, nil); !ok || !bytes.Equal(got, pkt) {
			t.Fatalf("history holds %x, want %x", got, pkt)
		}
	})
}

// TestForwardUnbinds checks that a subscriber that leaves stops being
// written to: its binding goes when pion stops its RTPSender.
func TestForwardUnbinds(t *testing.T) {
	h := newHarness(t, Options{})
	ps := h.newMembers(3)
	ctx := context.Background()
	for _, p := range ps {
		p.join(ctx, nil)
	}
	h.settle(ps)
	f := h.forwarderOf(ps[0].name, webrtc.RTPCodecTypeAudio)
	if f == nil {
		t.Fatal("no forwarder")
	}
	count := func() int {
		if p := f.bindings.Load(); p != nil {
			return len(*p)
		}
		return 0
	}
	if n := count(); n != 2 {
		t.Fatalf("%d bindings, want 2", n)
	}
	if err := ps[2].call.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(bound(10 * time.Second))
	for count() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("%d bindings after a subscriber left, want 1", count())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
