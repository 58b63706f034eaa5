package call

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/pion/rtp"
)

func frames(rng *rand.Rand, n int) [][]byte {
	var fs [][]byte
	for i := range n {
		size := 1 + rng.IntN(300) // SFrame ciphertexts are never empty
		if i%5 == 0 {
			size = 3 * maxPayload // several packets
		}
		f := make([]byte, size)
		for j := range f {
			f[j] = byte(rng.Uint32())
		}
		fs = append(fs, f)
	}
	return fs
}

func packetizeAll(fs [][]byte, seq uint16) []*rtp.Packet {
	p := packetizer{seq: seq}
	var pkts []*rtp.Packet
	for i, f := range fs {
		pkts = append(pkts, p.packetize(f, uint32(i*3000), true)...)
	}
	return pkts
}

func depacketizeAll(pkts []*rtp.Packet, step time.Duration) [][]byte {
	return depacketizeKind(pkts, step, true)
}

func depacketizeKind(pkts []*rtp.Packet, step time.Duration, video bool) [][]byte {
	d := newDepacketizer(defaultMaxDelay, video)
	now := time.Unix(0, 0)
	var out []encodedFrame
	for _, p := range pkts {
		out = d.push(out, p, now)
		now = now.Add(step)
	}
	var fs [][]byte
	for _, f := range out {
		fs = append(fs, f.data)
	}
	return fs
}

func TestPacketizeRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	fs := frames(rng, 40)
	pkts := packetizeAll(fs, 65500) // sequence numbers wrap
	for _, p := range pkts {
		if b, err := p.Marshal(); err != nil || len(b) > maxPacketSize {
			t.Fatalf("packet of %d bytes: %v", len(b), err)
		}
	}
	if got := depacketizeAll(pkts, time.Millisecond); !slices.EqualFunc(got, fs, bytes.Equal) {
		t.Fatalf("got %d frames back of %d", len(got), len(fs))
	}
}

func TestDepacketizeReorderAndDuplicates(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	fs := frames(rng, 30)
	pkts := packetizeAll(fs, 100)
	// After the first packet, swap neighbours and repeat some packets.
	mixed := []*rtp.Packet{pkts[0]}
	for i := 1; i+1 < len(pkts); i += 2 {
		mixed = append(mixed, pkts[i+1], pkts[i], pkts[i])
	}
	if len(pkts)%2 == 0 {
		mixed = append(mixed, pkts[len(pkts)-1])
	}
	if got := depacketizeAll(mixed, time.Millisecond); !slices.EqualFunc(got, fs, bytes.Equal) {
		t.Fatalf("got %d frames back of %d", len(got), len(fs))
	}
}

func TestDepacketizeLoss(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	fs := frames(rng, 30)
	pkts := packetizeAll(fs, 0)
	// Lose the second packet of frame 5 (a multi-packet frame).
	lost := 0
	for i, p := range pkts {
		if p.Timestamp == 5*3000 {
			lost = i + 1
			break
		}
	}
	pkts = slices.Delete(pkts, lost, lost+1)
	want := slices.Delete(slices.Clone(fs), 5, 6)

	// Fast packets: frame 5 holds the rest back until MaxDelay passes.
	if got := depacketizeAll(pkts, 20*time.Millisecond); !slices.EqualFunc(got, want, bytes.Equal) {
		t.Fatalf("got %d frames back, want %d", len(got), len(want))
	}
}

func TestDepacketizeJoinMidFrame(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	fs := frames(rng, 11)
	pkts := packetizeAll(fs, 0)
	got := depacketizeAll(pkts[1:], time.Millisecond) // frame 0 spans three packets
	if !slices.EqualFunc(got, fs[1:], bytes.Equal) {
		t.Fatalf("got %d frames back, want %d", len(got), len(fs)-1)
	}
}

func packetizeAudio(fs [][]byte, seq uint16) []*rtp.Packet {
	p := packetizer{seq: seq}
	var pkts []*rtp.Packet
	for i, f := range fs {
		pkts = append(pkts, p.packetize(f, uint32(i*960), false)...)
	}
	return pkts
}

