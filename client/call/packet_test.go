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
		size := rng.IntN(300)
		if i%5 == 0 {
			size = 3 * maxFragment // several packets
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
	d := newDepacketizer(defaultMaxDelay)
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

// FuzzDepacketize feeds arbitrary packets to the depacketizer: it must
// not panic, must bound what it holds, and every frame it returns must be
// the concatenation of fragments it was given.
func FuzzDepacketize(f *testing.F) {
	rng := rand.New(rand.NewPCG(9, 10))
	var seed []byte
	for _, p := range packetizeAll(frames(rng, 6), 65530) {
		b, _ := p.Marshal()
		seed = append(seed, byte(len(b)>>8), byte(len(b)))
		seed = append(seed, b...)
	}
	f.Add(seed)
	f.Add([]byte{0, 13, 0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0xc0})
	f.Fuzz(func(t *testing.T, data []byte) {
		d := newDepacketizer(defaultMaxDelay)
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
