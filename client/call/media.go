package call

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media/oggwriter"
)

// Publish sends an Ogg Opus stream as the call's audio and an IVF (VP8)
// stream as its video, each frame at its time from the start, as a live
// source would, until both end or ctx is done. Either reader may be nil.
// Call it once the call has connected: earlier frames are dropped.
func Publish(ctx context.Context, c *Call, audio, video io.Reader) error {
	start := time.Now()
	errs := make(chan error, 2)
	n := 0
	if audio != nil {
		n++
		go func() { errs <- publishAudio(ctx, c.Audio(), audio, start) }()
	}
	if video != nil {
		n++
		go func() { errs <- publishVideo(ctx, c.Video(), video, start) }()
	}
	var first error
	for range n {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

func publishAudio(ctx context.Context, s *Sender, r io.Reader, start time.Time) error {
	o, err := NewOpusReader(r)
	if err != nil {
		return err
	}
	var ts uint64 // in 48 kHz samples, Opus's RTP clock
	for {
		p, err := o.ReadPacket()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		d := opusSamples(p)
		if d == 0 {
			return fmt.Errorf("%w: Opus packet without a duration", ErrOgg)
		}
		if err := sleepUntil(ctx, start.Add(time.Duration(ts)*time.Second/48000)); err != nil {
			return err
		}
		if err := s.WriteFrame(p, uint32(ts)); err != nil {
			return err
		}
		ts += uint64(d)
	}
}

func publishVideo(ctx context.Context, s *Sender, r io.Reader, start time.Time) error {
	v, err := NewIVFReader(r)
	if err != nil {
		return err
	}
	if v.Header.FourCC != "VP80" {
		return fmt.Errorf("%w: codec %q, want VP80", ErrIVF, v.Header.FourCC)
	}
	num, den := uint64(v.Header.Numerator), uint64(v.Header.Denominator)
	for {
		f, pts, err := v.ReadFrame()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := sleepUntil(ctx, start.Add(time.Duration(pts*num)*time.Second/time.Duration(den))); err != nil {
			return err
		}
		if err := s.WriteFrame(f, uint32(pts*num*90000/den)); err != nil {
			return err
		}
	}
}

func sleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}

// Record writes a remote stream to a new file in dir until the stream
// ends, and returns the file's name: the device's id with ".ogg" for
// audio (Ogg Opus, one packet per page) or ".ivf" for video (IVF with a
// 90 kHz timebase), and "-2", "-3"... before the extension if the name is
// taken. Each frame is written exactly as it was sent, after decryption.
func Record(dir string, r *Remote) (string, error) {
	ext := ".ogg"
	if r.Kind == webrtc.RTPCodecTypeVideo {
		ext = ".ivf"
	}
	f, name, err := createUnique(dir, fileName(r.Device), ext)
	if err != nil {
		return "", err
	}
	if r.Kind == webrtc.RTPCodecTypeVideo {
		err = recordVideo(f, r)
		err = errors.Join(err, f.Close())
	} else {
		f.Close()
		err = recordAudio(name, r)
	}
	return name, err
}

func recordAudio(name string, r *Remote) error {
	w, err := oggwriter.New(name, 48000, 2)
	if err != nil {
		return err
	}
	for {
		fr, err := r.ReadFrame()
		if err != nil {
			return errors.Join(endOfStream(err), w.Close())
		}
		if err := w.WriteRTP(&rtp.Packet{Header: rtp.Header{Timestamp: fr.Timestamp}, Payload: fr.Data}); err != nil {
			return errors.Join(err, w.Close())
		}
	}
}

func recordVideo(f *os.File, r *Remote) error {
	var (
		w     *IVFWriter
		first uint32
	)
	for {
		fr, err := r.ReadFrame()
		if err != nil {
			err = endOfStream(err)
			if w != nil {
				err = errors.Join(err, w.Close())
			}
			return err
		}
		if w == nil {
			width, height := vp8Size(fr.Data)
			w, err = NewIVFWriter(f, IVFHeader{FourCC: "VP80", Width: width, Height: height, Numerator: 1, Denominator: 90000})
			if err != nil {
				return err
			}
			first = fr.Timestamp
		}
		if err := w.WriteFrame(fr.Data, uint64(fr.Timestamp-first)); err != nil {
			return errors.Join(err, w.Close())
		}
	}
}

// endOfStream maps the end of a remote track to a nil error.
func endOfStream(err error) error {
	if errors.Is(err, io.EOF) {
		return nil
	}
	return err
}

// vp8Size returns the picture size a VP8 keyframe announces (RFC 6386
// §9.1), or zeros for any other frame.
func vp8Size(f []byte) (width, height uint16) {
	if len(f) < 10 || f[0]&1 != 0 || f[3] != 0x9d || f[4] != 0x01 || f[5] != 0x2a {
		return 0, 0
	}
	return binary.LittleEndian.Uint16(f[6:]) & 0x3fff, binary.LittleEndian.Uint16(f[8:]) & 0x3fff
}

// fileName makes a device id safe as a file name.
func fileName(device string) string {
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
			return r
		}
		return '_'
	}, device)
	if name == "" || strings.Trim(name, ".") == "" {
		name = "device"
	}
	return name
}

func createUnique(dir, base, ext string) (*os.File, string, error) {
	for i := 1; ; i++ {
		name := filepath.Join(dir, base+ext)
		if i > 1 {
			name = filepath.Join(dir, fmt.Sprintf("%s-%d%s", base, i, ext))
		}
		f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, os.ErrExist) {
			continue
		}
		return f, name, err
	}
}