// TestPacketizeFormats checks the codecs' own payload formats: one Opus
// frame per packet, as is; VP8 behind the RFC 7741 descriptor, S on the
// first packet only, the marker bit on the last only.
func TestPacketizeFormats(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	fs := frames(rng, 10)
	audio := packetizeAudio(fs, 7)
	if len(audio) != len(fs) {
		t.Fatalf("%d audio packets for %d frames", len(audio), len(fs))
	}
	for i, p := range audio {
		if !bytes.Equal(p.Payload, fs[i]) || p.Marker || p.SequenceNumber != uint16(7+i) {
			t.Fatalf("audio packet %d is not its frame as is", i)
		}
	}
	p := packetizer{}
	big := fs[0] // 3*maxPayload bytes
	pkts := p.packetize(big, 1234, true)
	if len(pkts) != 4 {
		t.Fatalf("%d packets for a frame of %d bytes", len(pkts), len(big))
	}
	var joined []byte
	for i, pk := range pkts {
		wantDesc := byte(0)
		if i == 0 {
			wantDesc = 0x10
		}
		if pk.Payload[0] != wantDesc || pk.Marker != (i == len(pkts)-1) || pk.Timestamp != 1234 {
			t.Fatalf("packet %d: descriptor %#x marker %v", i, pk.Payload[0], pk.Marker)
		}
		joined = append(joined, pk.Payload[1:]...)
	}
	if !bytes.Equal(joined, big) {
		t.Fatal("the fragments do not make the frame")
	}
}

func TestDepacketizeAudio(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	fs := frames(rng, 30)
	pkts := packetizeAudio(fs, 65530)
	// Swap neighbours and repeat some: audio frames come out in order.
	mixed := []*rtp.Packet{pkts[0]}
	for i := 1; i+1 < len(pkts); i += 2 {
		mixed = append(mixed, pkts[i+1], pkts[i], pkts[i])
	}
	if len(pkts)%2 == 0 {
		mixed = append(mixed, pkts[len(pkts)-1])
	}
	if got := depacketizeKind(mixed, time.Millisecond, false); !slices.EqualFunc(got, fs, bytes.Equal) {
		t.Fatalf("got %d frames back of %d", len(got), len(fs))
	}
}

// TestDepacketizeLostEnd loses a video frame's last packet, the one
// with the marker bit: the frame is skipped once MaxDelay has passed, and
// the frames after it come out whole.
func TestDepacketizeLostEnd(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 16))
	fs := frames(rng, 11) // frame 5 spans four packets
	pkts := packetizeAll(fs, 0)
	for i, p := range pkts {
		if p.Timestamp == 5*3000 && p.Marker {
			pkts = slices.Delete(pkts, i, i+1)
			break
		}
	}
	want := slices.Delete(slices.Clone(fs), 5, 6)
	if got := depacketizeAll(pkts, 20*time.Millisecond); !slices.EqualFunc(got, want, bytes.Equal) {
		t.Fatalf("got %d frames back, want %d", len(got), len(want))
	}
}

// FuzzDepacketize feeds arbitrary packets to the depacketizer, of a
// video or an audio stream: it must not panic, must bound what it holds,
// and the frames it returns must not hold more bytes than the payloads
// it was given. The seeds are in testdata/fuzz/FuzzDepacketize.
func FuzzDepacketize(f *testing.F) {
	f.Fuzz(func(t *testing.T, video bool, data []byte) {
		d := newDepacketizer(defaultMaxDelay, video)
		now := time.Unix(0, 0)
		var total int
		for len(data) >= 2 {
			n := int(data[0])<<8 | int(data[1])
			data = data[2:]
			if n > len(data) {
				return
			}
			var p rtp.Packet
			if p.Unmarshal(data[:n]) == nil {
				total += len(p.Payload)
				for _, fr := range d.push(nil, &p, now) {
					total -= len(fr.data)
				}
				if len(d.held) > maxHeld {
					t.Fatalf("holds %d packets", len(d.held))
				}
			}
			if total < 0 {
				t.Fatal("frames longer than the payloads given")
			}
			data = data[n:]
			now = now.Add(time.Duration(len(data)%50) * time.Millisecond)
		}
	})
}
