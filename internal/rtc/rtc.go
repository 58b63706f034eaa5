// Package rtc holds the WebRTC settings that Hush's SFU (server/calls) and
// its clients (client/call) must agree on, all on pion/webrtc: the codecs
// and their payload types, the interceptors and the ICE settings.
//
// Calls carry SFrame ciphertext in the codecs' own RTP payload formats, as
// browsers' encoded transforms do (see client/call), not in the payload
// format of draft-ietf-avtcore-rtp-sframe, so their SDP carries no
// a=sframe: [MarkSFrame] and [CheckSFrame] are kept for tests only.
package rtc

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"

	"github.com/pion/dtls/v3"
	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/nack"
	"github.com/pion/sdp/v3"
	"github.com/pion/transport/v4/packetio"
	"github.com/pion/webrtc/v4"
)

// Payload types of the codecs, whose frames travel SFrame-encrypted.
const (
	PayloadTypeOpus = 111
	PayloadTypeVP8  = 96
)

// Codecs of a call: Opus audio and VP8 video.
var (
	Opus = webrtc.RTPCodecCapability{
		MimeType:    webrtc.MimeTypeOpus,
		ClockRate:   48000,
		Channels:    2,
		SDPFmtpLine: "minptime=10;useinbandfec=1",
	}
	VP8 = webrtc.RTPCodecCapability{
		MimeType:  webrtc.MimeTypeVP8,
		ClockRate: 90000,
	}
)

// srtpProfiles are the SRTP protection profiles offered in DTLS, in order
// of preference; the DTLS server picks its first that the client offers.
// pion's default puts AEAD_AES_256_GCM first; AEAD_AES_128_GCM is as safe
// for media keys that live one call and costs about a tenth less per
// packet (BenchmarkSRTP in server/calls), which the SFU pays once per
// packet per subscriber. Browsers offer both GCM profiles;
// AES_CM_128_HMAC_SHA1_80, five times dearer, is the fallback for peers
// without GCM.
var srtpProfiles = []dtls.SRTPProtectionProfile{
	dtls.SRTP_AEAD_AES_128_GCM,
	dtls.SRTP_AEAD_AES_256_GCM,
	dtls.SRTP_AES128_CM_HMAC_SHA1_80,
}

// MaxNacksPerPacket is how many times a receiver asks for a lost packet
// again (a NACK every 100 ms while it is missing). pion's default is no
// limit: each lost packet was asked for every 100 ms for as long as it
// stayed in the 512-packet window (10 s of audio), which turned losses on
// a busy machine into a storm of requests and retransmissions (twice as
// many packets resent as forwarded in BenchmarkForward). A packet that
// comes later than client/call's 200 ms reordering delay is of no use;
// three requests span 300 ms.
const MaxNacksPerPacket = 3

// Config configures [NewAPI].
type Config struct {
	// Logger receives pion's logs; nil discards them.
	Logger *slog.Logger

	// LoopbackOnly restricts ICE to loopback addresses over UDP/IPv4, for
	// tests and single-machine setups: no STUN or TURN server is needed.
	LoopbackOnly bool

	// PublicIPs are the addresses a host behind 1:1 NAT is reached at; they
	// replace the host candidates' addresses.
	PublicIPs []string

	// UDPPortMin and UDPPortMax, when set, bound the ephemeral UDP ports
	// that ICE uses, for a firewall to open.
	UDPPortMin, UDPPortMax uint16

	// BufferFactory, if set, makes the buffers into which the SRTP and
	// SRTCP sessions write the packets they decrypt, one per SSRC, instead
	// of pion's default (see webrtc.SettingEngine.BufferFactory).
	BufferFactory func(packetType packetio.BufferPacketType, ssrc uint32) io.ReadWriteCloser
}

