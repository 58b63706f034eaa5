package mls

import (
	"bytes"
	"testing"
)

type cryptoBasicsVector struct {
	CipherSuite uint16 `json:"cipher_suite"`
	RefHash     struct {
		Label string   `json:"label"`
		Value hexBytes `json:"value"`
		Out   hexBytes `json:"out"`
	} `json:"ref_hash"`
	ExpandWithLabel struct {
		Secret  hexBytes `json:"secret"`
		Label   string   `json:"label"`
		Context hexBytes `json:"context"`
		Length  int      `json:"length"`
		Out     hexBytes `json:"out"`
	} `json:"expand_with_label"`
	DeriveSecret struct {
		Secret hexBytes `json:"secret"`
		Label  string   `json:"label"`
		Out    hexBytes `json:"out"`
	} `json:"derive_secret"`
	DeriveTreeSecret struct {
		Secret     hexBytes `json:"secret"`
		Label      string   `json:"label"`
		Generation uint32   `json:"generation"`
		Length     int      `json:"length"`
		Out        hexBytes `json:"out"`
	} `json:"derive_tree_secret"`
	SignWithLabel struct {
		Priv      hexBytes `json:"priv"`
		Pub       hexBytes `json:"pub"`
		Content   hexBytes `json:"content"`
		Label     string   `json:"label"`
		Signature hexBytes `json:"signature"`
	} `json:"sign_with_label"`
	EncryptWithLabel struct {
		Priv       hexBytes `json:"priv"`
		Pub        hexBytes `json:"pub"`
		Label      string   `json:"label"`
		Context    hexBytes `json:"context"`
		Plaintext  hexBytes `json:"plaintext"`
		KEMOutput  hexBytes `json:"kem_output"`
		Ciphertext hexBytes `json:"ciphertext"`
	} `json:"encrypt_with_label"`
}

func TestCryptoBasicsVectors(t *testing.T) {
	var vs []cryptoBasicsVector
	loadVectors(t, "crypto-basics.json", &vs)
	tally := newTally(t, "crypto-basics")
	for _, v := range vs {
		t.Run(CipherSuite(v.CipherSuite).String(), func(t *testing.T) {
			defer tally.record(t)
			s := suiteOrSkip(t, v.CipherSuite)
			if got := s.refHash(v.RefHash.Label, v.RefHash.Value); !bytes.Equal(got, v.RefHash.Out) {
				t.Errorf("RefHash = %x, want %x", got, v.RefHash.Out)
			}
			e := v.ExpandWithLabel
			if got := s.expandWithLabel(e.Secret, e.Label, e.Context, e.Length); !bytes.Equal(got, e.Out) {
				t.Errorf("ExpandWithLabel = %x, want %x", got, e.Out)
			}
			d := v.DeriveSecret
			if got := s.deriveSecret(d.Secret, d.Label); !bytes.Equal(got, d.Out) {
				t.Errorf("DeriveSecret = %x, want %x", got, d.Out)
			}
			dt := v.DeriveTreeSecret
			if got := s.deriveTreeSecret(dt.Secret, dt.Label, dt.Generation, dt.Length); !bytes.Equal(got, dt.Out) {
				t.Errorf("DeriveTreeSecret = %x, want %x", got, dt.Out)
			}
			sw := v.SignWithLabel
			if !s.verifyWithLabel(sw.Pub, sw.Signature, sw.Label, sw.Content) {
				t.Error("VerifyWithLabel rejected the vector's signature")
			}
			sig, err := s.signWithLabel(sw.Priv, sw.Label, sw.Content)
			if err != nil {
				t.Fatal(err)
			}
			if !s.verifyWithLabel(sw.Pub, sig, sw.Label, sw.Content) {
				t.Error("VerifyWithLabel rejected our own signature")
			}
			if s.verifyWithLabel(sw.Pub, sig, sw.Label+"x", sw.Content) {
				t.Error("VerifyWithLabel accepted a signature under another label")
			}
			if pub, err := s.sig.public(sw.Priv); err != nil || !bytes.Equal(pub, sw.Pub) {
				t.Errorf("public(priv) = %x, %v; want %x", pub, err, sw.Pub)
			}
			ew := v.EncryptWithLabel
			pt, err := s.decryptWithLabel(ew.Priv, ew.Label, ew.Context, ew.KEMOutput, ew.Ciphertext)
			if err != nil || !bytes.Equal(pt, ew.Plaintext) {
				t.Errorf("DecryptWithLabel = %x, %v; want %x", pt, err, ew.Plaintext)
			}
			kem, ct, err := s.encryptWithLabel(ew.Pub, ew.Label, ew.Context, ew.Plaintext)
			if err != nil {
				t.Fatal(err)
			}
			pt, err = s.decryptWithLabel(ew.Priv, ew.Label, ew.Context, kem, ct)
			if err != nil || !bytes.Equal(pt, ew.Plaintext) {
				t.Errorf("round trip = %x, %v; want %x", pt, err, ew.Plaintext)
			}
			if _, err := s.decryptWithLabel(ew.Priv, ew.Label+"x", ew.Context, kem, ct); err == nil {
				t.Error("DecryptWithLabel accepted another label")
			}
		})
	}
}
