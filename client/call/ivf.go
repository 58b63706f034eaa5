package call

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// ErrIVF is returned for a malformed IVF file.
var ErrIVF = errors.New("call: malformed IVF stream")

// maxIVFFrame bounds a frame read from an IVF file.
const maxIVFFrame = 8 << 20

// IVFHeader is the header of an IVF file: the codec, the picture size
// and the timebase, in seconds per timestamp unit (Numerator/Denominator).
//
//	bytes 0-3   "DKIF"
//	      4-5   version (0)
//	      6-7   header length (32)
//	      8-11  FourCC ("VP80")
//	     12-13  width
//	     14-15  height
//	     16-19  timebase denominator
//	     20-23  timebase numerator
//	     24-27  frame count
//	     28-31  unused
//
// Each frame follows as a 4-byte size, an 8-byte timestamp and the frame;
// all integers are little-endian.
type IVFHeader struct {
	FourCC                 string
	Width, Height          uint16
	Numerator, Denominator uint32
	Frames                 uint32
}

const ivfHeaderLen = 32

// IVFReader reads the frames of an IVF file.
type IVFReader struct {
	r      io.Reader
	Header IVFHeader
}

// NewIVFReader reads an IVF file header.
func NewIVFReader(r io.Reader) (*IVFReader, error) {
	var h [ivfHeaderLen]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrIVF, err)
	}
	if string(h[:4]) != "DKIF" || binary.LittleEndian.Uint16(h[6:]) != ivfHeaderLen {
		return nil, fmt.Errorf("%w: bad header", ErrIVF)
	}
	hdr := IVFHeader{
		FourCC:      string(h[8:12]),
		Width:       binary.LittleEndian.Uint16(h[12:]),
		Height:      binary.LittleEndian.Uint16(h[14:]),
		Denominator: binary.LittleEndian.Uint32(h[16:]),
		Numerator:   binary.LittleEndian.Uint32(h[20:]),
		Frames:      binary.LittleEndian.Uint32(h[24:]),
	}
	if hdr.Numerator == 0 || hdr.Denominator == 0 {
		return nil, fmt.Errorf("%w: zero timebase", ErrIVF)
	}
	return &IVFReader{r: r, Header: hdr}, nil
}

// ReadFrame returns the next frame and its timestamp, or io.EOF after the
// last frame.
func (v *IVFReader) ReadFrame() ([]byte, uint64, error) {
	var h [12]byte
	if _, err := io.ReadFull(v.r, h[:]); err != nil {
		if err == io.ErrUnexpectedEOF {
			return nil, 0, fmt.Errorf("%w: truncated frame header", ErrIVF)
		}
		return nil, 0, err
	}
	n := binary.LittleEndian.Uint32(h[:4])
	if n > maxIVFFrame {
		return nil, 0, fmt.Errorf("%w: frame of %d bytes", ErrIVF, n)
	}
	f := make([]byte, n)
	if _, err := io.ReadFull(v.r, f); err != nil {
		return nil, 0, fmt.Errorf("%w: truncated frame", ErrIVF)
	}
	return f, binary.LittleEndian.Uint64(h[4:]), nil
}

// IVFWriter writes an IVF file.
type IVFWriter struct {
	w      io.Writer
	frames uint32
}

// NewIVFWriter writes h (its Frames field aside) and returns a writer
// for the frames. If w is an io.WriteSeeker, Close records the frame
// count in the header.
func NewIVFWriter(w io.Writer, h IVFHeader) (*IVFWriter, error) {
	if len(h.FourCC) != 4 || h.Numerator == 0 || h.Denominator == 0 {
		return nil, errors.New("call: IVF header needs a FourCC and a timebase")
	}
	var b [ivfHeaderLen]byte
	copy(b[:], "DKIF")
	binary.LittleEndian.PutUint16(b[6:], ivfHeaderLen)
	copy(b[8:], h.FourCC)
	binary.LittleEndian.PutUint16(b[12:], h.Width)
	binary.LittleEndian.PutUint16(b[14:], h.Height)
	binary.LittleEndian.PutUint32(b[16:], h.Denominator)
	binary.LittleEndian.PutUint32(b[20:], h.Numerator)
	if _, err := w.Write(b[:]); err != nil {
		return nil, err
	}
	return &IVFWriter{w: w}, nil
}

// WriteFrame appends a frame with its timestamp, in timebase units.
func (v *IVFWriter) WriteFrame(frame []byte, timestamp uint64) error {
	var h [12]byte
	binary.LittleEndian.PutUint32(h[:4], uint32(len(frame)))
	binary.LittleEndian.PutUint64(h[4:], timestamp)
	if _, err := v.w.Write(h[:]); err != nil {
		return err
	}
	if _, err := v.w.Write(frame); err != nil {
		return err
	}
	v.frames++
	return nil
}

// Close records the frame count in the header when the underlying writer
// can seek. It does not close the underlying writer.
func (v *IVFWriter) Close() error {
	ws, ok := v.w.(io.WriteSeeker)
	if !ok {
		return nil
	}
	end, err := ws.Seek(0, io.SeekCurrent)
	if err != nil {
		return err
	}
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], v.frames)
	if _, err := ws.Seek(24, io.SeekStart); err != nil {
		return err
	}
	if _, err := ws.Write(b[:]); err != nil {
		return err
	}
	_, err = ws.Seek(end, io.SeekStart)
	return err
}
