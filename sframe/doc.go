// Package sframe implements SFrame, the end-to-end encryption of real-time
// media frames of RFC 9605, with keys taken from an MLS group as in
// RFC 9605 §5.2. Hush encrypts call media with it, so the SFU that forwards
// the media sees only ciphertext.
//
// # Frames
//
// An SFrame ciphertext is a short header followed by the AEAD encryption of
// one media frame (or packet):
//
//	+--------+-----------+-----------+--------------------+-----+
//	| config | KID (0-8) | CTR (0-8) | encrypted frame    | tag |
//	+--------+-----------+-----------+--------------------+-----+
//	 \_____________ header _________/
//
// The key ID (KID) selects the key and the counter (CTR) makes the nonce;
// both travel in the clear and are authenticated. The header and any
// application metadata, such as fields the SFU must read, form the
// additional authenticated data (AAD). [Header] and [ParseHeader] encode and
// decode headers on their own.
//
// # Sending and receiving
//
// The RFC's "SFrame context" is split by direction, because a key must be
// used for encrypting or for decrypting, never both (RFC 9605 §4.4.1):
//
//   - A [Sender] holds one KID's key and encrypts with CTR 0, 1, 2, ...
//   - A [Receiver] maps KIDs to keys (AddKey, RemoveKey) and decrypts frames
//     from any of them.
//
// Both derive the AEAD key and salt once per KID (RFC 9605 §4.4.2), so each
// frame costs one AEAD operation. Encrypt and Decrypt append to a dst buffer
// in the manner of [cipher.AEAD]: with a dst of sufficient capacity the GCM
// suites do not allocate at all, and the AES-CTR-HMAC suites allocate once
// per frame, inside [cipher.NewCTR].
//
//	snd, err := sframe.NewSender(sframe.AES_128_GCM_SHA256_128, kid, baseKey)
//	frame, err := snd.Encrypt(buf[:0], metadata, media)
//
//	rcv, err := sframe.NewReceiver(sframe.AES_128_GCM_SHA256_128, sframe.DefaultReplayWindow)
//	err = rcv.AddKey(kid, baseKey)
//	media, err := rcv.Decrypt(out[:0], metadata, frame)
//
// # Keys from MLS
//
// In Hush every call belongs to an MLS group, and [MLSKeys] derives the call
// keys from it. Each epoch the group exports one base key,
//
//	base_key = MLS-Exporter("SFrame 1.0 Base Key", "", AEAD.Nk)
//
// and each member sends under KIDs of its own, which carry the low E bits
// of the epoch, the member's leaf index in the S bits above them, and a
// context ID in the rest:
//
//	KID = (context << (S + E)) + (sender_index << E) + (epoch % (1 << E))
//
// S is the smallest number of bits that holds every leaf index of the
// epoch; E is [MLSConfig].EpochBits and must be the same for every member.
// Because the KID is an input to key derivation, every member has its own
// key and salt. Call [MLSKeys.SetEpoch] with the epoch's exporter each time
// the group moves to a new epoch; the member then sends under the new key
// and still accepts frames from the epochs just before it.
//
// The package does not import Hush's MLS implementation: an [Exporter] is a
// plain function.
//
// # Cipher suites
//
// All five suites of RFC 9605 §4.5 are implemented:
// [AES_128_CTR_HMAC_SHA256_80], [AES_128_CTR_HMAC_SHA256_64] and
// [AES_128_CTR_HMAC_SHA256_32] (AES-CTR with a truncated HMAC tag, for
// bandwidth-starved streams), [AES_128_GCM_SHA256_128] (the sound default)
// and [AES_256_GCM_SHA512_128]. The primitives all come from the Go
// standard library.
//
// # Errors
//
// Decrypt fails with [ErrInvalidHeader] for a malformed header,
// [ErrUnknownKey] when no key matches the KID (the RFC allows buffering such
// a frame until its key arrives), [ErrReplay] when the replay window rejects
// it, and [ErrAuth] for every authentication failure alike, so a caller
// learns nothing about which check failed. Errors never contain key
// material.
//
// # Security considerations
//
// What is secret. Base keys, the exporter output they come from, and the
// keys and salts derived from them are secret, as is the media. The header
// is not: anyone on the path sees each frame's KID and CTR, and so, with MLS
// keys, the epoch's low bits, the sender's leaf index and the frame rate
// (RFC 9605 §7.1, §9.2). Metadata is authenticated but not encrypted, and
// must not be acted on before Decrypt has authenticated it (RFC 9605 §9.4).
// [Sender], [Receiver] and [MLSKeys] print as redacted under every fmt
// verb. Erased keys have their bytes cleared: a base key when its epoch
// leaves the window or on [MLSKeys.Close], a salt on [Receiver.RemoveKey] or
// when its epoch goes. The AES key schedule and HMAC state inside the
// standard library cannot be wiped; they are dropped for the garbage
// collector. So are the per-frame AES-CTR streams of the AES-CTR-HMAC
// suites, each of which holds a copy of the AES key schedule.
//
// CTR is never reused. A nonce is the salt XOR the CTR, so a (key, CTR) pair
// used twice would break the AEAD (RFC 9605 §7.4, §9.1). A Sender hands out
// each CTR once, is safe for concurrent use, and fails with
// [ErrCounterExhausted] rather than wrap. The application's part is to give
// each base key and KID to exactly one Sender, and never to make a second
// Sender for a base key that was used before, since a new Sender starts
// again at CTR 0. MLS provides a fresh base key every epoch, and MLSKeys
// refuses to go back to an epoch it has left; a device needs one MLSKeys per
// group and ContextID.
//
// Replay window. RFC 9605 §9.3 leaves replay protection to the
// application. Receiver and MLSKeys keep, per KID, a sliding window over CTR
// values in the manner of RFC 3711 §3.3.2: a frame is rejected if its CTR
// was already accepted, or if it is [DefaultReplayWindow] (128, settable up
// to [MaxReplayWindow]) or more behind the highest CTR accepted. Only frames
// that authenticate move the window, so forgeries cannot block genuine
// frames. Frames reordered by more than the window are dropped. Replay
// protection can be turned off where the transport already provides it,
// but it matters most with the short tags of the AES-CTR-HMAC suites: it
// makes each successful forgery usable only once (RFC 9605 §7.5), and a
// 32-bit tag is forgeable by brute force at high packet rates, so prefer
// AES_128_GCM_SHA256_128 unless bandwidth really is that scarce.
//
// Epoch window. Frames are still in flight when the group rekeys, so
// MLSKeys decrypts frames of the last [MLSConfig].Epochs epochs
// ([DefaultEpochs], 4), never more than 2^E so that no two held epochs share
// KIDs (RFC 9605 §5.2). A member removed from the group cannot read frames
// of any later epoch, but frames it sent, or sends, under an epoch still in
// the window are accepted until that epoch leaves it; keep the window short.
// When an epoch leaves the window its base key is cleared, and with it the
// means to derive that epoch's keys again.
//
// No sender authentication. Every member of the group can derive every
// other member's keys, so a member can forge frames that appear to come from
// another (RFC 9605 §7.2). MLSKeys does refuse frames carrying its own leaf
// index, since it never decrypts with a key it sends with.
package sframe
