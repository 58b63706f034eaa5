package mls

import (
	"bytes"
	"testing"
)

type keyScheduleVector struct {
	CipherSuite       uint16   `json:"cipher_suite"`
	GroupID           hexBytes `json:"group_id"`
	InitialInitSecret hexBytes `json:"initial_init_secret"`
	Epochs            []struct {
		TreeHash                hexBytes `json:"tree_hash"`
		CommitSecret            hexBytes `json:"commit_secret"`
		PSKSecret               hexBytes `json:"psk_secret"`
		ConfirmedTranscriptHash hexBytes `json:"confirmed_transcript_hash"`

		GroupContext       hexBytes `json:"group_context"`
		JoinerSecret       hexBytes `json:"joiner_secret"`
		WelcomeSecret      hexBytes `json:"welcome_secret"`
		InitSecret         hexBytes `json:"init_secret"`
		SenderDataSecret   hexBytes `json:"sender_data_secret"`
		EncryptionSecret   hexBytes `json:"encryption_secret"`
		ExporterSecret     hexBytes `json:"exporter_secret"`
		EpochAuthenticator hexBytes `json:"epoch_authenticator"`
		ExternalSecret     hexBytes `json:"external_secret"`
		ConfirmationKey    hexBytes `json:"confirmation_key"`
		MembershipKey      hexBytes `json:"membership_key"`
		ResumptionPSK      hexBytes `json:"resumption_psk"`
		ExternalPub        hexBytes `json:"external_pub"`
		Exporter           struct {
			Label   string   `json:"label"`
			Context hexBytes `json:"context"`
			Length  int      `json:"length"`
			Secret  hexBytes `json:"secret"`
		} `json:"exporter"`
	} `json:"epochs"`
}

func TestKeyScheduleVectors(t *testing.T) {
	var vs []keyScheduleVector
	loadVectors(t, "key-schedule.json", &vs)
	tally := newTally(t, "key-schedule")
	for _, v := range vs {
		t.Run(CipherSuite(v.CipherSuite).String(), func(t *testing.T) {
			defer tally.record(t)
			s := suiteOrSkip(t, v.CipherSuite)
			initSecret := v.InitialInitSecret
			for i, ep := range v.Epochs {
				gc := GroupContext{
					Version:                 MLS10,
					CipherSuite:             CipherSuite(v.CipherSuite),
					GroupID:                 v.GroupID,
					Epoch:                   uint64(i),
					TreeHash:                ep.TreeHash,
					ConfirmedTranscriptHash: ep.ConfirmedTranscriptHash,
				}
				gcBytes := mustEncode(&gc)
				if !bytes.Equal(gcBytes, ep.GroupContext) {
					t.Fatalf("epoch %d: group_context = %x, want %x", i, gcBytes, ep.GroupContext)
				}
				e := newEpochSecrets(s, initSecret, ep.CommitSecret, ep.PSKSecret, gcBytes)
				for _, c := range []struct {
					name      string
					got, want []byte
				}{
					{"joiner_secret", e.joiner, ep.JoinerSecret},
					{"welcome_secret", e.welcome, ep.WelcomeSecret},
					{"init_secret", e.init, ep.InitSecret},
					{"sender_data_secret", e.senderData, ep.SenderDataSecret},
					{"encryption_secret", e.encryption, ep.EncryptionSecret},
					{"exporter_secret", e.exporter, ep.ExporterSecret},
					{"epoch_authenticator", e.epochAuthenticator, ep.EpochAuthenticator},
					{"external_secret", e.external, ep.ExternalSecret},
					{"confirmation_key", e.confirmation, ep.ConfirmationKey},
					{"membership_key", e.membership, ep.MembershipKey},
					{"resumption_psk", e.resumption, ep.ResumptionPSK},
				} {
					if !bytes.Equal(c.got, c.want) {
						t.Errorf("epoch %d: %s = %x, want %x", i, c.name, c.got, c.want)
					}
				}
				if _, pub, err := e.externalKeyPair(); err != nil || !bytes.Equal(pub, ep.ExternalPub) {
					t.Errorf("epoch %d: external_pub = %x, %v; want %x", i, pub, err, ep.ExternalPub)
				}
				x := ep.Exporter
				if got, err := e.exportSecret(x.Label, x.Context, x.Length); err != nil || !bytes.Equal(got, x.Secret) {
					t.Errorf("epoch %d: exporter = %x, %v; want %x", i, got, err, x.Secret)
				}

				// The Welcome path: a joiner holding joiner_secret reaches the
				// same epoch.
				if got := welcomeSecret(s, ep.JoinerSecret, ep.PSKSecret); !bytes.Equal(got, ep.WelcomeSecret) {
					t.Errorf("epoch %d: welcome_secret from joiner = %x, want %x", i, got, ep.WelcomeSecret)
				}
				j := epochSecretsFromJoiner(s, ep.JoinerSecret, ep.PSKSecret, gcBytes)
				if !bytes.Equal(j.epochAuthenticator, ep.EpochAuthenticator) || !bytes.Equal(j.init, ep.InitSecret) {
					t.Errorf("epoch %d: joiner path reaches another epoch", i)
				}
				j.wipe()

				initSecret = append([]byte(nil), e.init...)
				e.wipe()
			}
		})
	}
}

