package call

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/pion/webrtc/v4/pkg/media/oggreader"
)

// ErrOgg is returned for a malformed Ogg Opus file.
var ErrOgg = errors.New("call: malformed Ogg Opus stream")

// maxOpusPacket bounds an Opus packet read from a file: 120 ms of the
// highest bitrate with room to spare.
const maxOpusPacket = 64 << 10

// OpusReader reads the Opus packets of an Ogg Opus file (RFC 7845) one by
// one, exactly as they were stored: it follows the Ogg lacing values, so
// that pages holding several packets, and packets spanning pages, come
// out whole. It reads the first logical stream and skips any other.
type OpusReader struct {
	r       *bufio.Reader
	serial  uint32
	started bool
	partial []byte   // a packet continued on the next page
	ready   [][]byte // packets complete on pages read so far
	crc     *[256]uint32

	// Head is the stream's identification header.
	Head *oggreader.OggHeader
}

// NewOpusReader reads the identification and comment headers of an Ogg
// Opus stream.
func NewOpusReader(r io.Reader) (*OpusReader, error) {
	o := &OpusReader{r: bufio.NewReader(r), crc: oggCRCTable()}
	head, err := o.ReadPacket()
	if err != nil {
		return nil, fmt.Errorf("%w: no OpusHead: %v", ErrOgg, err)
	}
	if !bytes.HasPrefix(head, []byte("OpusHead")) {
		return nil, fmt.Errorf("%w: no OpusHead", ErrOgg)
	}
	if o.Head, err = oggreader.ParseOpusHead(head); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrOgg, err)
	}
	tags, err := o.ReadPacket()
	if err != nil || !bytes.HasPrefix(tags, []byte("OpusTags")) {
		return nil, fmt.Errorf("%w: no OpusTags", ErrOgg)
	}
	return o, nil
}

// ReadPacket returns the next packet, or io.EOF after the last.
func (o *OpusReader) ReadPacket() ([]byte, error) {
	for len(o.ready) == 0 {
		if err := o.readPage(); err != nil {
			if err == io.EOF && len(o.partial) > 0 {
				return nil, fmt.Errorf("%w: truncated packet", ErrOgg)
			}
			return nil, err
		}
	}
	p := o.ready[0]
	o.ready = o.ready[1:]
	return p, nil
}

// readPage reads one page of the stream and splits it into packets.
func (o *OpusReader) readPage() error {
	var h [27]byte
	if _, err := io.ReadFull(o.r, h[:]); err != nil {
		if err == io.ErrUnexpectedEOF {
			return fmt.Errorf("%w: truncated page", ErrOgg)
		}
		return err
	}
	if string(h[:4]) != "OggS" || h[4] != 0 {
		return fmt.Errorf("%w: bad page header", ErrOgg)
	}
	lacing := make([]byte, h[26])
	if _, err := io.ReadFull(o.r, lacing); err != nil {
		return fmt.Errorf("%w: truncated page", ErrOgg)
	}
	size := 0
	for _, l := range lacing {
		size += int(l)
	}
	body := make([]byte, size)
	if _, err := io.ReadFull(o.r, body); err != nil {
		return fmt.Errorf("%w: truncated page", ErrOgg)
	}
	want := binary.LittleEndian.Uint32(h[22:26])
	clear(h[22:26])
	crc := oggCRC(o.crc, 0, h[:])
	crc = oggCRC(o.crc, crc, lacing)
	if oggCRC(o.crc, crc, body) != want {
		return fmt.Errorf("%w: page checksum mismatch", ErrOgg)
	}

	serial := binary.LittleEndian.Uint32(h[14:18])
	if !o.started {
		if h[5]&0x02 == 0 {
			return fmt.Errorf("%w: stream does not begin with a BOS page", ErrOgg)
		}
		o.serial, o.started = serial, true
	}
	if serial != o.serial {
		return nil
	}
	if h[5]&0x01 == 0 && len(o.partial) > 0 {
		return fmt.Errorf("%w: packet not continued", ErrOgg)
	}
	if h[5]&0x01 != 0 && len(o.partial) == 0 {
		// A continued packet whose start we never saw: skip its rest.
		for len(lacing) > 0 && lacing[0] == 255 {
			body, lacing = body[255:], lacing[1:]
		}
		if len(lacing) > 0 {
			body, lacing = body[lacing[0]:], lacing[1:]
		}
	}
	for _, l := range lacing {
		o.partial = append(o.partial, body[:l]...)
		body = body[l:]
		if len(o.partial) > maxOpusPacket {
			return fmt.Errorf("%w: packet too large", ErrOgg)
		}
		if l < 255 {
			o.ready = append(o.ready, o.partial)
			o.partial = nil
		}
	}
	return nil
}

// oggCRCTable returns the table of Ogg's CRC-32 (polynomial 0x04c11db7,
// not reflected, no final XOR).
func oggCRCTable() *[256]uint32 {
	var t [256]uint32
	for i := range t {
		r := uint32(i) << 24
		for range 8 {
			if r&0x80000000 != 0 {
				r = r<<1 ^ 0x04c11db7
			} else {
				r <<= 1
			}
		}
		t[i] = r
	}
	return &t
}

func oggCRC(t *[256]uint32, crc uint32, b []byte) uint32 {
	for _, v := range b {
		crc = crc<<8 ^ t[byte(crc>>24)^v]
	}
	return crc
}

// opusSamples returns the duration of an Opus packet in 48 kHz samples,
// from its TOC byte and frame count (RFC 6716 §3.1), or 0 for a packet
// too short to tell.
func opusSamples(p []byte) uint32 {
	if len(p) == 0 {
		return 0
	}
	toc := p[0]
	var frames uint32
	switch toc & 0x03 {
	case 0:
		frames = 1
	case 1, 2:
		frames = 2
	default:
		if len(p) < 2 {
			return 0
		}
		frames = uint32(p[1] & 0x3f)
	}
	config := toc >> 3
	var per uint32 // samples per frame at 48 kHz
	switch {
	case config < 12: // SILK: 10, 20, 40, 60 ms
		per = [4]uint32{480, 960, 1920, 2880}[config&3]
	case config < 16: // hybrid: 10, 20 ms
		per = [2]uint32{480, 960}[config&1]
	default: // CELT: 2.5, 5, 10, 20 ms
		per = [4]uint32{120, 240, 480, 960}[config&3]
	}
	return per * frames
}
