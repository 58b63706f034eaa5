package mls

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

type welcomeVector struct {
	CipherSuite uint16   `json:"cipher_suite"`
	InitPriv    hexBytes `json:"init_priv"`
	SignerPub   hexBytes `json:"signer_pub"`
	KeyPackage  hexBytes `json:"key_package"`
	Welcome     hexBytes `json:"welcome"`
}

func TestWelcomeVectors(t *testing.T) {
	var vs []welcomeVector
	loadVectors(t, "welcome.json", &vs)
	tally := newTally(t, "welcome")
	for _, v := range vs {
		t.Run(CipherSuite(v.CipherSuite).String(), func(t *testing.T) {
			defer tally.record(t)
			s := suiteOrSkip(t, v.CipherSuite)
			kpMsg, err := UnmarshalMLSMessage(v.KeyPackage)
			if err != nil || kpMsg.WireFormat != WireFormatKeyPackage {
				t.Fatalf("key_package: not a KeyPackage: %v", err)
			}
			wMsg, err := UnmarshalMLSMessage(v.Welcome)
			if err != nil || wMsg.WireFormat != WireFormatWelcome {
				t.Fatalf("welcome: not a Welcome: %v", err)
			}
			kp, w := kpMsg.KeyPackage, wMsg.Welcome
			if !kp.verifySignature(s) {
				t.Error("KeyPackage signature does not verify")
			}
			gs, err := decryptGroupSecrets(s, w, kp, v.InitPriv)
			if err != nil {
				t.Fatalf("group secrets: %v", err)
			}
			if len(gs.psks) != 0 {
				t.Fatalf("group secrets name %d PSKs, the vectors use none", len(gs.psks))
			}
			gi, err := decryptGroupInfo(s, welcomeSecret(s, gs.joinerSecret, nil), w.EncryptedGroupInfo)
			if err != nil {
				t.Fatalf("group info: %v", err)
			}
			if !gi.verifySignature(s, v.SignerPub) {
				t.Error("GroupInfo signature does not verify with signer_pub")
			}
			gc := &gi.GroupContext
			epoch := epochSecretsFromJoiner(s, gs.joinerSecret, nil, mustEncode(gc))
			defer epoch.wipe()
			if !verifyConfirmationTag(s, epoch.confirmation, gc.ConfirmedTranscriptHash, gi.ConfirmationTag) {
				t.Error("GroupInfo confirmation tag does not verify")
			}
		})
	}
}

// keyPackageLeafTemplate returns a leaf template for newKeyPackage, valid around now.
func keyPackageLeafTemplate(s *suite, identity string, now time.Time) LeafNode {
	return LeafNode{
		Credential: BasicCredential([]byte(identity)),
		Capabilities: Capabilities{
			Versions:     []ProtocolVersion{MLS10},
			CipherSuites: []CipherSuite{s.id},
			Credentials:  []CredentialType{CredentialBasic},
		},
		Lifetime: Lifetime{NotBefore: uint64(now.Add(-time.Hour).Unix()), NotAfter: uint64(now.Add(30 * 24 * time.Hour).Unix())},
	}
}

// newTestKeyPackage makes a KeyPackage and returns it with its private
// init key.
func newTestKeyPackage(t *testing.T, s *suite, identity string, now time.Time, exts Extensions) (*KeyPackage, []byte) {
	t.Helper()
	key, err := GenerateSignatureKey(s.id)
	if err != nil {
		t.Fatal(err)
	}
	kp, initPriv, _, err := newKeyPackage(key, keyPackageLeafTemplate(s, identity, now), exts)
	if err != nil {
		t.Fatal(err)
	}
	return kp, initPriv
}

func TestKeyPackageValidation(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	for _, cs := range []CipherSuite{X25519_AES128GCM_SHA256_Ed25519, P256_AES128GCM_SHA256_P256} {
		s, _ := lookupSuite(cs)
		kp, _ := newTestKeyPackage(t, s, "alice", now, nil)
		if err := validateKeyPackage(kp, cs, now, DefaultMaxLifetime); err != nil {
			t.Fatalf("%v: fresh KeyPackage: %v", cs, err)
		}
		data, err := (&MLSMessage{WireFormat: WireFormatKeyPackage, KeyPackage: kp}).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		m, err := UnmarshalMLSMessage(data)
		if err != nil {
			t.Fatal(err)
		}
		if err := validateKeyPackage(m.KeyPackage, cs, now, DefaultMaxLifetime); err != nil {
			t.Errorf("%v: decoded KeyPackage: %v", cs, err)
		}
		other := X25519_CHACHA20POLY1305_SHA256_Ed25519
		for _, tc := range []struct {
			name   string
			mutate func(kp *KeyPackage)
			cs     CipherSuite
			now    time.Time
			max    time.Duration
		}{
			{"other group suite", func(*KeyPackage) {}, other, now, DefaultMaxLifetime},
			{"not yet valid", func(*KeyPackage) {}, cs, now.Add(-2 * time.Hour), DefaultMaxLifetime},
			{"expired", func(*KeyPackage) {}, cs, now.Add(31 * 24 * time.Hour), DefaultMaxLifetime},
			{"lifetime too long", func(*KeyPackage) {}, cs, now, 24 * time.Hour},
			{"version", func(kp *KeyPackage) { kp.Version = 2 }, cs, now, DefaultMaxLifetime},
			{"suite field", func(kp *KeyPackage) { kp.CipherSuite = other }, cs, now, DefaultMaxLifetime},
			{"extension added", func(kp *KeyPackage) { kp.Extensions = Extensions{{Type: 0xff00}} }, cs, now, DefaultMaxLifetime},
			{"init key is encryption key", func(kp *KeyPackage) { kp.InitKey = kp.LeafNode.EncryptionKey }, cs, now, DefaultMaxLifetime},
			{"leaf source", func(kp *KeyPackage) { kp.LeafNode.Source = SourceUpdate }, cs, now, DefaultMaxLifetime},
			{"leaf changed", func(kp *KeyPackage) { kp.LeafNode.Credential = BasicCredential([]byte("mallory")) }, cs, now, DefaultMaxLifetime},
		} {
			bad := new(KeyPackage)
			if err := decode(mustEncode(kp), bad, "KeyPackage"); err != nil {
				t.Fatal(err)
			}
			tc.mutate(bad)
			if err := validateKeyPackage(bad, tc.cs, tc.now, tc.max); !errors.Is(err, ErrInvalid) {
				t.Errorf("%v: %s: err = %v, want ErrInvalid", cs, tc.name, err)
			}
		}
	}
}

