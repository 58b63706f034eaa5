package mls

import (
	"bytes"
	"fmt"
	"testing"
)

// Passive-client scenarios (test-vectors.md, "Passive Client Scenarios"):
// a client joins by Welcome and follows the group through its commits,
// agreeing on every epoch authenticator.

type passiveVector struct {
	CipherSuite  uint16 `json:"cipher_suite"`
	ExternalPSKs []struct {
		PSKID hexBytes `json:"psk_id"`
		PSK   hexBytes `json:"psk"`
	} `json:"external_psks"`
	KeyPackage                hexBytes `json:"key_package"`
	SignaturePriv             hexBytes `json:"signature_priv"`
	EncryptionPriv            hexBytes `json:"encryption_priv"`
	InitPriv                  hexBytes `json:"init_priv"`
	Welcome                   hexBytes `json:"welcome"`
	RatchetTree               hexBytes `json:"ratchet_tree"` // nil when the Welcome carries the tree
	InitialEpochAuthenticator hexBytes `json:"initial_epoch_authenticator"`
	Epochs                    []struct {
		Proposals          []hexBytes `json:"proposals"`
		Commit             hexBytes   `json:"commit"`
		EpochAuthenticator hexBytes   `json:"epoch_authenticator"`
	} `json:"epochs"`
}

func TestPassiveClientWelcome(t *testing.T) {
	runPassiveVectors(t, "passive-client-welcome.json")
}

func TestPassiveClientHandlingCommit(t *testing.T) {
	runPassiveVectors(t, "passive-client-handling-commit.json")
}

func runPassiveVectors(t *testing.T, file string) {
	var vs []passiveVector
	loadVectors(t, file, &vs)
	ty := newTally(t, file)
	for i, v := range vs {
		t.Run(fmt.Sprintf("%d/suite%d", i, v.CipherSuite), func(t *testing.T) {
			t.Parallel()
			defer ty.record(t)
			s := suiteOrSkip(t, v.CipherSuite)
			runPassiveVector(t, s, &v)
		})
	}
}

func runPassiveVector(t *testing.T, s *suite, v *passiveVector) {
	kpMsg, err := UnmarshalMLSMessage(v.KeyPackage)
	if err != nil || kpMsg.WireFormat != WireFormatKeyPackage {
		t.Fatalf("key_package is not an MLSMessage(KeyPackage): %v", err)
	}
	kp := keyPackagePrivateFromVector(t, s, kpMsg.KeyPackage, v.SignaturePriv, v.EncryptionPriv, v.InitPriv)
	psks := make(map[string][]byte)
	for _, p := range v.ExternalPSKs {
		psks[string(p.PSKID)] = p.PSK
	}
	cfg := Config{
		ExternalPSK: func(id []byte) ([]byte, bool) {
			p, ok := psks[string(id)]
			return p, ok
		},
		// The vectors' KeyPackages are valid from 0 to 2^64-1.
		MaxLifetime: -1,
	}
	wMsg, err := UnmarshalMLSMessage(v.Welcome)
	if err != nil || wMsg.WireFormat != WireFormatWelcome {
		t.Fatalf("welcome is not an MLSMessage(Welcome): %v", err)
	}
	g, err := Join(wMsg.Welcome, kp, JoinOptions{RatchetTree: v.RatchetTree, Config: cfg})
	if err != nil {
		t.Fatalf("join: %v", err)
	}
	if !bytes.Equal(g.EpochAuthenticator(), v.InitialEpochAuthenticator) {
		t.Fatal("initial epoch authenticator differs")
	}
	for e, ep := range v.Epochs {
		for k, raw := range ep.Proposals {
			m, err := UnmarshalMLSMessage(raw)
			if err != nil {
				t.Fatalf("epoch %d proposal %d: %v", e, k, err)
			}
			ev, err := g.Process(m)
			if err != nil {
				t.Fatalf("epoch %d proposal %d: %v", e, k, err)
			}
			if _, ok := ev.(*ProposalEvent); !ok {
				t.Fatalf("epoch %d proposal %d yielded %T", e, k, ev)
			}
		}
		m, err := UnmarshalMLSMessage(ep.Commit)
		if err != nil {
			t.Fatalf("epoch %d commit: %v", e, err)
		}
		ev, err := g.Process(m)
		if err != nil {
			t.Fatalf("epoch %d commit: %v", e, err)
		}
		sc, ok := ev.(*StagedCommit)
		if !ok {
			t.Fatalf("epoch %d commit yielded %T", e, ev)
		}
		if err := g.Merge(sc); err != nil {
			t.Fatalf("epoch %d merge: %v", e, err)
		}
		if !bytes.Equal(g.EpochAuthenticator(), ep.EpochAuthenticator) {
			t.Fatalf("epoch %d: epoch authenticator differs", e)
		}
	}
}

// keyPackagePrivateFromVector assembles a KeyPackagePrivate from a
// vector's keys, checking each private key against its public key in kp.
func keyPackagePrivateFromVector(t *testing.T, s *suite, kp *KeyPackage, sigPriv, encPriv, initPriv []byte) *KeyPackagePrivate {
	t.Helper()
	sig := vectorSignatureKey(t, s, sigPriv, kp.LeafNode.SignatureKey)
	encPriv = vectorHPKEKey(t, s, "encryption_priv", encPriv, kp.LeafNode.EncryptionKey)
	initPriv = vectorHPKEKey(t, s, "init_priv", initPriv, kp.InitKey)
	return &KeyPackagePrivate{KeyPackage: kp, initPriv: initPriv, encryptionPriv: encPriv, sigKey: sig}
}

// vectorHPKEKey checks a vector's HPKE private key against pub and returns
// it in serialized form. Like the signature keys, the vectors write P-521
// scalars minimally; every ECDSA suite uses the same curve for its KEM, so
// the key is widened to the signature curve's size.
func vectorHPKEKey(t *testing.T, s *suite, name string, priv, pub []byte) []byte {
	t.Helper()
	if sg, ok := s.sig.(ecdsaSigner); ok {
		if size := (sg.curve.Params().BitSize + 7) / 8; len(priv) < size {
			priv = append(make([]byte, size-len(priv)), priv...)
		}
	}
	got, err := s.hpkePublicFromPrivate(priv)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if !bytes.Equal(got, pub) {
		t.Fatalf("%s does not match its public key", name)
	}
	return priv
}
