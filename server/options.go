package server

import (
	"log/slog"
	"time"

	"github.com/hush-chat/hush/proto"
	"github.com/hush-chat/hush/server/calls"
)

// Options configure a Server. The zero value is a usable default: SQLite
// under ./data, the in-process bus, plain HTTP on 127.0.0.1:8080. Configure
// fills it from flags, environment variables and a config file.
type Options struct {
	// Addr is the address to listen on, host:port. Default 127.0.0.1:8080.
	Addr string
	// DataDir holds the SQLite database and the attachment blobs. Default
	// ./data.
	DataDir string
	// Store selects the store: "" or "sqlite" for SQLite under DataDir,
	// "sqlite:PATH" for another SQLite file, or a PostgreSQL URL
	// (postgres://… or postgresql://…).
	Store string
	// Bus selects the notification bus: "" or "local" for the in-process
	// bus (one node), or a NATS URL (nats://…) shared by every node.
	Bus string

	// TLSCert and TLSKey are PEM files; with both set the server speaks
	// HTTPS only. The key file must not be readable by group or others.
	TLSCert, TLSKey string
	// InsecurePublic allows plain HTTP on a non-loopback address (behind a
	// TLS-terminating proxy, say). Without it such a configuration is
	// refused.
	InsecurePublic bool

	// Retention is how long undelivered messages and blobs are kept.
	// Default proto.DefaultRetention (30 days).
	Retention time.Duration
	// PurgeInterval is how often expired messages and blobs are deleted.
	// Default one hour.
	PurgeInterval time.Duration
	// DeliveryGrace is how long, beyond its timer, a disappearing message
	// is kept for devices that are offline. Default proto.DeliveryGrace
	// (24 hours).
	DeliveryGrace time.Duration
	// ExpiryInterval is how often what disappearing messages leave behind
	// (expired messages, the blobs of delivered ones) is deleted. Default
	// one second.
	ExpiryInterval time.Duration
	// ShutdownTimeout bounds a graceful shutdown. Default 30 seconds.
	ShutdownTimeout time.Duration

	// DeviceRate (per second) and DeviceBurst limit each device's requests
	// and WebSocket frames; IPRate and IPBurst limit unauthenticated
	// requests per client address. Zero means the proto default; a
	// negative rate disables the limit.
	DeviceRate  float64
	DeviceBurst int
	IPRate      float64
	IPBurst     int

	// Calls configure the SFU that relays calls' media (package
	// server/calls). When Addr is a loopback address, ICE uses loopback
	// addresses only and needs no STUN or TURN.
	Calls CallOptions

	// Logger receives the server's structured logs. If nil, one is made
	// from LogLevel ("debug", "info", "warn", "error"; default "info") and
	// LogFormat ("text" or "json"; default "text"), writing to stderr.
	Logger    *slog.Logger
	LogLevel  string
	LogFormat string
}

// CallOptions configure the SFU. The zero value serves calls on
// loopback, or on a host with a public address of its own.
type CallOptions struct {
	// Disabled turns the SFU off: "call" frames are refused.
	Disabled bool
	// PublicIPs are the addresses devices reach the SFU at when it sits
	// behind 1:1 NAT (a cloud VM's elastic IP).
	PublicIPs []string
	// UDPPortMin and UDPPortMax bound the UDP ports of the calls' media,
	// for a firewall to open; zero leaves them to the system.
	UDPPortMin, UDPPortMax uint16
	// ICEServers are STUN and TURN server URLs (stun:…, turn:…, turns:…)
	// sent to devices with a call's first offer; TURNUsername and
	// TURNCredential go with the turn: ones. Devices behind restrictive
	// NATs or firewalls need a TURN server to reach the SFU.
	ICEServers                   []string
	TURNUsername, TURNCredential string
	// MaxParticipants bounds a call's devices; 0 selects
	// calls.DefaultMaxParticipants.
	MaxParticipants int
	// PublicURL is this node's base URL as clients reach it
	// (https://node-2.example.org); default: the URL it listens on. With
	// a NATS bus, nodes share a room directory (package server/cluster)
	// and a join for a room another node hosts is answered with that
	// node's PublicURL: each node's must be unique and reachable.
	PublicURL string
	// TestHookForward is calls.Options.TestHookForward: for tests only.
	TestHookForward func(calls.Forwarded)
}

func (o Options) withDefaults() Options {
	if o.Addr == "" {
		o.Addr = "127.0.0.1:8080"
	}
	if o.DataDir == "" {
		o.DataDir = "data"
	}
	if o.Retention <= 0 {
		o.Retention = proto.DefaultRetention
	}
	if o.PurgeInterval <= 0 {
		o.PurgeInterval = time.Hour
	}
	if o.DeliveryGrace <= 0 {
		o.DeliveryGrace = proto.DeliveryGrace
	}
	if o.ExpiryInterval <= 0 {
		o.ExpiryInterval = time.Second
	}
	if o.ShutdownTimeout <= 0 {
		o.ShutdownTimeout = 30 * time.Second
	}
	if o.DeviceRate == 0 {
		o.DeviceRate = proto.RateLimitPerSecond
	}
	if o.DeviceBurst <= 0 {
		o.DeviceBurst = proto.RateLimitBurst
	}
	if o.IPRate == 0 {
		o.IPRate = proto.IPRateLimitPerSecond
	}
	if o.IPBurst <= 0 {
		o.IPBurst = proto.IPRateLimitBurst
	}
	return o
}
