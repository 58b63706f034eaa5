package rtc

import (
	"testing"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"
)

// TestReuseAttributes checks that the receive interceptors behind
// reuseAttributes see each packet's own header, and that reading a packet
// allocates nothing once the stream's first packet is read.
func TestReuseAttributes(t *testing.T) {
	var next []byte
	base := interceptor.RTPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		return copy(b, next), a, nil
	})
	r := (&reuseAttributes{}).BindRemoteStream(&interceptor.StreamInfo{SSRC: 1}, base)
	// An interceptor behind it, as pion's NACK generator reads headers.
	var seen *rtp.Header
	outer := interceptor.RTPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		n, attr, err := r.Read(b, a)
		if err != nil {
			return 0, nil, err
		}
		if attr == nil {
			t.Fatal("no attributes")
		}
		if seen, err = attr.GetRTPHeader(b[:n]); err != nil {
			return 0, nil, err
		}
		return n, attr, nil
	})
	buf := make([]byte, 1500)
	pkt := &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SSRC: 1, Marker: true}, Payload: make([]byte, 100)}
	for seq := range uint16(5) {
		pkt.SequenceNumber, pkt.Timestamp = 1000+seq, 90*uint32(seq)
		pkt.Marker = seq%2 == 0
		var err error
		if next, err = pkt.Marshal(); err != nil {
			t.Fatal(err)
		}
		if _, _, err := outer.Read(buf, nil); err != nil {
			t.Fatal(err)
		}
		if seen.SequenceNumber != pkt.SequenceNumber || seen.Timestamp != pkt.Timestamp || seen.Marker != pkt.Marker {
			t.Fatalf("packet %d: header seq %d ts %d marker %v, want %d %d %v", seq, seen.SequenceNumber, seen.Timestamp, seen.Marker, pkt.SequenceNumber, pkt.Timestamp, pkt.Marker)
		}
	}
	if a := testing.AllocsPerRun(100, func() {
		if _, _, err := outer.Read(buf, nil); err != nil {
			t.Fatal(err)
		}
	}); a != 0 {
		t.Errorf("%v allocations per packet read, want 0", a)
	}
	// A packet that is not RTP is an error, as it is for pion's interceptors.
	next = []byte{0x80}
	if _, _, err := outer.Read(buf, nil); err == nil {
		t.Error("read a 1-byte packet without error")
	}
}
