// Package calls is Hush's SFU: it forwards the audio and video of calls
// among the devices of a conversation, on pion/webrtc, without being able
// to read any of it.
//
// # Rooms
//
// A call is a room keyed by a group id and a call id. Each device in it
// has one PeerConnection to the SFU: it publishes one Opus and one VP8
// track and receives every other device's, which the SFU copies to it:
// each published track has a forwarder, the TrackLocal that every
// subscriber's RTPSender binds (one binding per subscriber, each with its
// own SSRC and payload type), which rewrites only those two header fields
// and allocates nothing per packet. A room closes
// when its last device leaves; Options.MaxParticipants bounds its size.
//
// # Signalling
//
// The server makes a [Session] per authenticated WebSocket connection
// with [SFU.Connect] and passes it each "call" frame ([proto.Call]):
// join, answer, leave. The SFU always makes the offers: on join, and
// whenever the tracks a device receives change; each carries every ICE
// candidate (no trickle). ICE on loopback needs no STUN or TURN
// (Options.LoopbackOnly); on real networks the SFU needs a reachable
// address (Options.PublicIPs, Options.UDPPortMin/Max) and devices behind
// restrictive NATs a TURN server (Options.ICEServers, sent with the first
// offer).
//
// With several server nodes, Options.Place says where each room lives
// (the server backs it with package server/cluster): a join for a room
// another node hosts goes through Options.Remote, which relays the
// device's signalling to that node (its SFU makes the session with
// [SFU.ConnectRelayed]; the device's media goes straight there), or,
// without a Remote, gets a CallMoved frame with that node's URL.
// Options.Release gives a room up when it closes; [SFU.EndRoom] ends a
// room the directory placed elsewhere meanwhile. The server's
// Options.Authorize checks the roster in the store, and the server calls
// [SFU.EvictAbsent] when a commit replaces a group's roster, and every
// 2 seconds for the groups of the open rooms ([SFU.Groups]), for commits
// other nodes accepted.
//
// Ringing, inviting, declining and hanging up are not the SFU's business:
// they travel between the members as MLS application messages.
//
// # Feedback
//
// Losses are repaired hop by hop: the SFU's NACK generator asks
// publishers to resend, and each forwarder answers subscribers' NACKs
// from one history of the track's latest packets (pion's NACK responder,
// which would keep a copy per subscriber, is kept off forwarded streams).
// A lost packet is asked for, and sent again to a subscriber, at most
// three times (rtc.MaxNacksPerPacket). Keyframe requests (PLI, FIR) from
// subscribers pass through to the publisher, at most one per track every
// 500 ms; the SFU asks for a keyframe itself when a device joins.
//
// # Forwarding
//
// Each published track's packets are forwarded on the goroutine of the
// publisher's SRTP session, as it decrypts them: the session writes into
// an inbox (the BufferFactory of the peer's own webrtc.API) that hands
// the packet to the track's forwarder at once, through the track's Read
// and pion's receive interceptors, rather than queueing it for a reader
// goroutine.
//
// # Security considerations
//
// The SFU holds no media key: a test fails if it links the packages
// that derive them. Payloads are SFrame ciphertext (RFC 9605) in the
// codecs' own RTP payload formats (Opus; VP8 with its payload descriptor
// in the clear, as browsers send it); the SFU sees the RTP headers, the
// VP8 descriptors, the SFrame headers (so each frame's key ID, which carries the
// sender's leaf index and the epoch's low bits) and the frames' sizes and
// times. [Options.TestHookForward] exists for the tests that prove the
// payloads are ciphertext; production code leaves it nil.
//
// The SFU trusts the server for authentication: Session's device id must
// be authenticated, and Options.Authorize should check the device is on
// the group's roster. A device taken off the roster should be passed to
// [SFU.Evict]; it could not decrypt later media anyway, since the group's
// next epoch brings new keys.
package calls
