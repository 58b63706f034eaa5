package mls

import (
	"bytes"
	"errors"
	"testing"
)

type pskSecretVector struct {
	CipherSuite uint16 `json:"cipher_suite"`
	PSKs        []struct {
		PSKID    hexBytes `json:"psk_id"`
		PSK      hexBytes `json:"psk"`
		PSKNonce hexBytes `json:"psk_nonce"`
	} `json:"psks"`
	PSKSecret hexBytes `json:"psk_secret"`
}

func TestPSKSecretVectors(t *testing.T) {
	var vs []pskSecretVector
	loadVectors(t, "psk_secret.json", &vs)
	tally := newTally(t, "psk_secret")
	for _, v := range vs {
		t.Run(CipherSuite(v.CipherSuite).String(), func(t *testing.T) {
			defer tally.record(t)
			s := suiteOrSkip(t, v.CipherSuite)
			var in []pskInput
			for _, p := range v.PSKs {
				id := PreSharedKeyID{PSKType: PSKExternal, PSKID: p.PSKID, PSKNonce: p.PSKNonce}
				if err := id.validate(s); err != nil {
					t.Errorf("vector PSK ID rejected: %v", err)
				}
				in = append(in, pskInput{ID: id, PSK: p.PSK})
			}
			got, err := pskSecret(s, in)
			if err != nil || !bytes.Equal(got, v.PSKSecret) {
				t.Errorf("psk_secret = %x, %v; want %x", got, err, v.PSKSecret)
			}
		})
	}
}

func TestPreSharedKeyIDEncoding(t *testing.T) {
	for _, id := range []PreSharedKeyID{
		{PSKType: PSKExternal, PSKID: []byte("id"), PSKNonce: bytes.Repeat([]byte{1}, 32)},
		{PSKType: PSKResumption, Usage: ResumptionBranch, PSKGroupID: []byte("group"), PSKEpoch: 1 << 40, PSKNonce: []byte{2}},
	} {
		enc := mustEncode(&id)
		var back PreSharedKeyID
		if err := decode(enc, &back, "PreSharedKeyID"); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(mustEncode(&back), enc) || back.PSKType != id.PSKType || back.Usage != id.Usage ||
			back.PSKEpoch != id.PSKEpoch || !bytes.Equal(back.PSKGroupID, id.PSKGroupID) {
			t.Errorf("round trip of %+v gave %+v", id, back)
		}
		if err := decode(append(enc, 0), &back, "PreSharedKeyID"); err == nil {
			t.Error("trailing byte accepted")
		}
		for i := range len(enc) {
			if err := decode(enc[:i], &back, "PreSharedKeyID"); err == nil {
				t.Errorf("truncation to %d bytes accepted", i)
			}
		}
	}

	ext := []byte{1, 2, 'i', 'd', 1, 9}
	var id PreSharedKeyID
	if err := decode(ext, &id, "PreSharedKeyID"); err != nil || string(id.PSKID) != "id" || id.PSKNonce[0] != 9 {
		t.Errorf("external ID decoded as %+v, %v", id, err)
	}
	for name, bad := range map[string][]byte{
		"reserved type":   {0, 0, 0},
		"unknown type":    {3, 0, 0},
		"reserved usage":  {2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
		"unknown usage":   {2, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
		"non-minimal len": {1, 0x40, 0x00, 0},
	} {
		if err := decode(bad, &id, "PreSharedKeyID"); !errors.Is(err, ErrDecode) {
			t.Errorf("%s: decode gave %v", name, err)
		}
	}
	if _, err := encode(&PreSharedKeyID{PSKType: 7}); err == nil {
		t.Error("unknown PSK type encoded")
	}
}

func TestPreSharedKeyIDValidate(t *testing.T) {
	s, _ := lookupSuite(DefaultCipherSuite)
	nonce := make([]byte, s.nh())
	for _, c := range []struct {
		id PreSharedKeyID
		ok bool
	}{
		{PreSharedKeyID{PSKType: PSKExternal, PSKNonce: nonce}, true},
		{PreSharedKeyID{PSKType: PSKResumption, Usage: ResumptionApplication, PSKNonce: nonce}, true},
		{PreSharedKeyID{PSKType: PSKExternal, PSKNonce: nonce[1:]}, false},
		{PreSharedKeyID{PSKType: PSKResumption, PSKNonce: nonce}, false},
		{PreSharedKeyID{PSKType: 0, PSKNonce: nonce}, false},
	} {
		if err := c.id.validate(s); (err == nil) != c.ok {
			t.Errorf("validate(%+v) = %v", c.id, err)
		}
	}
}

func TestPSKSecretProperties(t *testing.T) {
	s, _ := lookupSuite(DefaultCipherSuite)
	none, err := pskSecret(s, nil)
	if err != nil || !bytes.Equal(none, make([]byte, s.nh())) {
		t.Errorf("psk_secret of no PSKs = %x, %v; want zeros", none, err)
	}
	a := pskInput{ID: PreSharedKeyID{PSKType: PSKExternal, PSKID: []byte("a"), PSKNonce: make([]byte, s.nh())}, PSK: []byte("A")}
	b := pskInput{ID: PreSharedKeyID{PSKType: PSKResumption, Usage: ResumptionApplication, PSKGroupID: []byte("g"), PSKNonce: make([]byte, s.nh())}, PSK: []byte("B")}
	ab, _ := pskSecret(s, []pskInput{a, b})
	ba, _ := pskSecret(s, []pskInput{b, a})
	if bytes.Equal(ab, ba) {
		t.Error("psk_secret does not depend on the PSKs' order")
	}
	if _, err := pskSecret(s, []pskInput{{ID: PreSharedKeyID{PSKType: 9}}}); err == nil {
		t.Error("unencodable PSK ID accepted")
	}
	if _, err := pskSecret(s, make([]pskInput, maxPSKs+1)); err == nil {
		t.Error("more PSKs than PSKLabel can count accepted")
	}
}
