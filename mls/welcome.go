package mls

import (
	"crypto/subtle"

	"golang.org/x/crypto/cryptobyte"
)

// Welcome messages (RFC 9420 §12.4.3.1): how a Commit's new members learn
// the secrets and the GroupInfo of the epoch they join.

// groupSecrets is what each new member of a Welcome decrypts with its
// KeyPackage's init key (§12.4.3.1). pathSecret is the path secret of the
// lowest node the joiner shares with the committer's path, or nil when the
// Commit had no path; a present but empty path secret is kept as a
// non-nil empty slice, so that it re-encodes as it came.
type groupSecrets struct {
	joinerSecret []byte
	pathSecret   []byte
	psks         []PreSharedKeyID
}

func (g *groupSecrets) marshal(b *cryptobyte.Builder) {
	addOpaque(b, g.joinerSecret)
	addOptional(b, g.pathSecret != nil, func(b *cryptobyte.Builder) { addOpaque(b, g.pathSecret) })
	addVector(b, func(b *cryptobyte.Builder) {
		for i := range g.psks {
			g.psks[i].marshal(b)
		}
	})
}

func (g *groupSecrets) unmarshal(s *cryptobyte.String) bool {
	*g = groupSecrets{}
	var present bool
	return readOpaque(s, &g.joinerSecret) &&
		readOptional(s, &present, func(s *cryptobyte.String) bool {
			if !readOpaque(s, &g.pathSecret) {
				return false
			}
			if g.pathSecret == nil {
				g.pathSecret = []byte{}
			}
			return true
		}) &&
		readList(s, func(s *cryptobyte.String) bool {
			var id PreSharedKeyID
			if !id.unmarshal(s) {
				return false
			}
			g.psks = append(g.psks, id)
			return true
		})
}

// wipe erases the secrets.
func (g *groupSecrets) wipe() {
	clear(g.joinerSecret)
	clear(g.pathSecret)
}

// EncryptedGroupSecrets is the group secrets of one new member, encrypted
// to the init key of the KeyPackage NewMember names (§12.4.3.1).
type EncryptedGroupSecrets struct {
	NewMember             KeyPackageRef
	EncryptedGroupSecrets HPKECiphertext
}

func (e *EncryptedGroupSecrets) marshal(b *cryptobyte.Builder) {
	addOpaque(b, e.NewMember)
	e.EncryptedGroupSecrets.marshal(b)
}

func (e *EncryptedGroupSecrets) unmarshal(s *cryptobyte.String) bool {
	return readOpaque(s, (*[]byte)(&e.NewMember)) && e.EncryptedGroupSecrets.unmarshal(s)
}

// Welcome brings new members into a group (§12.4.3.1): one
// EncryptedGroupSecrets per new member, and the GroupInfo of the new epoch
// encrypted under a key derived from welcome_secret.
type Welcome struct {
	CipherSuite        CipherSuite
	Secrets            []EncryptedGroupSecrets
	EncryptedGroupInfo []byte
}

func (w *Welcome) marshal(b *cryptobyte.Builder) {
	b.AddUint16(uint16(w.CipherSuite))
	addVector(b, func(b *cryptobyte.Builder) {
		for i := range w.Secrets {
			w.Secrets[i].marshal(b)
		}
	})
	addOpaque(b, w.EncryptedGroupInfo)
}

func (w *Welcome) unmarshal(s *cryptobyte.String) bool {
	var cs uint16
	if !s.ReadUint16(&cs) {
		return false
	}
	*w = Welcome{CipherSuite: CipherSuite(cs)}
	return readList(s, func(s *cryptobyte.String) bool {
		var e EncryptedGroupSecrets
		if !e.unmarshal(s) {
			return false
		}
		w.Secrets = append(w.Secrets, e)
		return true
	}) && readOpaque(s, &w.EncryptedGroupInfo)
}

// Marshal returns the encoding of w (without an MLSMessage envelope).
func (w *Welcome) Marshal() ([]byte, error) { return encode(w) }

// welcomeLabel is the EncryptWithLabel label of GroupSecrets (§12.4.3.1).
const welcomeLabel = "Welcome"

// welcomeRecipient is one new member of a Welcome: its KeyPackage and the
// path secret it is to receive (nil when the Commit has no path).
type welcomeRecipient struct {
	keyPackage *KeyPackage
	pathSecret []byte
}