func TestKeyPackageRefAndLastResort(t *testing.T) {
	now := time.Now()
	s, _ := lookupSuite(DefaultCipherSuite)
	kp, _ := newTestKeyPackage(t, s, "bob", now, nil)
	if kp.IsLastResort() {
		t.Error("plain KeyPackage reported as last resort")
	}
	ref, err := kp.Ref()
	if err != nil {
		t.Fatal(err)
	}
	if want := s.refHash("MLS 1.0 KeyPackage Reference", mustEncode(kp)); !bytes.Equal(ref, want) {
		t.Errorf("ref %x, want %x", ref, want)
	}
	lr, _ := newTestKeyPackage(t, s, "bob", now, Extensions{{Type: ExtLastResort}})
	if !lr.IsLastResort() {
		t.Error("last_resort extension not detected")
	}
	if err := validateKeyPackage(lr, s.id, now, DefaultMaxLifetime); err != nil {
		t.Errorf("last resort KeyPackage: %v", err)
	}
}

func TestWelcomeRoundTrip(t *testing.T) {
	now := time.Now()
	s, _ := lookupSuite(DefaultCipherSuite)
	key, err := GenerateSignatureKey(s.id)
	if err != nil {
		t.Fatal(err)
	}
	joiner := bytes.Repeat([]byte{4}, s.nh())
	psks := []PreSharedKeyID{{PSKType: PSKExternal, PSKID: []byte("psk"), PSKNonce: bytes.Repeat([]byte{5}, s.nh())}}
	pskSecret := bytes.Repeat([]byte{6}, s.nh())
	gc := GroupContext{Version: MLS10, CipherSuite: s.id, GroupID: []byte("g"), Epoch: 3, TreeHash: []byte("th"), ConfirmedTranscriptHash: []byte("cth")}
	epoch := epochSecretsFromJoiner(s, joiner, pskSecret, mustEncode(&gc))
	defer epoch.wipe()
	gi := &GroupInfo{GroupContext: gc, ConfirmationTag: confirmationTag(s, epoch.confirmation, gc.ConfirmedTranscriptHash), Signer: 2}
	if err := gi.sign(key); err != nil {
		t.Fatal(err)
	}
	alice, alicePriv := newTestKeyPackage(t, s, "alice", now, nil)
	bob, bobPriv := newTestKeyPackage(t, s, "bob", now, nil)
	carol, carolPriv := newTestKeyPackage(t, s, "carol", now, nil)
	pathSecret := bytes.Repeat([]byte{7}, s.nh())
	w, err := newWelcome(s, gi, epoch.welcome, joiner, psks, []welcomeRecipient{{keyPackage: alice, pathSecret: pathSecret}, {keyPackage: bob}})
	if err != nil {
		t.Fatal(err)
	}
	data, err := (&MLSMessage{WireFormat: WireFormatWelcome, Welcome: w}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	m, err := UnmarshalMLSMessage(data)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		kp         *KeyPackage
		priv       []byte
		pathSecret []byte
	}{{alice, alicePriv, pathSecret}, {bob, bobPriv, nil}} {
		gs, err := decryptGroupSecrets(s, m.Welcome, tc.kp, tc.priv)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(gs.joinerSecret, joiner) || !bytes.Equal(gs.pathSecret, tc.pathSecret) || (gs.pathSecret == nil) != (tc.pathSecret == nil) {
			t.Error("group secrets differ")
		}
		if len(gs.psks) != 1 || !bytes.Equal(mustEncode(&gs.psks[0]), mustEncode(&psks[0])) {
			t.Error("PSK ids differ")
		}
		got, err := decryptGroupInfo(s, welcomeSecret(s, gs.joinerSecret, pskSecret), m.Welcome.EncryptedGroupInfo)
		if err != nil {
			t.Fatal(err)
		}
		if !got.verifySignature(s, key.Public()) {
			t.Error("GroupInfo signature does not verify")
		}
		if !bytes.Equal(mustEncode(got), mustEncode(gi)) {
			t.Error("GroupInfo differs")
		}
	}
	if _, err := decryptGroupSecrets(s, m.Welcome, carol, carolPriv); !errors.Is(err, ErrInvalid) {
		t.Errorf("KeyPackage not in the Welcome: err = %v", err)
	}
	if _, err := decryptGroupSecrets(s, m.Welcome, alice, bobPriv); err == nil {
		t.Error("group secrets decrypt with the wrong init key")
	}
	if _, err := decryptGroupInfo(s, welcomeSecret(s, joiner, nil), m.Welcome.EncryptedGroupInfo); err == nil {
		t.Error("GroupInfo decrypts without the PSK")
	}
	gi.Signer = 3
	if gi.verifySignature(s, key.Public()) {
		t.Error("GroupInfo signature verifies for another signer")
	}
}
