package sframe

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"testing"
)

// hexBytes is a byte string written as hex in the vector file.
type hexBytes []byte

func (h *hexBytes) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := hex.DecodeString(s)
	*h = v
	return err
}

// rfcVectors is testdata/rfc9605-test-vectors.json, the vectors cited by
// RFC 9605 Appendix C, copied unchanged from github.com/sframe-wg/sframe
// (test-vectors/test-vectors.json, commit 025d568).
type rfcVectors struct {
	Header []struct {
		KID     uint64   `json:"kid"`
		CTR     uint64   `json:"ctr"`
		Encoded hexBytes `json:"encoded"`
	} `json:"header"`
	AESCTRHMAC []struct {
		CipherSuite CipherSuite `json:"cipher_suite"`
		Key         hexBytes    `json:"key"`
		EncKey      hexBytes    `json:"enc_key"`
		AuthKey     hexBytes    `json:"auth_key"`
		Nonce       hexBytes    `json:"nonce"`
		AAD         hexBytes    `json:"aad"`
		PT          hexBytes    `json:"pt"`
		CT          hexBytes    `json:"ct"`
	} `json:"aes_ctr_hmac"`
	SFrame []struct {
		CipherSuite     CipherSuite `json:"cipher_suite"`
		KID             uint64      `json:"kid"`
		CTR             uint64      `json:"ctr"`
		BaseKey         hexBytes    `json:"base_key"`
		SFrameKeyLabel  hexBytes    `json:"sframe_key_label"`
		SFrameSaltLabel hexBytes    `json:"sframe_salt_label"`
		SFrameSecret    hexBytes    `json:"sframe_secret"`
		SFrameKey       hexBytes    `json:"sframe_key"`
		SFrameSalt      hexBytes    `json:"sframe_salt"`
		Metadata        hexBytes    `json:"metadata"`
		Nonce           hexBytes    `json:"nonce"`
		AAD             hexBytes    `json:"aad"`
		PT              hexBytes    `json:"pt"`
		CT              hexBytes    `json:"ct"`
	} `json:"sframe"`
}

func loadVectors(t *testing.T) *rfcVectors {
	t.Helper()
	data, err := os.ReadFile("testdata/rfc9605-test-vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var v rfcVectors
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Header) == 0 || len(v.AESCTRHMAC) == 0 || len(v.SFrame) == 0 {
		t.Fatal("vector file has an empty section")
	}
	return &v
}

// tally counts, per section, the subtests that passed.
type tally struct {
	t            *testing.T
	name         string
	passed, runs int
}

func (c *tally) run(name string, f func(t *testing.T)) {
	c.runs++
	if c.t.Run(name, f) {
		c.passed++
	}
}

func (c *tally) report() {
	c.t.Logf("%s: %d/%d vectors passed", c.name, c.passed, c.runs)
}

func equal(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Errorf("%s = %x, want %x", what, got, want)
	}
}