// newWelcome builds the Welcome of a Commit (§12.4.3.1): gi, already signed,
// is encrypted with the key and nonce derived from welcomeSecret; then for
// each recipient the GroupSecrets {joinerSecret, its path secret, psks} are
// encrypted to its init key with the encrypted GroupInfo as context. The
// recipients' encryptions are independent: they run in parallel.
func newWelcome(s *suite, gi *GroupInfo, welcomeSecret, joinerSecret []byte, psks []PreSharedKeyID, recipients []welcomeRecipient) (*Welcome, error) {
	encryptedGroupInfo, err := encryptGroupInfo(s, welcomeSecret, gi)
	if err != nil {
		return nil, err
	}
	w := &Welcome{CipherSuite: s.id, EncryptedGroupInfo: encryptedGroupInfo}
	w.Secrets = make([]EncryptedGroupSecrets, len(recipients))
	err = parallel(len(recipients), func(i int) error {
		r := &recipients[i]
		ref, err := makeKeyPackageRef(s, r.keyPackage)
		if err != nil {
			return err
		}
		gs := groupSecrets{joinerSecret: joinerSecret, pathSecret: r.pathSecret, psks: psks}
		ct, err := encryptGroupSecrets(s, r.keyPackage.InitKey, encryptedGroupInfo, &gs)
		w.Secrets[i] = EncryptedGroupSecrets{NewMember: ref, EncryptedGroupSecrets: ct}
		return err
	})
	if err != nil {
		return nil, err
	}
	return w, nil
}

// encryptGroupSecrets is EncryptWithLabel(init_key, "Welcome",
// encrypted_group_info, group_secrets) of §12.4.3.1.
func encryptGroupSecrets(s *suite, initKey, encryptedGroupInfo []byte, gs *groupSecrets) (HPKECiphertext, error) {
	pt, err := encode(gs)
	if err != nil {
		return HPKECiphertext{}, err
	}
	defer clear(pt)
	kemOutput, ct, err := s.encryptWithLabel(initKey, welcomeLabel, encryptedGroupInfo, pt)
	if err != nil {
		return HPKECiphertext{}, err
	}
	return HPKECiphertext{KEMOutput: kemOutput, Ciphertext: ct}, nil
}

// findSecrets returns the entry of w addressed to the KeyPackage ref.
func (w *Welcome) findSecrets(ref KeyPackageRef) (*EncryptedGroupSecrets, bool) {
	for i := range w.Secrets {
		if subtle.ConstantTimeCompare(w.Secrets[i].NewMember, ref) == 1 {
			return &w.Secrets[i], true
		}
	}
	return nil, false
}

// decryptGroupSecrets finds the entry of w for the KeyPackage kp and
// decrypts it with initPriv, kp's private init key. The caller checks the
// PSKs and path secret against the GroupInfo it decrypts next, and wipes
// the result once it has entered the key schedule.
func decryptGroupSecrets(s *suite, w *Welcome, kp *KeyPackage, initPriv []byte) (*groupSecrets, error) {
	if w.CipherSuite != s.id || kp.CipherSuite != s.id {
		return nil, errorf("Welcome (%v) or KeyPackage (%v) is not for cipher suite %v", w.CipherSuite, kp.CipherSuite, s.id)
	}
	ref, err := makeKeyPackageRef(s, kp)
	if err != nil {
		return nil, err
	}
	entry, ok := w.findSecrets(ref)
	if !ok {
		return nil, errorf("Welcome has no secrets for this KeyPackage")
	}
	ct := &entry.EncryptedGroupSecrets
	pt, err := s.decryptWithLabel(initPriv, welcomeLabel, w.EncryptedGroupInfo, ct.KEMOutput, ct.Ciphertext)
	if err != nil {
		return nil, err
	}
	defer clear(pt)
	gs := new(groupSecrets)
	if err := decode(pt, gs, "GroupSecrets"); err != nil {
		gs.wipe()
		return nil, err
	}
	return gs, nil
}

// encryptGroupInfo seals gi with the welcome key and nonce (§12.4.3.1).
func encryptGroupInfo(s *suite, welcomeSecret []byte, gi *GroupInfo) ([]byte, error) {
	pt, err := encode(gi)
	if err != nil {
		return nil, err
	}
	key, nonce := welcomeKeyNonce(s, welcomeSecret)
	defer clear(key)
	aead, err := s.newAEAD(key)
	if err != nil {
		return nil, err
	}
	return aead.Seal(nil, nonce, pt, nil), nil
}

// decryptGroupInfo opens a Welcome's encrypted_group_info with the key and
// nonce derived from welcomeSecret and decodes the GroupInfo. Its signature
// and confirmation tag are still to be checked by the caller.
func decryptGroupInfo(s *suite, welcomeSecret, encryptedGroupInfo []byte) (*GroupInfo, error) {
	key, nonce := welcomeKeyNonce(s, welcomeSecret)
	defer clear(key)
	aead, err := s.newAEAD(key)
	if err != nil {
		return nil, err
	}
	pt, err := aead.Open(nil, nonce, encryptedGroupInfo, nil)
	if err != nil {
		return nil, errDecrypt
	}
	gi := new(GroupInfo)
	if err := decode(pt, gi, "GroupInfo"); err != nil {
		return nil, err
	}
	return gi, nil
}
