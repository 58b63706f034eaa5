package call

import (
	"bytes"
	"encoding/binary"
	"io"
	"slices"
	"testing"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4/pkg/media/oggwriter"
)

// oggPage builds an Ogg page of stream serial holding segments, the way
// an encoder lays several packets, or part of one, on a page.
func oggPage(serial, seq uint32, flags byte, lacing []byte, body []byte) []byte {
	h := make([]byte, 27, 27+len(lacing)+len(body))
	copy(h, "OggS")
	h[5] = flags
	binary.LittleEndian.PutUint32(h[14:], serial)
	binary.LittleEndian.PutUint32(h[18:], seq)
	h[26] = byte(len(lacing))
	h = append(h, lacing...)
	h = append(h, body...)
	binary.LittleEndian.PutUint32(h[22:], oggCRC(oggCRCTable(), 0, h))
	return h
}

func TestOpusReaderLacing(t *testing.T) {
	head := []byte("OpusHead\x01\x02\x38\x01\x80\xbb\x00\x00\x00\x00\x00")
	tags := []byte("OpusTags\x04\x00\x00\x00hush\x00\x00\x00\x00")
	p1, p2 := bytes.Repeat([]byte{0xf8, 1}, 50), []byte{0xf8, 2, 3}
	big := bytes.Repeat([]byte{0xf8, 9, 8, 7}, 200) // 800 bytes: spans two pages
	var f bytes.Buffer
	f.Write(oggPage(7, 0, 0x02, []byte{byte(len(head))}, head))
	f.Write(oggPage(9, 0, 0x02, []byte{3}, []byte("xyz"))) // another stream: skipped
	f.Write(oggPage(7, 1, 0, []byte{byte(len(tags))}, tags))
	// Two packets and the start of a third on one page...
	f.Write(oggPage(7, 2, 0, []byte{100, 3, 255, 255}, slices.Concat(p1, p2, big[:510])))
	// ...which ends on the next.
	f.Write(oggPage(7, 3, 0x01|0x04, []byte{255, 35}, big[510:]))

	o, err := NewOpusReader(&f)
	if err != nil {
		t.Fatal(err)
	}
	if o.Head.Channels != 2 || o.Head.SampleRate != 48000 {
		t.Fatalf("head: %+v", o.Head)
	}
	for _, want := range [][]byte{p1, p2, big} {
		got, err := o.ReadPacket()
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("packet of %d bytes (%v), want %d", len(got), err, len(want))
		}
	}
	if _, err := o.ReadPacket(); err != io.EOF {
		t.Fatalf("after the last packet: %v", err)
	}
}

func TestOpusReaderReadsOggWriter(t *testing.T) {
	var f bytes.Buffer
	w, err := oggwriter.NewWith(&f, 48000, 2)
	if err != nil {
		t.Fatal(err)
	}
	var want [][]byte
	for i := range 20 {
		p := bytes.Repeat([]byte{0xf8, byte(i)}, 1+i*30)
		want = append(want, p)
		if err := w.WriteRTP(&rtp.Packet{Payload: p}); err != nil {
			t.Fatal(err)
		}
	}
	o, err := NewOpusReader(&f)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range want {
		got, err := o.ReadPacket()
		if err != nil || !bytes.Equal(got, p) {
			t.Fatalf("got %d bytes (%v), want %d", len(got), err, len(p))
		}
	}
}

func TestOpusReaderRejectsCorruption(t *testing.T) {
	head := []byte("OpusHead\x01\x02\x38\x01\x80\xbb\x00\x00\x00\x00\x00")
	page := oggPage(7, 0, 0x02, []byte{byte(len(head))}, head)
	page[30] ^= 1
	if _, err := NewOpusReader(bytes.NewReader(page)); err == nil {
		t.Fatal("corrupted page accepted")
	}
}

func TestOpusSamples(t *testing.T) {
	for _, c := range []struct {
		p    []byte
		want uint32
	}{
		{[]byte{0xf8}, 960},        // CELT FB 20 ms, one frame
		{[]byte{0xf9}, 1920},       // two frames
		{[]byte{0xfb, 0x03}, 2880}, // code 3, three frames
		{[]byte{0x08}, 960},        // SILK NB 20 ms
		{[]byte{0x18}, 2880},       // SILK NB 60 ms
		{[]byte{0x70}, 480},        // hybrid FB 10 ms
		{[]byte{0xe0}, 120},        // CELT FB 2.5 ms
		{nil, 0},
	} {
		if got := opusSamples(c.p); got != c.want {
			t.Errorf("opusSamples(% x) = %d, want %d", c.p, got, c.want)
		}
	}
}

func TestIVFRoundTrip(t *testing.T) {
	var f bytes.Buffer
	w, err := NewIVFWriter(&f, IVFHeader{FourCC: "VP80", Width: 64, Height: 48, Numerator: 1, Denominator: 90000})
	if err != nil {
		t.Fatal(err)
	}
	want := [][]byte{{1, 2, 3}, {}, bytes.Repeat([]byte{7}, 5000)}
	for i, fr := range want {
		if err := w.WriteFrame(fr, uint64(i*3000)); err != nil {
			t.Fatal(err)
		}
	}
	r, err := NewIVFReader(&f)
	if err != nil {
		t.Fatal(err)
	}
	if r.Header.Width != 64 || r.Header.Denominator != 90000 || r.Header.FourCC != "VP80" {
		t.Fatalf("header %+v", r.Header)
	}
	for i, fr := range want {
		got, ts, err := r.ReadFrame()
		if err != nil || !bytes.Equal(got, fr) || ts != uint64(i*3000) {
			t.Fatalf("frame %d: %d bytes at %d (%v)", i, len(got), ts, err)
		}
	}
	if _, _, err := r.ReadFrame(); err != io.EOF {
		t.Fatalf("after the last frame: %v", err)
	}
}

func FuzzOpusReader(f *testing.F) {
	head := []byte("OpusHead\x01\x02\x38\x01\x80\xbb\x00\x00\x00\x00\x00")
	tags := []byte("OpusTags\x04\x00\x00\x00hush\x00\x00\x00\x00")
	f.Add(slices.Concat(
		oggPage(7, 0, 0x02, []byte{byte(len(head))}, head),
		oggPage(7, 1, 0, []byte{byte(len(tags))}, tags),
		oggPage(7, 2, 0, []byte{2, 255}, bytes.Repeat([]byte{0xf8}, 257)),
		oggPage(7, 3, 0x01, []byte{1}, []byte{1}),
	))
	f.Fuzz(func(t *testing.T, data []byte) {
		o, err := NewOpusReader(bytes.NewReader(data))
		if err != nil {
			return
		}
		total := 0
		for {
			p, err := o.ReadPacket()
			if err != nil {
				return
			}
			total += len(p)
			if total > len(data) {
				t.Fatal("read more than the input")
			}
		}
	})
}

func FuzzIVFReader(f *testing.F) {
	var b bytes.Buffer
	w, _ := NewIVFWriter(&b, IVFHeader{FourCC: "VP80", Numerator: 1, Denominator: 30})
	w.WriteFrame([]byte{1, 2, 3}, 0)
	f.Add(b.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := NewIVFReader(bytes.NewReader(data))
		if err != nil {
			return
		}
		for {
			if _, _, err := r.ReadFrame(); err != nil {
				return
			}
		}
	})
}
