package sframe

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
)

var allSuites = []CipherSuite{
	AES_128_CTR_HMAC_SHA256_80,
	AES_128_CTR_HMAC_SHA256_64,
	AES_128_CTR_HMAC_SHA256_32,
	AES_128_GCM_SHA256_128,
	AES_256_GCM_SHA512_128,
}

var testBaseKey = []byte("0123456789abcdef")

// pair returns a Sender for kid and a Receiver holding the same key.
func pair(t testing.TB, s CipherSuite, kid uint64, replayWindow int) (*Sender, *Receiver) {
	t.Helper()
	snd, err := NewSender(s, kid, testBaseKey)
	if err != nil {
		t.Fatal(err)
	}
	rcv, err := NewReceiver(s, replayWindow)
	if err != nil {
		t.Fatal(err)
	}
	if err := rcv.AddKey(kid, testBaseKey); err != nil {
		t.Fatal(err)
	}
	return snd, rcv
}

func mustEncrypt(t testing.TB, s *Sender, metadata, pt []byte) []byte {
	t.Helper()
	frame, err := s.Encrypt(nil, metadata, pt)
	if err != nil {
		t.Fatal(err)
	}
	return frame
}

func TestRoundTrip(t *testing.T) {
	md := []byte("rtp header extension")
	for _, s := range allSuites {
		t.Run(s.String(), func(t *testing.T) {
			for _, kid := range []uint64{0, 7, 8, 300, math.MaxUint64} {
				snd, rcv := pair(t, s, kid, 0)
				for _, size := range []int{0, 1, 15, 16, 17, 60, 1200} {
					pt := bytes.Repeat([]byte{byte(size)}, size)
					prefix := []byte("keep")
					frame, err := snd.Encrypt(bytes.Clone(prefix), md, pt)
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.HasPrefix(frame, prefix) {
						t.Fatal("Encrypt did not append to dst")
					}
					frame = frame[len(prefix):]
					h, n, err := ParseHeader(frame)
					if err != nil || h.KID != snd.KID() || len(frame) != n+size+s.Overhead() {
						t.Fatalf("frame header %+v, %d, %v; length %d", h, n, err, len(frame))
					}
					got, err := rcv.Decrypt(bytes.Clone(prefix), md, frame)
					if err != nil {
						t.Fatalf("kid %d size %d: %v", kid, size, err)
					}
					if !bytes.Equal(got, append(prefix, pt...)) {
						t.Fatalf("kid %d size %d: round trip mismatch", kid, size)
					}
				}
			}
		})
	}
}

