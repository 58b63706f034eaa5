package sframe

import (
	"crypto/aes"
	"crypto/cipher"
	"fmt"
	"testing"
)

// frameSizes are a typical audio frame and a video packet at the usual MTU.
var frameSizes = []int{60, 1200}

// allowedAllocs is the number of allocations a frame may cost. The
// AES-CTR-HMAC suites pay one: crypto/cipher.NewCTR allocates its stream, and
// the standard library offers no way to reuse a CTR stream with a new IV.
func allowedAllocs(s CipherSuite) float64 {
	if s.params().nka != 0 {
		return 1
	}
	return 0
}

func TestZeroAllocs(t *testing.T) {
	const runs = 100
	md := []byte("metadata")
	for _, s := range allSuites {
		snd, rcv := pair(t, s, 1, DefaultReplayWindow)
		pt := make([]byte, 1200)
		dst := make([]byte, 0, len(pt)+MaxHeaderLen+s.Overhead())
		var err error
		if n := testing.AllocsPerRun(runs, func() {
			dst, err = snd.Encrypt(dst[:0], md, pt)
		}); n > allowedAllocs(s) || err != nil {
			t.Errorf("%v: Encrypt: %v allocations per frame (%v)", s, n, err)
		}

		// Fresh frames, so that the replay window accepts every one.
		frames := make([][]byte, runs+1)
		for i := range frames {
			frames[i] = mustEncrypt(t, snd, md, pt)
		}
		i := 0
		if n := testing.AllocsPerRun(runs, func() {
			dst, err = rcv.Decrypt(dst[:0], md, frames[i])
			i++
		}); n > allowedAllocs(s) || err != nil {
			t.Errorf("%v: Decrypt: %v allocations per frame (%v)", s, n, err)
		}
	}

	g := newTestGroup(2)
	alice, bob := g.member(t, 0), g.member(t, 1)
	frames := make([][]byte, runs+2)
	for i := range frames {
		frames[i] = encryptMLS(t, alice, "an MLS frame")
	}
	if _, err := decryptMLS(bob, frames[runs+1]); err != nil { // learn alice's key
		t.Fatal(err)
	}
	pt, dst := []byte("an MLS frame"), make([]byte, 0, 100)
	var err error
	if n := testing.AllocsPerRun(runs, func() {
		dst, err = alice.Encrypt(dst[:0], nil, pt)
	}); n != 0 || err != nil {
		t.Errorf("MLSKeys.Encrypt: %v allocations per frame (%v)", n, err)
	}
	i := 0
	if n := testing.AllocsPerRun(runs, func() {
		dst, err = bob.Decrypt(dst[:0], nil, frames[i])
		i++
	}); n != 0 || err != nil {
		t.Errorf("MLSKeys.Decrypt: %v allocations per frame (%v)", n, err)
	}
}

func BenchmarkEncrypt(b *testing.B) {
	for _, s := range allSuites {
		for _, size := range frameSizes {
			b.Run(fmt.Sprintf("%v/%d", s, size), func(b *testing.B) {
				snd, _ := pair(b, s, 1, 0)
				pt := make([]byte, size)
				dst := make([]byte, 0, size+MaxHeaderLen+s.Overhead())
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for b.Loop() {
					dst, _ = snd.Encrypt(dst[:0], nil, pt)
				}
			})
		}
	}
}

// BenchmarkDecrypt decrypts one frame over and over, so replay protection
// is off; TestZeroAllocs covers Decrypt with the replay window on.
func BenchmarkDecrypt(b *testing.B) {
	for _, s := range allSuites {
		for _, size := range frameSizes {
			b.Run(fmt.Sprintf("%v/%d", s, size), func(b *testing.B) {
				snd, rcv := pair(b, s, 1, -1)
				frame := mustEncrypt(b, snd, nil, make([]byte, size))
				dst := make([]byte, 0, len(frame))
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for b.Loop() {
					var err error
					if dst, err = rcv.Decrypt(dst[:0], nil, frame); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkAESGCM is the baseline: raw AES-128-GCM on the same buffers,
// without SFrame's header, key lookup or nonce formation.
func BenchmarkAESGCM(b *testing.B) {
	block, err := aes.NewCipher(make([]byte, 16))
	if err != nil {
		b.Fatal(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		b.Fatal(err)
	}
	nonce := make([]byte, aead.NonceSize())
	for _, size := range frameSizes {
		pt := make([]byte, size)
		ct := aead.Seal(nil, nonce, pt, nil)
		dst := make([]byte, 0, len(ct))
		b.Run(fmt.Sprintf("Seal/%d", size), func(b *testing.B) {
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				dst = aead.Seal(dst[:0], nonce, pt, nil)
			}
		})
		b.Run(fmt.Sprintf("Open/%d", size), func(b *testing.B) {
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				if dst, err = aead.Open(dst[:0], nonce, ct, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkMLS measures the MLS wrapper around the default suite.
func BenchmarkMLS(b *testing.B) {
	g := newTestGroup(2)
	alice := g.member(b, 0)
	bob, err := NewMLSKeys(MLSConfig{Suite: g.suite, LeafIndex: 1, ReplayWindow: -1}, g.epoch, g.size, exporterFor(b, g.secret, g.suite))
	if err != nil {
		b.Fatal(err)
	}
	for _, size := range frameSizes {
		pt := make([]byte, size)
		dst := make([]byte, 0, size+MaxHeaderLen+g.suite.Overhead())
		b.Run(fmt.Sprintf("Encrypt/%d", size), func(b *testing.B) {
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				dst, _ = alice.Encrypt(dst[:0], nil, pt)
			}
		})
		frame := encryptMLS(b, alice, string(pt))
		b.Run(fmt.Sprintf("Decrypt/%d", size), func(b *testing.B) {
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				if dst, err = bob.Decrypt(dst[:0], nil, frame); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
