package mls

import (
	"fmt"

	"golang.org/x/crypto/cryptobyte"
)

// Pre-shared keys (RFC 9420 §8.4). A PreSharedKeyID names a PSK; the PSK
// values themselves are injected into the key schedule as psk_secret.

// PSKType tells an external PSK from a resumption PSK (§8.4).
type PSKType uint8

const (
	PSKExternal   PSKType = 1
	PSKResumption PSKType = 2
)

// ResumptionPSKUsage is why a resumption PSK is used (§8.4).
type ResumptionPSKUsage uint8

const (
	ResumptionApplication ResumptionPSKUsage = 1
	ResumptionReinit      ResumptionPSKUsage = 2
	ResumptionBranch      ResumptionPSKUsage = 3
)

func (u ResumptionPSKUsage) valid() bool {
	return u >= ResumptionApplication && u <= ResumptionBranch
}

// PreSharedKeyID identifies a PSK (§8.4). PSKID is set for an external PSK;
// Usage, PSKGroupID and PSKEpoch for a resumption PSK. PSKNonce is a fresh
// random value of KDF.Nh bytes chosen by whoever proposes the PSK.
type PreSharedKeyID struct {
	PSKType PSKType

	PSKID []byte // external

	Usage      ResumptionPSKUsage // resumption
	PSKGroupID []byte             // resumption
	PSKEpoch   uint64             // resumption

	PSKNonce []byte
}

func (p *PreSharedKeyID) marshal(b *cryptobyte.Builder) {
	b.AddUint8(uint8(p.PSKType))
	switch p.PSKType {
	case PSKExternal:
		addOpaque(b, p.PSKID)
	case PSKResumption:
		b.AddUint8(uint8(p.Usage))
		addOpaque(b, p.PSKGroupID)
		b.AddUint64(p.PSKEpoch)
	default:
		b.SetError(fmt.Errorf("%w: unknown PSK type %d", ErrDecode, p.PSKType))
		return
	}
	addOpaque(b, p.PSKNonce)
}

func (p *PreSharedKeyID) unmarshal(s *cryptobyte.String) bool {
	*p = PreSharedKeyID{}
	var t uint8
	if !s.ReadUint8(&t) {
		return false
	}
	p.PSKType = PSKType(t)
	switch p.PSKType {
	case PSKExternal:
		if !readOpaque(s, &p.PSKID) {
			return false
		}
	case PSKResumption:
		var u uint8
		if !s.ReadUint8(&u) || !ResumptionPSKUsage(u).valid() {
			return false
		}
		p.Usage = ResumptionPSKUsage(u)
		if !readOpaque(s, &p.PSKGroupID) || !s.ReadUint64(&p.PSKEpoch) {
			return false
		}
	default:
		return false
	}
	return readOpaque(s, &p.PSKNonce)
}

// validate checks what decoding cannot: the nonce is KDF.Nh bytes long
// (§8.4) and a resumption PSK has a known usage.
func (p *PreSharedKeyID) validate(s *suite) error {
	switch p.PSKType {
	case PSKExternal:
	case PSKResumption:
		if !p.Usage.valid() {
			return errorf("unknown resumption PSK usage %d", p.Usage)
		}
	default:
		return errorf("unknown PSK type %d", p.PSKType)
	}
	if len(p.PSKNonce) != s.nh() {
		return errorf("PSK nonce is %d bytes, want %d", len(p.PSKNonce), s.nh())
	}
	return nil
}

// pskLabel is PSKLabel of §8.4: the context of each PSK's derivation.
type pskLabel struct {
	id           *PreSharedKeyID
	index, count uint16
}

func (l *pskLabel) marshal(b *cryptobyte.Builder) {
	l.id.marshal(b)
	b.AddUint16(l.index)
	b.AddUint16(l.count)
}

// pskInput pairs a PSK's identifier with its value.
type pskInput struct {
	ID  PreSharedKeyID
	PSK []byte
}

// maxPSKs is the largest number of PSKs one epoch can inject: PSKLabel
// counts them in a uint16.
const maxPSKs = 1<<16 - 1

// pskSecret computes psk_secret from the PSKs in the order they appear in
// the Commit (or GroupSecrets), as §8.4 chains them:
//
//	psk_extracted_[i] = KDF.Extract(0, psk_[i])
//	psk_input_[i]     = ExpandWithLabel(psk_extracted_[i], "derived psk", PSKLabel, KDF.Nh)
//	psk_secret_[0]    = 0
//	psk_secret_[i]    = KDF.Extract(psk_input_[i-1], psk_secret_[i-1])
//
// With no PSKs the result is the all-zero vector of KDF.Nh bytes.
func pskSecret(s *suite, psks []pskInput) ([]byte, error) {
	if len(psks) > maxPSKs {
		return nil, errorf("%d PSKs, at most %d allowed", len(psks), maxPSKs)
	}
	nh := s.nh()
	zero := make([]byte, nh)
	secret := make([]byte, nh)
	for i := range psks {
		label := pskLabel{id: &psks[i].ID, index: uint16(i), count: uint16(len(psks))}
		ctx, err := encode(&label)
		if err != nil {
			clear(secret)
			return nil, err
		}
		extracted := s.extract(zero, psks[i].PSK)
		input := s.expandWithLabel(extracted, "derived psk", ctx, nh)
		next := s.extract(input, secret)
		clear(extracted)
		clear(input)
		clear(secret)
		secret = next
	}
	return secret, nil
}