func TestCountersNeverRepeat(t *testing.T) {
	snd, _ := pair(t, AES_128_GCM_SHA256_128, 1, 0)
	const workers, frames = 8, 200
	var mu sync.Mutex
	seen := make(map[uint64]bool)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range frames {
				frame, err := snd.Encrypt(nil, nil, []byte("x"))
				if err != nil {
					t.Error(err)
					return
				}
				h, _, _ := ParseHeader(frame)
				mu.Lock()
				if seen[h.CTR] {
					t.Errorf("CTR %d used twice", h.CTR)
				}
				seen[h.CTR] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for ctr := range uint64(workers * frames) {
		if !seen[ctr] {
			t.Fatalf("CTR %d skipped", ctr)
		}
	}
}

func TestCounterExhaustion(t *testing.T) {
	snd, rcv := pair(t, AES_128_GCM_SHA256_128, 9, 0)
	snd.next = math.MaxUint64 - 1
	for _, want := range []uint64{math.MaxUint64 - 1, math.MaxUint64} {
		frame := mustEncrypt(t, snd, nil, []byte("last frames"))
		if h, _, _ := ParseHeader(frame); h.CTR != want {
			t.Fatalf("CTR = %d, want %d", h.CTR, want)
		}
		if _, err := rcv.Decrypt(nil, nil, frame); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		if _, err := snd.Encrypt(nil, nil, []byte("one too many")); !errors.Is(err, ErrCounterExhausted) {
			t.Fatalf("Encrypt after the last CTR = %v, want ErrCounterExhausted", err)
		}
	}
}

func TestWrongKey(t *testing.T) {
	for _, s := range allSuites {
		snd, _ := pair(t, s, 5, 0)
		rcv, err := NewReceiver(s, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := rcv.AddKey(5, []byte("another base key")); err != nil {
			t.Fatal(err)
		}
		if _, err := rcv.Decrypt(nil, nil, mustEncrypt(t, snd, nil, []byte("hello"))); !errors.Is(err, ErrAuth) {
			t.Errorf("%v: Decrypt with the wrong key = %v, want ErrAuth", s, err)
		}
	}
}

func TestTampering(t *testing.T) {
	md := []byte("metadata")
	for _, s := range allSuites {
		t.Run(s.String(), func(t *testing.T) {
			snd, rcv := pair(t, s, 300, -1)
			snd.next = 1000
			frame := mustEncrypt(t, snd, md, []byte("a media frame of some length"))
			_, n, _ := ParseHeader(frame)
			for i := range frame {
				for _, bit := range []byte{0x01, 0x80} {
					bad := bytes.Clone(frame)
					bad[i] ^= bit
					_, err := rcv.Decrypt(nil, md, bad)
					switch {
					case err == nil:
						t.Fatalf("byte %d ^ %#x: tampered frame decrypted", i, bit)
					case i >= n && !errors.Is(err, ErrAuth):
						t.Fatalf("byte %d ^ %#x (after the header): %v, want ErrAuth", i, bit, err)
					}
				}
			}
			for _, bad := range [][]byte{nil, frame[:n], frame[:len(frame)-1], append(bytes.Clone(frame), 0)} {
				if _, err := rcv.Decrypt(nil, md, bad); err == nil {
					t.Fatalf("frame of length %d decrypted", len(bad))
				}
			}
			for _, badMD := range [][]byte{nil, []byte("metadatA"), append(bytes.Clone(md), 0)} {
				if _, err := rcv.Decrypt(nil, badMD, frame); !errors.Is(err, ErrAuth) {
					t.Fatalf("wrong metadata %q: %v, want ErrAuth", badMD, err)
				}
			}
			if _, err := rcv.Decrypt(nil, md, frame); err != nil {
				t.Fatalf("the untampered frame: %v", err)
			}
		})
	}
}

func TestUnknownKey(t *testing.T) {
	snd, rcv := pair(t, AES_128_GCM_SHA256_128, 1, 0)
	other, err := NewSender(AES_128_GCM_SHA256_128, 2, testBaseKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rcv.Decrypt(nil, nil, mustEncrypt(t, other, nil, []byte("hi"))); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("Decrypt of an unknown KID = %v, want ErrUnknownKey", err)
	}
	frame := mustEncrypt(t, snd, nil, []byte("hi"))
	rcv.RemoveKey(1)
	if _, err := rcv.Decrypt(nil, nil, frame); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("Decrypt after RemoveKey = %v, want ErrUnknownKey", err)
	}
	rcv.RemoveKey(1) // removing twice is harmless
}

func TestReplay(t *testing.T) {
	const window = 64
	snd, rcv := pair(t, AES_128_CTR_HMAC_SHA256_32, 3, window)
	frames := make([][]byte, 200)
	for i := range frames {
		frames[i] = mustEncrypt(t, snd, nil, []byte{byte(i)})
	}
	decrypt := func(ctr int) error {
		_, err := rcv.Decrypt(nil, nil, frames[ctr])
		return err
	}

	if err := decrypt(10); err != nil {
		t.Fatal(err)
	}
	if err := decrypt(10); !errors.Is(err, ErrReplay) {
		t.Fatalf("replay = %v, want ErrReplay", err)
	}
	// Late but within the window: accepted once.
	if err := decrypt(3); err != nil {
		t.Fatal(err)
	}
	if err := decrypt(3); !errors.Is(err, ErrReplay) {
		t.Fatalf("late replay = %v, want ErrReplay", err)
	}
	if err := decrypt(150); err != nil {
		t.Fatal(err)
	}
	// 150-86 = 64 is just outside a 64-wide window; 87 just inside.
	if err := decrypt(86); !errors.Is(err, ErrReplay) {
		t.Fatalf("frame older than the window = %v, want ErrReplay", err)
	}
	if err := decrypt(87); err != nil {
		t.Fatalf("oldest frame inside the window: %v", err)
	}

	// A forgery does not use up its CTR.
	forged := bytes.Clone(frames[160])
	forged[len(forged)-1] ^= 1
	if _, err := rcv.Decrypt(nil, nil, forged); !errors.Is(err, ErrAuth) {
		t.Fatalf("forgery = %v, want ErrAuth", err)
	}
	if err := decrypt(160); err != nil {
		t.Fatalf("genuine frame after a forgery with its CTR: %v", err)
	}

	// With replay protection off, a replay decrypts.
	_, open := pair(t, AES_128_CTR_HMAC_SHA256_32, 3, -1)
	for range 2 {
		if _, err := open.Decrypt(nil, nil, frames[0]); err != nil {
			t.Fatalf("replay protection off: %v", err)
		}
	}
}

// TestReplayWindowModel checks replayWindow against a map of every counter
// accepted, over random walks with jumps forwards and back.
func TestReplayWindowModel(t *testing.T) {
	for _, size := range []int{1, 2, 63, 64, 65, 128, 200} {
		w := newReplayWindow(size)
		accepted := make(map[uint64]bool)
		var top uint64
		r := rand.New(rand.NewPCG(uint64(size), 1))
		for i := range 20000 {
			ctr := top
			switch r.IntN(4) {
			case 0:
				ctr += uint64(r.IntN(3 * size))
			case 1:
				ctr -= min(ctr, uint64(r.IntN(2*size)))
			case 2:
				ctr += uint64(r.IntN(2)) * uint64(size) * 5
			}
			want := !accepted[ctr] && (i == 0 || ctr > top || top-ctr < uint64(size))
			if got := w.check(ctr); got != want {
				t.Fatalf("size %d step %d: check(%d) with top %d = %v, want %v", size, i, ctr, top, got, want)
			}
			if want {
				w.accept(ctr)
				accepted[ctr] = true
				top = max(top, ctr)
			}
		}
	}
	w := newReplayWindow(8)
	w.accept(math.MaxUint64)
	if w.check(math.MaxUint64) || !w.check(math.MaxUint64-7) || w.check(math.MaxUint64-8) {
		t.Fatal("window at the top of the CTR space")
	}
}

func TestHeaderRejectsNonMinimal(t *testing.T) {
	for _, enc := range []string{
		"8805",               // KID 5 in one byte
		"0805",               // CTR 5 in one byte
		"900010",             // KID 16 in two bytes
		"0900ff",             // CTR 255 in two bytes
		"f70000000000000001", // KID 1 in eight bytes
	} {
		b, _ := hex.DecodeString(enc)
		if _, _, err := ParseHeader(b); !errors.Is(err, ErrInvalidHeader) {
			t.Errorf("ParseHeader(%s) = %v, want ErrInvalidHeader", enc, err)
		}
	}
}

func TestBadArguments(t *testing.T) {
	for _, s := range []CipherSuite{0, 6, 0xf000} {
		if _, err := NewSender(s, 0, testBaseKey); !errors.Is(err, ErrUnsupportedSuite) {
			t.Errorf("NewSender(%v) = %v, want ErrUnsupportedSuite", s, err)
		}
		if _, err := NewReceiver(s, 0); !errors.Is(err, ErrUnsupportedSuite) {
			t.Errorf("NewReceiver(%v) = %v, want ErrUnsupportedSuite", s, err)
		}
		if s.Overhead() != 0 || !strings.HasPrefix(s.String(), "CipherSuite(0x") {
			t.Errorf("unsupported suite %v: Overhead %d", s, s.Overhead())
		}
	}
	if _, err := NewSender(AES_128_GCM_SHA256_128, 0, nil); err == nil {
		t.Error("NewSender with an empty base key succeeded")
	}
	if _, err := NewReceiver(AES_128_GCM_SHA256_128, MaxReplayWindow+1); err == nil {
		t.Error("NewReceiver with a replay window over the maximum succeeded")
	}
	rcv, _ := NewReceiver(AES_128_GCM_SHA256_128, 0)
	if err := rcv.AddKey(1, nil); err == nil {
		t.Error("AddKey with an empty base key succeeded")
	}
}

// TestRedaction checks that no fmt verb prints key material.
func TestRedaction(t *testing.T) {
	snd, rcv := pair(t, AES_128_CTR_HMAC_SHA256_80, 42, 0)
	m := newTestGroup(2).member(t, 0)
	secrets := []string{
		hex.EncodeToString(snd.key.salt[:]),
		hex.EncodeToString(rcv.keys[42].key.salt[:]),
		hex.EncodeToString(m.windows[0].baseKey),
		hex.EncodeToString(m.sender.key.salt[:]),
	}
	for _, v := range []any{snd, rcv, m} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%d", "%x", "%X", "%q"} {
			out := fmt.Sprintf(verb, v)
			if !strings.Contains(out, "redacted") {
				t.Errorf("%s of %T = %q, want it redacted", verb, v, out)
			}
			for _, s := range secrets {
				if strings.Contains(strings.ToLower(out), s[:8]) {
					t.Errorf("%s of %T prints key material: %q", verb, v, out)
				}
			}
		}
	}
}

// TestConcurrentUse runs decryption alongside key changes; run it with -race.
func TestConcurrentUse(t *testing.T) {
	// The workers run out of step, so the window must span all the frames.
	snd, rcv := pair(t, AES_128_CTR_HMAC_SHA256_80, 1, MaxReplayWindow)
	frames := make([][]byte, 400)
	for i := range frames {
		frames[i] = mustEncrypt(t, snd, nil, []byte("frame"))
	}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := w; i < len(frames); i += 4 {
				if _, err := rcv.Decrypt(nil, nil, frames[i]); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Go(func() {
		for kid := uint64(100); kid < 200; kid++ {
			if err := rcv.AddKey(kid, testBaseKey); err != nil {
				t.Error(err)
			}
			rcv.RemoveKey(kid - 1)
		}
	})
	wg.Wait()
}