func TestRFCVectors(t *testing.T) {
	v := loadVectors(t)

	t.Run("header", func(t *testing.T) {
		c := tally{t: t, name: "header"}
		defer c.report()
		for _, tc := range v.Header {
			c.run(fmt.Sprintf("kid=%d/ctr=%d", tc.KID, tc.CTR), func(t *testing.T) {
				h := Header{KID: tc.KID, CTR: tc.CTR}
				equal(t, "Append", h.Append(nil), tc.Encoded)
				if h.Len() != len(tc.Encoded) {
					t.Errorf("Len = %d, want %d", h.Len(), len(tc.Encoded))
				}
				// A header is parsed from the front of a frame.
				frame := append(bytes.Clone(tc.Encoded), 0xaa, 0xbb)
				got, n, err := ParseHeader(frame)
				if err != nil || got != h || n != len(tc.Encoded) {
					t.Errorf("ParseHeader = %+v, %d, %v; want %+v, %d", got, n, err, h, len(tc.Encoded))
				}
				for i := range len(tc.Encoded) {
					if _, _, err := ParseHeader(tc.Encoded[:i]); !errors.Is(err, ErrInvalidHeader) {
						t.Errorf("ParseHeader(truncated to %d bytes) = %v, want ErrInvalidHeader", i, err)
					}
				}
			})
		}
	})

	t.Run("aes_ctr_hmac", func(t *testing.T) {
		c := tally{t: t, name: "aes_ctr_hmac"}
		defer c.report()
		for _, tc := range v.AESCTRHMAC {
			c.run(tc.CipherSuite.String(), func(t *testing.T) {
				p := tc.CipherSuite.params()
				if p == nil || p.nka == 0 {
					t.Fatalf("%v is not an AES-CTR-HMAC suite", tc.CipherSuite)
				}
				equal(t, "enc_key", tc.Key[:p.nka], tc.EncKey)
				equal(t, "auth_key", tc.Key[p.nka:], tc.AuthKey)
				aead, err := p.newAEAD(tc.Key)
				if err != nil {
					t.Fatal(err)
				}
				equal(t, "Seal", aead.Seal(nil, tc.Nonce, tc.PT, tc.AAD), tc.CT)
				pt, err := aead.Open(nil, tc.Nonce, tc.CT, tc.AAD)
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				equal(t, "Open", pt, tc.PT)
				bad := bytes.Clone(tc.CT)
				bad[len(bad)-1] ^= 1
				if _, err := aead.Open(nil, tc.Nonce, bad, tc.AAD); !errors.Is(err, ErrAuth) {
					t.Errorf("Open(bad tag) = %v, want ErrAuth", err)
				}
			})
		}
	})

	t.Run("sframe", func(t *testing.T) {
		c := tally{t: t, name: "sframe"}
		defer c.report()
		for _, tc := range v.SFrame {
			c.run(tc.CipherSuite.String(), func(t *testing.T) {
				s := tc.CipherSuite
				p := s.params()
				if p == nil {
					t.Fatalf("unsupported suite %v", s)
				}
				equal(t, "sframe_key_label", []byte(label("SFrame 1.0 Secret key ", tc.KID, s)), tc.SFrameKeyLabel)
				equal(t, "sframe_salt_label", []byte(label("SFrame 1.0 Secret salt ", tc.KID, s)), tc.SFrameSaltLabel)
				secret, err := p.sframeSecret(tc.BaseKey)
				if err != nil {
					t.Fatal(err)
				}
				equal(t, "sframe_secret", secret, tc.SFrameSecret)
				key, salt, err := p.deriveKeySalt(s, tc.KID, secret)
				if err != nil {
					t.Fatal(err)
				}
				equal(t, "sframe_key", key, tc.SFrameKey)
				equal(t, "sframe_salt", salt, tc.SFrameSalt)

				k, err := newFrameKey(s, tc.KID, tc.BaseKey)
				if err != nil {
					t.Fatal(err)
				}
				equal(t, "frameKey salt", k.salt[:], tc.SFrameSalt)
				var nonce [nonceSize]byte
				formNonce(&nonce, &k.salt, tc.CTR)
				equal(t, "nonce", nonce[:], tc.Nonce)
				h := Header{KID: tc.KID, CTR: tc.CTR}
				equal(t, "ciphertext", k.seal(nil, h, tc.Metadata, tc.PT), tc.CT)
				equal(t, "aad", k.aad, tc.AAD)
				equal(t, "header", tc.CT[:h.Len()], tc.AAD[:len(tc.AAD)-len(tc.Metadata)])

				// The same through the public API.
				snd, err := NewSender(s, tc.KID, tc.BaseKey)
				if err != nil {
					t.Fatal(err)
				}
				snd.next = tc.CTR
				ct, err := snd.Encrypt(nil, tc.Metadata, tc.PT)
				if err != nil {
					t.Fatal(err)
				}
				equal(t, "Sender.Encrypt", ct, tc.CT)
				rcv, err := NewReceiver(s, 0)
				if err != nil {
					t.Fatal(err)
				}
				if err := rcv.AddKey(tc.KID, tc.BaseKey); err != nil {
					t.Fatal(err)
				}
				pt, err := rcv.Decrypt(nil, tc.Metadata, tc.CT)
				if err != nil {
					t.Fatalf("Receiver.Decrypt: %v", err)
				}
				equal(t, "Receiver.Decrypt", pt, tc.PT)
			})
		}
	})
}