// NewAPI returns a pion API with Hush's codecs and interceptors: NACK
// generation and response (hop by hop: the SFU repairs losses on each
// leg), PLI feedback for video, and RTCP sender and receiver reports.
func NewAPI(c Config) (*webrtc.API, error) {
	m := &webrtc.MediaEngine{}
	audio := Opus
	audio.RTCPFeedback = []webrtc.RTCPFeedback{{Type: "nack"}}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: audio, PayloadType: PayloadTypeOpus}, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, err
	}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: VP8, PayloadType: PayloadTypeVP8}, webrtc.RTPCodecTypeVideo); err != nil {
		return nil, err
	}
	ir := &interceptor.Registry{}
	// First, so that its reader is the innermost (see reuseAttributes).
	ir.Add(reuseAttributesFactory{})
	// Adds "nack" and "nack pli" feedback to the video codec.
	gen := []nack.GeneratorOption{nack.GeneratorMaxNacksPerPacket(MaxNacksPerPacket)}
	if err := webrtc.ConfigureNackWithOptions(m, ir, gen); err != nil {
		return nil, err
	}
	if err := webrtc.ConfigureRTCPReports(ir); err != nil {
		return nil, err
	}

	se := webrtc.SettingEngine{LoggerFactory: loggerFactory{logger(c.Logger)}}
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	// Tracks are known from the SDP, so the SFU wires up forwarding, and a
	// client its receivers, as soon as a negotiation completes.
	se.SetFireOnTrackBeforeFirstRTP(true)
	se.SetSRTPProtectionProfiles(srtpProfiles...)
	if c.LoopbackOnly {
		se.SetIncludeLoopbackCandidate(true)
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
		se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	}
	se.BufferFactory = c.BufferFactory
	if len(c.PublicIPs) > 0 {
		se.SetNAT1To1IPs(c.PublicIPs, webrtc.ICECandidateTypeHost)
	}
	if c.UDPPortMin != 0 || c.UDPPortMax != 0 {
		if err := se.SetEphemeralUDPPortRange(c.UDPPortMin, c.UDPPortMax); err != nil {
			return nil, fmt.Errorf("rtc: UDP ports: %w", err)
		}
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se)), nil
}

// SFrameAttribute is the media-level SDP attribute by which an endpoint
// says it expects to receive SFrame RTP packets in that media section
// (draft-ietf-avtcore-rtp-sframe §6).
const SFrameAttribute = "sframe"

// ErrNoSFrame is returned by [CheckSFrame] for a description with an
// audio or video section that lacks a=sframe.
var ErrNoSFrame = errors.New("rtc: media section without a=sframe")

// MarkSFrame adds a=sframe to every audio and video section of an SDP
// description. The attribute travels in the signalled SDP only: pion does
// not know it and ignores it.
func MarkSFrame(description string) (string, error) {
	var s sdp.SessionDescription
	if err := s.UnmarshalString(description); err != nil {
		return "", fmt.Errorf("rtc: parsing SDP: %w", err)
	}
	for _, m := range s.MediaDescriptions {
		if isMedia(m) {
			if _, ok := m.Attribute(SFrameAttribute); !ok {
				m.WithPropertyAttribute(SFrameAttribute)
			}
		}
	}
	out, err := s.Marshal()
	if err != nil {
		return "", fmt.Errorf("rtc: encoding SDP: %w", err)
	}
	return string(out), nil
}

// CheckSFrame returns [ErrNoSFrame] unless every active audio and video
// section of an SDP description carries a=sframe.
func CheckSFrame(description string) error {
	var s sdp.SessionDescription
	if err := s.UnmarshalString(description); err != nil {
		return fmt.Errorf("rtc: parsing SDP: %w", err)
	}
	for _, m := range s.MediaDescriptions {
		if _, ok := m.Attribute(SFrameAttribute); isMedia(m) && m.MediaName.Port.Value != 0 && !ok {
			return ErrNoSFrame
		}
	}
	return nil
}

func isMedia(m *sdp.MediaDescription) bool {
	return m.MediaName.Media == "audio" || m.MediaName.Media == "video"
}

func logger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}
