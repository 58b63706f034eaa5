package sframe

import (
	"bytes"
	"errors"
	"testing"
)

// The seed corpora are in testdata/fuzz/<FuzzName>/.

// FuzzParseHeader checks that ParseHeader never panics, rejects only with
// ErrInvalidHeader, and accepts only the one minimal encoding of a header:
// re-encoding what it parsed gives back the same bytes.
func FuzzParseHeader(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		h, n, err := ParseHeader(data)
		if err != nil {
			if !errors.Is(err, ErrInvalidHeader) {
				t.Fatalf("ParseHeader: %v, want ErrInvalidHeader", err)
			}
			return
		}
		if n > len(data) || n != h.Len() {
			t.Fatalf("ParseHeader consumed %d of %d bytes; Len is %d", n, len(data), h.Len())
		}
		if enc := h.Append(nil); !bytes.Equal(enc, data[:n]) {
			t.Fatalf("%+v parsed from %x encodes as %x", h, data[:n], enc)
		}
	})
}

// fuzzKIDs are the KIDs the FuzzDecrypt receivers hold keys for.
var fuzzKIDs = []uint64{0, 7, 300}

// FuzzDecrypt feeds arbitrary frames and metadata to receivers for a GCM
// suite and for the suite with the shortest tag, and to an MLS member. Decrypt
// must never panic and must fail with one of the package's errors; a frame it
// accepts must be exactly the frame the key's sender produces for that CTR
// and plaintext.
func FuzzDecrypt(f *testing.F) {
	type target struct {
		suite CipherSuite
		rcv   *Receiver
	}
	var targets []target
	for _, s := range []CipherSuite{AES_128_GCM_SHA256_128, AES_128_CTR_HMAC_SHA256_32} {
		rcv, err := NewReceiver(s, -1) // no replay state carried between inputs
		if err != nil {
			f.Fatal(err)
		}
		for _, kid := range fuzzKIDs {
			if err := rcv.AddKey(kid, testBaseKey); err != nil {
				f.Fatal(err)
			}
		}
		targets = append(targets, target{s, rcv})
	}
	g := newTestGroup(4)
	member, err := NewMLSKeys(MLSConfig{Suite: g.suite, LeafIndex: 0, ReplayWindow: -1}, g.epoch, g.size, exporterFor(f, g.secret, g.suite))
	if err != nil {
		f.Fatal(err)
	}

	f.Fuzz(func(t *testing.T, metadata, frame []byte) {
		for _, tg := range targets {
			pt, err := tg.rcv.Decrypt(nil, metadata, frame)
			if err != nil {
				if !isDecryptError(err) {
					t.Fatalf("%v: unexpected error %v", tg.suite, err)
				}
				continue
			}
			h, _, _ := ParseHeader(frame)
			snd, err := NewSender(tg.suite, h.KID, testBaseKey)
			if err != nil {
				t.Fatal(err)
			}
			snd.next = h.CTR
			if want, _ := snd.Encrypt(nil, metadata, pt); !bytes.Equal(frame, want) {
				t.Fatalf("%v: accepted %x, but the sender makes %x", tg.suite, frame, want)
			}
		}
		if _, err := member.Decrypt(nil, metadata, frame); err != nil && !isDecryptError(err) {
			t.Fatalf("MLSKeys: unexpected error %v", err)
		}
	})
}

func isDecryptError(err error) bool {
	for _, e := range []error{ErrInvalidHeader, ErrUnknownKey, ErrReplay, ErrAuth} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
