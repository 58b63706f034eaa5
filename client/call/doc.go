// Package call is the media side of a Hush call: it encrypts this
// device's audio and video frame by frame with SFrame (RFC 9605) under
// keys exported from the conversation's MLS group, sends them to the SFU
// (server/calls) over one pion/webrtc PeerConnection, and decrypts what
// the other participants send.
//
// # Frames and packets
//
// As WebRTC encoded transforms do, a [Sender] encrypts each whole
// encoded frame (an Opus packet, a VP8 frame) before packetization, and a
// [Remote] decrypts after reassembly. The choice is the codec's payload
// descriptor in the clear, as browsers do: the ciphertext travels in the
// codec's own RTP payload format, so a browser and a Go client hear each
// other. Opus (RFC 7587): one frame per packet. VP8 (RFC 7741, pion's
// VP8Payloader): packets of at most 1200 bytes, each a VP8 payload
// descriptor (S = 1 on the frame's first packet) and a fragment of the
// ciphertext, the marker bit on the last. The draft RTP payload format
// for SFrame (draft-ietf-avtcore-rtp-sframe) is not used. The receiver
// reassembles frames by sequence number, timestamp and marker bit, drops
// duplicates, and skips a frame missing a packet after Config.MaxDelay.
// Frames come out exactly as they went in.
//
// # Keys
//
// [Keys] hold one sframe.MLSKeys per stream (audio under context ID 0,
// video under 1, so the two never share a key and counter) made from the
// group's exporter. Call [Keys.Update] after every commit the group
// merges: frames go out under the new epoch at once, and frames of the
// previous three epochs still decrypt, for those in flight. A member
// removed by a commit gets no key of the new epoch.
//
// # Sessions
//
// [Start] joins a conversation's call through the client core (package
// client): it sends the members an invite or a join (an MLS message),
// joins the SFU's room over the client's push connection ([client.Client.Run]
// must be running), answers the SFU's offers, and moves the keys to the
// group's new epoch after every commit the client merges. When the room
// lives on another server node, the server answers with a "moved" frame
// and the session opens a connection of its own to that node (same
// scheme, same device credentials) for the call's signalling.
// [Session.Leave] hangs up: it leaves the room, tells the members, and
// erases the keys.
//
// # Files
//
// [Publish] plays an Ogg Opus file and an IVF (VP8) file in real time;
// [Record] writes a received stream to DIR/DEVICE.ogg or DEVICE.ivf.
// [OpusReader] follows the Ogg lacing, so that files with several packets
// per page, or packets across pages, play packet for packet.
//
// # Security considerations
//
// Media keys and the media are secret; [Keys] prints as redacted. The
// SFU and anyone on the path see the RTP and SFrame headers: who sends,
// when, how much, and each frame's key ID, which carries the sender's
// leaf index and the epoch's low bits (RFC 9605 §9.2). Every member can
// derive every member's keys, so a member can forge another member's
// frames (RFC 9605 §7.2). The metadata authenticated with each frame is
// empty: RTP headers are rewritten by the SFU and cannot be bound.
package call