func testEpoch(t *testing.T, s *suite) *epochSecrets {
	t.Helper()
	gc := mustEncode(&GroupContext{Version: MLS10, CipherSuite: s.id, GroupID: []byte("g")})
	return newEpochSecrets(s, make([]byte, s.nh()), nil, nil, gc)
}

func TestKeyScheduleAbsentSecretsAreZero(t *testing.T) {
	s, _ := lookupSuite(DefaultCipherSuite)
	gc := mustEncode(&GroupContext{Version: MLS10, CipherSuite: s.id, GroupID: []byte("g")})
	init := bytes.Repeat([]byte{7}, s.nh())
	zero := make([]byte, s.nh())
	a := newEpochSecrets(s, init, nil, nil, gc)
	b := newEpochSecrets(s, init, zero, zero, gc)
	if !bytes.Equal(a.epochAuthenticator, b.epochAuthenticator) || !bytes.Equal(a.init, b.init) {
		t.Error("absent commit_secret/psk_secret differ from the zero vector")
	}
	c := newEpochSecrets(s, init, bytes.Repeat([]byte{1}, s.nh()), nil, gc)
	if bytes.Equal(a.epochAuthenticator, c.epochAuthenticator) {
		t.Error("commit_secret does not affect the epoch")
	}
}

func TestExternalInitRoundTrip(t *testing.T) {
	for _, cs := range []CipherSuite{X25519_AES128GCM_SHA256_Ed25519, P256_AES128GCM_SHA256_P256, P521_AES256GCM_SHA512_P521} {
		s, _ := lookupSuite(cs)
		e := testEpoch(t, s)
		_, pub, err := e.externalKeyPair()
		if err != nil {
			t.Fatal(err)
		}
		kemOutput, joinerInit, err := s.exportExternal(pub)
		if err != nil {
			t.Fatal(err)
		}
		memberInit, err := e.externalInitSecret(kemOutput)
		if err != nil || !bytes.Equal(memberInit, joinerInit) || len(memberInit) != s.nh() {
			t.Errorf("%v: members recover %x, %v; joiner chose %x", cs, memberInit, err, joinerInit)
		}
		if _, err := e.externalInitSecret(kemOutput[1:]); err == nil {
			t.Errorf("%v: truncated kem_output accepted", cs)
		}
	}
}

func TestWelcomeKeyNonce(t *testing.T) {
	for _, cs := range []CipherSuite{X25519_AES128GCM_SHA256_Ed25519, X25519_CHACHA20POLY1305_SHA256_Ed25519} {
		s, _ := lookupSuite(cs)
		e := testEpoch(t, s)
		key, nonce := welcomeKeyNonce(s, e.welcome)
		if len(key) != s.nk || len(nonce) != s.nn {
			t.Fatalf("%v: key %d bytes, nonce %d bytes", cs, len(key), len(nonce))
		}
		if !bytes.Equal(key, s.expandWithLabel(e.welcome, "key", nil, s.nk)) ||
			!bytes.Equal(nonce, s.expandWithLabel(e.welcome, "nonce", nil, s.nn)) {
			t.Errorf("%v: welcome key/nonce not ExpandWithLabel(welcome_secret, ...)", cs)
		}
		aead, err := s.newAEAD(key)
		if err != nil {
			t.Fatal(err)
		}
		if aead.NonceSize() != len(nonce) {
			t.Errorf("%v: nonce size %d, AEAD wants %d", cs, len(nonce), aead.NonceSize())
		}
	}
}

func TestExporterLength(t *testing.T) {
	s, _ := lookupSuite(DefaultCipherSuite)
	e := testEpoch(t, s)
	if out, err := e.exportSecret("l", nil, 255*s.nh()); err != nil || len(out) != 255*s.nh() {
		t.Errorf("maximal export: %d bytes, %v", len(out), err)
	}
	for _, n := range []int{-1, 255*s.nh() + 1} {
		if _, err := e.exportSecret("l", nil, n); err == nil {
			t.Errorf("export of %d bytes accepted", n)
		}
	}
	a, _ := e.exportSecret("a", []byte("ctx"), 32)
	b, _ := e.exportSecret("b", []byte("ctx"), 32)
	c, _ := e.exportSecret("a", []byte("other"), 32)
	if bytes.Equal(a, b) || bytes.Equal(a, c) {
		t.Error("exporter ignores its label or context")
	}
}

func TestEpochSecretsWipe(t *testing.T) {
	s, _ := lookupSuite(DefaultCipherSuite)
	e := testEpoch(t, s)
	held := [][]byte{e.joiner, e.welcome, e.senderData, e.encryption, e.exporter, e.external,
		e.confirmation, e.membership, e.resumption, e.epochAuthenticator, e.init}
	e.wipe()
	zero := make([]byte, s.nh())
	for i, b := range held {
		if !bytes.Equal(b, zero) {
			t.Errorf("secret %d not erased", i)
		}
	}
	if e.init != nil || e.encryption != nil {
		t.Error("wiped secrets still referenced")
	}
}
