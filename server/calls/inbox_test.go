package calls

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/pion/transport/v4/packetio"
)

func TestInbox(t *testing.T) {
	x := newInboxes()
	if _, ok := x.buffer(packetio.RTCPBufferPacket, 7).(*packetio.Buffer); !ok {
		t.Error("an RTCP stream's buffer is not pion's packetio.Buffer")
	}
	if x.attach(7, func() {}) {
		t.Error("attached to an RTCP stream")
	}
	in := x.buffer(packetio.RTPBufferPacket, 7).(*inbox)

	// Before a forwarder attaches, packets are dropped.
	if n, err := in.Write([]byte{1, 2, 3}); n != 3 || err != nil {
		t.Fatalf("Write before attach: %d, %v", n, err)
	}

	var got [][]byte
	var errs []error
	buf := make([]byte, 8)
	if !x.attach(7, func() {
		n, err := in.Read(buf)
		if err == nil {
			got = append(got, bytes.Clone(buf[:n]))
		}
		// A second Read within the same delivery has nothing to read.
		_, err = in.Read(buf)
		errs = append(errs, err)
	}) {
		t.Fatal("no inbox for SSRC 7")
	}
	if x.attach(8, func() {}) {
		t.Error("attached to an SSRC without a stream")
	}
	for _, p := range [][]byte{{1}, {2, 2}, {3, 3, 3}} {
		if n, err := in.Write(p); n != len(p) || err != nil {
			t.Fatalf("Write: %d, %v", n, err)
		}
	}
	if want := [][]byte{{1}, {2, 2}, {3, 3, 3}}; len(got) != len(want) || !bytes.Equal(got[2], want[2]) || !bytes.Equal(got[0], want[0]) {
		t.Errorf("delivered %v, want %v", got, want)
	}
	for _, err := range errs {
		if !errors.Is(err, errNoPacket) {
			t.Errorf("second Read in a delivery: %v, want errNoPacket", err)
		}
	}

	// A packet longer than the reader's buffer is an error, as for pion's
	// buffers.
	var short error
	x.attach(7, func() { _, short = in.Read(make([]byte, 2)) })
	in.Write([]byte{4, 4, 4})
	if !errors.Is(short, io.ErrShortBuffer) {
		t.Errorf("Read into a short buffer: %v, want io.ErrShortBuffer", short)
	}

	// A Read outside a delivery waits for the inbox to close.
	read := make(chan error)
	go func() {
		_, err := in.Read(buf)
		read <- err
	}()
	if err := in.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-read; err != io.EOF {
		t.Errorf("Read on close: %v, want io.EOF", err)
	}
	if _, err := in.Write([]byte{5}); err == nil {
		t.Error("Write after Close succeeded")
	}
	if x.attach(7, func() {}) {
		t.Error("attached to a closed stream")
	}
}

// TestResendLimit checks that a subscriber gets a packet again at most
// maxResends times, however often it asks.
func TestResendLimit(t *testing.T) {
	var r resender
	now := int64(1e18)
	for i := range maxResends + 3 {
		if got, want := r.again(5, now), i < maxResends; got != want {
			t.Fatalf("request %d for packet 5: again = %v, want %v", i+1, got, want)
		}
	}
	// Another packet in the same slot is counted afresh, and so is the
	// same sequence number once resendMemory has passed (it wrapped).
	if !r.again(5+historySize, now) {
		t.Error("a packet in the slot of one resent too often was refused")
	}
	for range maxResends {
		r.again(5, now)
	}
	if r.again(5, now+int64(resendMemory)/2) {
		t.Error("resent past the limit")
	}
	if !r.again(5, now+2*int64(resendMemory)) {
		t.Error("a packet of a later sequence-number cycle was refused")
	}
}
