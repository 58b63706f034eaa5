package mls

// The key schedule of RFC 9420 §8. Each epoch mixes the previous epoch's
// init_secret, the Commit's commit_secret, the PSKs' psk_secret and the new
// GroupContext into epoch_secret, from which every epoch secret is derived:
//
//	joiner_secret  = ExpandWithLabel(Extract(init_secret, commit_secret), "joiner", GroupContext, Nh)
//	member_secret  = Extract(joiner_secret, psk_secret)
//	welcome_secret = DeriveSecret(member_secret, "welcome")
//	epoch_secret   = ExpandWithLabel(member_secret, "epoch", GroupContext, Nh)
//	<secret>       = DeriveSecret(epoch_secret, <label>)
//
// KDF.Extract takes the salt from above (the running secret) and the input
// keying material from the left (the injected secret).

// epochSecrets holds the secrets of one epoch (§8, table in §8). Every
// field is a fresh slice owned by the struct; wipe erases them all.
type epochSecrets struct {
	suite *suite

	// joiner is joiner_secret, sent to new members in GroupSecrets (§12.4.3.1).
	joiner []byte
	// welcome is welcome_secret, which encrypts the GroupInfo of a Welcome.
	welcome []byte

	senderData         []byte // "sender data": keys the SenderData of PrivateMessages (§6.3.2)
	encryption         []byte // "encryption": root of the secret tree (§9)
	exporter           []byte // "exporter": MLS-Exporter (§8.5)
	external           []byte // "external": the external init key pair (§8.3)
	confirmation       []byte // "confirm": confirmation_tag of Commits (§6.1)
	membership         []byte // "membership": membership_tag of PublicMessages (§6.2)
	resumption         []byte // "resumption": this epoch's resumption PSK (§8.6)
	epochAuthenticator []byte // "authentication": epoch_authenticator (§8.7)
	init               []byte // "init": init_secret of the next epoch
}

// zeroIfAbsent returns secret, or the all-zero vector of KDF.Nh bytes that
// §8 prescribes when no commit_secret or psk_secret is present.
func zeroIfAbsent(s *suite, secret []byte) []byte {
	if secret == nil {
		return make([]byte, s.nh())
	}
	return secret
}

// newEpochSecrets runs the whole key schedule for a member that processes
// (or creates) a Commit: from the previous epoch's init_secret, the
// commit_secret (nil for none), the psk_secret (nil for none) and the
// encoded GroupContext of the new epoch.
func newEpochSecrets(s *suite, initSecret, commitSecret, pskSecret, groupContext []byte) *epochSecrets {
	prk := s.extract(initSecret, zeroIfAbsent(s, commitSecret))
	joiner := s.expandWithLabel(prk, "joiner", groupContext, s.nh())
	clear(prk)
	e := epochSecretsFromJoiner(s, joiner, pskSecret, groupContext)
	clear(joiner)
	return e
}

// memberSecret is Extract(joiner_secret, psk_secret), the unnamed secret
// between joiner_secret and epoch_secret in §8's diagram.
func memberSecret(s *suite, joinerSecret, pskSecret []byte) []byte {
	return s.extract(joinerSecret, zeroIfAbsent(s, pskSecret))
}

// welcomeSecret derives welcome_secret from joiner_secret and psk_secret
// (nil for none). A new member needs it before it knows the GroupContext:
// it decrypts the GroupInfo that carries it (§12.4.3.1).
func welcomeSecret(s *suite, joinerSecret, pskSecret []byte) []byte {
	member := memberSecret(s, joinerSecret, pskSecret)
	defer clear(member)
	return s.deriveSecret(member, "welcome")
}

// welcomeKeyNonce derives the AEAD key and nonce that encrypt the GroupInfo
// of a Welcome (§12.4.3.1).
func welcomeKeyNonce(s *suite, welcomeSecret []byte) (key, nonce []byte) {
	return s.expandWithLabel(welcomeSecret, "key", nil, s.nk),
		s.expandWithLabel(welcomeSecret, "nonce", nil, s.nn)
}

// epochSecretsFromJoiner enters the key schedule at joiner_secret: the
// path of a new member that read joiner_secret from a Welcome's
// GroupSecrets and the GroupContext from its GroupInfo. pskSecret is nil
// when the Welcome names no PSKs. joinerSecret is copied, not retained.
func epochSecretsFromJoiner(s *suite, joinerSecret, pskSecret, groupContext []byte) *epochSecrets {
	member := memberSecret(s, joinerSecret, pskSecret)
	epoch := s.expandWithLabel(member, "epoch", groupContext, s.nh())
	e := &epochSecrets{
		suite:              s,
		joiner:             append([]byte(nil), joinerSecret...),
		welcome:            s.deriveSecret(member, "welcome"),
		senderData:         s.deriveSecret(epoch, "sender data"),
		encryption:         s.deriveSecret(epoch, "encryption"),
		exporter:           s.deriveSecret(epoch, "exporter"),
		external:           s.deriveSecret(epoch, "external"),
		confirmation:       s.deriveSecret(epoch, "confirm"),
		membership:         s.deriveSecret(epoch, "membership"),
		resumption:         s.deriveSecret(epoch, "resumption"),
		epochAuthenticator: s.deriveSecret(epoch, "authentication"),
		init:               s.deriveSecret(epoch, "init"),
	}
	clear(member)
	clear(epoch)
	return e
}

// wipe erases every secret. The struct must not be used afterwards.
func (e *epochSecrets) wipe() {
	for _, b := range []*[]byte{
		&e.joiner, &e.welcome, &e.senderData, &e.encryption, &e.exporter,
		&e.external, &e.confirmation, &e.membership, &e.resumption,
		&e.epochAuthenticator, &e.init,
	} {
		clear(*b)
		*b = nil
	}
}

// exportSecret is MLS-Exporter(label, context, length) of §8.5:
//
//	ExpandWithLabel(DeriveSecret(exporter_secret, label), "exported", Hash(context), length)
//
// length must be at most 255·KDF.Nh, the most HKDF-Expand can produce.
func (e *epochSecrets) exportSecret(label string, context []byte, length int) ([]byte, error) {
	if length < 0 || length > 255*e.suite.nh() {
		return nil, errorf("exporter length %d out of range", length)
	}
	derived := e.suite.deriveSecret(e.exporter, label)
	defer clear(derived)
	return e.suite.expandWithLabel(derived, "exported", e.suite.hash(context), length), nil
}

// externalKeyPair is the HPKE key pair derived from external_secret (§8.3).
// Its public half is published in the external_pub GroupInfo extension so
// that non-members can join by external Commit.
func (e *epochSecrets) externalKeyPair() (priv, pub []byte, err error) {
	return e.suite.deriveKeyPair(e.external)
}

// externalInitSecret recovers the init_secret an external joiner chose
// (§8.3) from the kem_output of its ExternalInit proposal. The joiner's
// side is suite.exportExternal on the external_pub of the GroupInfo.
func (e *epochSecrets) externalInitSecret(kemOutput []byte) ([]byte, error) {
	priv, _, err := e.externalKeyPair()
	if err != nil {
		return nil, err
	}
	defer clear(priv)
	return e.suite.importExternal(priv, kemOutput)
}
