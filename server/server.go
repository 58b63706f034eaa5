// Package server is Hush's delivery service, run by `hush serve`: a
// Server relays and stores MLS ciphertext between devices, over the
// versioned HTTP and WebSocket protocol of package proto (docs/PROTOCOL.md).
//
// New opens everything a Server needs from one Options struct: the store
// (SQLite under the data directory by default, or PostgreSQL), the blob
// directory, the notification bus (package bus: in-process by default, or
// NATS for several nodes) and the listener. Run serves until its context ends and
// then shuts down gracefully.
//
// The work is split by concern into sub-packages:
//
//   - auth: device credentials (hashed secrets, constant-time checks);
//   - keys: the KeyPackage directory;
//   - delivery: group logs, commits and rosters, inboxes, push feeds;
//   - blobs: encrypted attachments;
//   - provision: device-linking mailboxes;
//   - metrics: Prometheus metrics and the timed store;
//   - httpapi: routing, limits, errors and the WebSocket sessions.
//
// # Graceful shutdown
//
// When Run's context ends, the server stops accepting connections, makes
// new requests on open ones fail with CodeUnavailable, lets the requests
// under way finish, closes each WebSocket with StatusGoingAway after the
// frame it is handling, and then closes the store, which commits the
// writes still batched. A message whose send was answered is durable; one
// whose send was not answered may or may not be, and the client's retry
// with the same client message id stores it exactly once.
//
// # Security considerations
//
// The server never holds a key that protects content, and needs none: see
// docs/THREAT-MODEL.md for what it learns and what a malicious server could
// still attempt. Plain HTTP is served only on loopback addresses unless
// InsecurePublic is set. Logs never contain tokens, secrets or payloads.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hush-chat/hush/bus"
	"github.com/hush-chat/hush/bus/natsbus"
	"github.com/hush-chat/hush/proto"
	"github.com/hush-chat/hush/server/auth"
	"github.com/hush-chat/hush/server/blobs"
	"github.com/hush-chat/hush/server/calls"
	"github.com/hush-chat/hush/server/cluster"
	"github.com/hush-chat/hush/server/delivery"
	"github.com/hush-chat/hush/server/httpapi"
	"github.com/hush-chat/hush/server/keys"
	"github.com/hush-chat/hush/server/metrics"
	"github.com/hush-chat/hush/server/provision"
	"github.com/hush-chat/hush/store"
	"github.com/hush-chat/hush/store/postgres"
	"github.com/hush-chat/hush/store/sqlite"
)

// Server is the delivery service.
type Server struct {
	opts      Options
	log       *slog.Logger
	store     store.Store
	bus       bus.Bus
	metrics   *metrics.Metrics
	delivery  *delivery.Service
	blobs     *blobs.Service
	provision *provision.Channels
	api       *httpapi.API
	calls     *calls.SFU // nil when calls are disabled
	rooms     cluster.Directory
	relay     *cluster.Relay // with the NATS directory: calls hosted on other nodes
	http      *http.Server
	ln        net.Listener
	tls       bool
}

// New opens the store, the bus and the listener described by o.
func New(ctx context.Context, o Options) (s *Server, err error) {
	o = o.withDefaults()
	log := o.Logger
	if log == nil {
		if log, err = newLogger(o.LogLevel, o.LogFormat); err != nil {
			return nil, err
		}
	}
	s = &Server{opts: o, log: log, metrics: metrics.New()}
	var closers []func() error
	defer func() {
		if err != nil {
			for i := len(closers) - 1; i >= 0; i-- {
				closers[i]()
			}
		}
	}()

	tlsConfig, err := loadTLS(o.TLSCert, o.TLSKey)
	if err != nil {
		return nil, err
	}
	s.tls = tlsConfig != nil
	public, err := isPublic(o.Addr)
	if err != nil {
		return nil, err
	}
	if public && !s.tls {
		if !o.InsecurePublic {
			return nil, fmt.Errorf("server: refusing plain HTTP on non-loopback address %s: give --tls-cert and --tls-key, or --insecure-public behind a TLS proxy", o.Addr)
		}
		log.Warn("serving plain HTTP on a non-loopback address (--insecure-public): credentials and metadata travel unencrypted unless a proxy adds TLS", "addr", o.Addr)
	}

	if err := os.MkdirAll(o.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("server: data dir: %w", err)
	}
	raw, err := openStore(ctx, o)
	if err != nil {
		return nil, err
	}
	closers = append(closers, raw.Close)
	s.store = s.metrics.InstrumentStore(raw)
	dir, err := store.OpenBlobDir(filepath.Join(o.DataDir, "blobs"))
	if err != nil {
		return nil, err
	}
	// Notifications lost while the NATS connection was down: re-read the
	// store for every connected device.
	rescan := func() {
		log.Info("bus reconnected; rescanning connected devices")
		s.delivery.Rescan()
	}
	if s.bus, err = openBus(o.Bus, rescan); err != nil {
		return nil, err
	}
	closers = append(closers, s.bus.Close)
	if !o.Calls.Disabled {
		if s.calls, err = s.newSFU(public); err != nil {
			return nil, err
		}
		closers = append(closers, s.calls.Close)
	}
	s.delivery = delivery.New(s.store, s.bus, delivery.Options{
		Grace: o.DeliveryGrace, Logger: log, Metrics: s.metrics,
		OnRoster: s.rosterChanged,
	})
	s.blobs = blobs.New(s.store, dir)
	s.provision = provision.New(proto.ProvisionTTL)
	s.api = httpapi.New(httpapi.Config{
		Store:     s.store,
		Auth:      auth.New(s.store),
		Delivery:  s.delivery,
		Keys:      keys.New(s.store),
		Blobs:     s.blobs,
		Provision: s.provision,
		Metrics:   s.metrics,
		Logger:    log,
		Calls:     s.calls,
		Limits: httpapi.Limits{
			DeviceRate: max(o.DeviceRate, 0), DeviceBurst: o.DeviceBurst,
			IPRate: max(o.IPRate, 0), IPBurst: o.IPBurst,
		},
	})
	closers = append(closers, func() error { s.api.Close(); return nil })

	if s.ln, err = net.Listen("tcp", o.Addr); err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	if s.tls {
		// Like tls.NewListener; idle push WebSockets then hold no goroutine.
		s.ln = httpapi.TLSListener(s.ln, tlsConfig)
	}
	if s.calls != nil {
		if err = s.openRooms(ctx); err != nil {
			s.ln.Close()
			return nil, err
		}
		closers = append(closers, s.rooms.Close)
		if s.relay != nil {
			closers = append(closers, s.relay.Close)
		}
	}
	s.http = &http.Server{
		Handler:           withWeb(s.api),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	return s, nil
}

// Calls returns the server's SFU, or nil when calls are disabled.
func (s *Server) Calls() *calls.SFU { return s.calls }

// CallRelay returns the relay of call signalling between the nodes of a
// cluster, or nil when this node is alone (no NATS bus) or calls are
// disabled.
func (s *Server) CallRelay() *cluster.Relay { return s.relay }

// Addr is the address the server listens on (useful with port 0).
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// URL is the server's base URL, http://… or https://….
func (s *Server) URL() string {
	if s.tls {
		return "https://" + s.ln.Addr().String()
	}
	return "http://" + s.ln.Addr().String()
}

// Run serves until ctx ends, then shuts down gracefully (see the package
// doc) and releases everything New opened. It returns nil after a clean
// shutdown.
func (s *Server) Run(ctx context.Context) error {
	s.log.Info("hush serving", "url", s.URL(), "version", proto.Version)
	served := make(chan error, 1)
	go func() { served <- s.http.Serve(s.ln) }()

	bg, stopBG := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { s.housekeeping(bg) })
	if s.calls != nil {
		wg.Go(func() { s.checkCallRosters(bg) })
	}

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-served:
	}
	s.log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), s.opts.ShutdownTimeout)
	defer cancel()
	s.api.Drain()
	shut := make(chan error, 1)
	go func() { shut <- s.http.Shutdown(sctx) }()
	if s.calls != nil {
		s.calls.Close() // ends every call: devices learn it with an ended frame
		if s.relay != nil {
			s.relay.Close() // and the calls relayed to other nodes
		}
		s.rooms.Close()
	}
	errs := []error{s.api.CloseSessions(sctx), <-shut}
	stopBG()
	wg.Wait()
	s.api.Close()
	errs = append(errs, s.bus.Close(), s.store.Close())
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		errs = append(errs, serveErr)
	}
	err := errors.Join(errs...)
	if err != nil {
		s.log.Error("shutdown", "err", err)
	} else {
		s.log.Info("stopped")
	}
	return err
}

// newSFU makes the SFU of calls from the options, with its metrics. A
// server on a loopback address keeps ICE to loopback too.
func (s *Server) newSFU(public bool) (*calls.SFU, error) {
	c := s.opts.Calls
	var ice []proto.ICEServer
	for _, u := range c.ICEServers {
		is := proto.ICEServer{URLs: []string{u}}
		if strings.HasPrefix(u, "turn:") || strings.HasPrefix(u, "turns:") {
			is.Username, is.Credential = c.TURNUsername, c.TURNCredential
		}
		ice = append(ice, is)
	}
	sfu, err := calls.New(calls.Options{
		Logger:          s.log,
		MaxParticipants: c.MaxParticipants,
		LoopbackOnly:    !public,
		PublicIPs:       c.PublicIPs,
		UDPPortMin:      c.UDPPortMin,
		UDPPortMax:      c.UDPPortMax,
		ICEServers:      ice,
		Authorize:       s.authorizeCall,
		TestHookForward: c.TestHookForward,
		Place: func(ctx context.Context, groupID []byte, callID string) (string, bool, error) {
			p, err := s.rooms.Place(ctx, cluster.Room{GroupID: groupID, CallID: callID})
			return p.URL, p.Local, err
		},
		Remote: relayHook{s},
		Release: func(groupID []byte, callID string) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := s.rooms.Release(ctx, cluster.Room{GroupID: groupID, CallID: callID}); err != nil {
				s.log.Warn("calls: release room", "err", err)
			}
		},
	})
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	s.metrics.Registry.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "hush_call_rooms", Help: "Open call rooms on this node."},
			func() float64 { return float64(sfu.Rooms()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "hush_call_participants", Help: "Devices in call rooms on this node."},
			func() float64 { return float64(sfu.ParticipantCount()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "hush_call_packets_forwarded_total", Help: "RTP packets the SFU forwarded (one per subscriber)."},
			func() float64 { return float64(sfu.Stats().PacketsOut) }),
		// s.relay is set before the server serves (openRooms).
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "hush_call_relayed_sessions_hosted", Help: "Devices' call sessions other cluster nodes relay to this node's SFU."},
			func() float64 { return float64(s.relayStats().Hosted) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "hush_call_relayed_sessions_out", Help: "Devices' call sessions this node relays to the cluster nodes hosting their rooms."},
			func() float64 { return float64(s.relayStats().Relayed) }),
	)
	return sfu, nil
}

// relayStats counts the relayed call sessions (none on a node alone).
func (s *Server) relayStats() cluster.RelayStats {
	if s.relay == nil {
		return cluster.RelayStats{}
	}
	return s.relay.Stats()
}

// relayHook is the SFU's Options.Remote: the cluster's relay, opened
// after the SFU (with the directory).
type relayHook struct{ s *Server }

func (h relayHook) Open(ctx context.Context, url, device string, join *proto.Call, send func(*proto.Call)) (calls.Relayed, error) {
	if h.s.relay == nil {
		// Place says every room is local on a node alone: not reached.
		return nil, &proto.Error{Code: proto.CodeUnavailable, Message: "call: this server node relays no calls"}
	}
	return h.s.relay.Open(ctx, url, device, join, send)
}

// callError is what a device relayed from another node gets for an
// error of this node's SFU, as httpapi would answer it on a local
// connection.
func (s *Server) callError(err error) *proto.Error {
	var pe *proto.Error
	switch {
	case errors.As(err, &pe):
		return pe
	case errors.Is(err, store.ErrNotMember):
		return &proto.Error{Code: proto.CodeForbidden, Message: "the device is not on the group's roster"}
	case errors.Is(err, store.ErrNotFound):
		return &proto.Error{Code: proto.CodeNotFound, Message: "group not found"}
	case errors.Is(err, store.ErrClosed), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return &proto.Error{Code: proto.CodeUnavailable, Message: "the server is busy or shutting down; retry"}
	}
	s.log.Error("calls: a relayed call frame failed", "err", err)
	return &proto.Error{Code: proto.CodeInternal, Message: "internal error"}
}

// openRooms opens the directory of call rooms: shared by the nodes in
// NATS when the bus is NATS, this node alone otherwise; with NATS, it
// opens the relay of call signalling too (s.relay). The SFU is made
// before the listener, so Place, Remote and Release reach s.rooms and
// s.relay only once they are set.
func (s *Server) openRooms(ctx context.Context) error {
	self := s.opts.Calls.PublicURL
	if self == "" {
		self = s.URL()
	}
	b := s.opts.Bus
	if !strings.HasPrefix(b, "nats://") && !strings.HasPrefix(b, "tls://") {
		s.rooms = cluster.NewLocal(self)
		return nil
	}
	d, err := cluster.Connect(ctx, cluster.Config{
		URL: b, Self: self, Logger: s.log,
		OnLost: func(r cluster.Room) {
			s.calls.EndRoom(r.GroupID, r.CallID, "the call moved to another server node")
		},
	})
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	s.rooms = d // before the relay, whose hosted joins place rooms
	s.relay, err = cluster.NewRelay(cluster.RelayConfig{Conn: d.Conn(), Self: self, SFU: s.calls, Errors: s.callError, Logger: s.log})
	if err != nil {
		d.Close()
		return fmt.Errorf("server: %w", err)
	}
	return nil
}

// authorizeCall lets a device into a group's call only if it is on the
// group's roster.
func (s *Server) authorizeCall(ctx context.Context, groupID []byte, device string) error {
	id, err := store.ParseDeviceID(device)
	if err != nil {
		return store.ErrNotMember
	}
	g, err := s.store.Group(ctx, store.GroupID(groupID))
	if err != nil {
		return err
	}
	if !slices.Contains(g.Roster, id) {
		return store.ErrNotMember
	}
	return nil
}

// callRosterInterval is how often the rooms this node hosts are checked
// against their groups' rosters.
const callRosterInterval = 2 * time.Second

// checkCallRosters evicts, every callRosterInterval, the devices that are
// no longer on the roster of a room's group: removed by a commit another
// node accepted (this node's own commits evict at once, rosterChanged).
// A roster the store cannot read is left for the next round. (A revoked
// device loses its connections, and with them its calls.)
func (s *Server) checkCallRosters(ctx context.Context) {
	t := time.NewTicker(callRosterInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, gid := range s.calls.Groups() {
			g, err := s.store.Group(ctx, store.GroupID(gid))
			if err != nil {
				if ctx.Err() == nil && !errors.Is(err, store.ErrNotFound) {
					s.log.Warn("calls: read a roster", "err", err)
				}
				continue
			}
			s.rosterChanged(g.ID, g.Roster)
		}
	}
}

// rosterChanged evicts from the group's calls every device a commit took
// off its roster. (A commit accepted by another node is not seen here;
// the evicted device could not decrypt the new epoch's media anyway.)
func (s *Server) rosterChanged(group store.GroupID, roster []store.DeviceID) {
	if s.calls == nil {
		return
	}
	s.calls.EvictAbsent(group, func(device string) bool {
		id, err := store.ParseDeviceID(device)
		return err == nil && slices.Contains(roster, id)
	})
}

// housekeeping purges expired data every PurgeInterval (and once at
// start), what disappearing messages leave every ExpiryInterval, and
// sweeps expired linking channels every minute.
func (s *Server) housekeeping(ctx context.Context) {
	s.purge(ctx)
	purge := time.NewTicker(s.opts.PurgeInterval)
	defer purge.Stop()
	expire := time.NewTicker(s.opts.ExpiryInterval)
	defer expire.Stop()
	sweep := time.NewTicker(time.Minute)
	defer sweep.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-purge.C:
			s.purge(ctx)
		case <-expire.C:
			r, err := s.store.PurgeExpired(ctx, time.Now())
			s.purged(ctx, "purge expired", slog.LevelDebug, r, err)
		case <-sweep.C:
			s.provision.Sweep()
		}
	}
}

// purge deletes what has expired or outlived the retention period.
func (s *Server) purge(ctx context.Context) {
	r, err := s.store.Purge(ctx, time.Now(), s.opts.Retention)
	s.purged(ctx, "purge", slog.LevelInfo, r, err)
}

// purged deletes the bytes of the blobs a purge (op) deleted, and logs
// and counts what it deleted at level.
func (s *Server) purged(ctx context.Context, op string, level slog.Level, r store.PurgeResult, err error) {
	if err != nil {
		if ctx.Err() == nil {
			s.log.Error(op, "err", err)
		}
		return
	}
	if err := s.blobs.Delete(r.Blobs); err != nil {
		s.log.Error(op+": blobs", "err", err)
	}
	s.metrics.Purged.WithLabelValues("messages").Add(float64(r.Messages))
	s.metrics.Purged.WithLabelValues("direct").Add(float64(r.Direct))
	s.metrics.Purged.WithLabelValues("blobs").Add(float64(len(r.Blobs)))
	if r.Messages+r.Direct > 0 || len(r.Blobs) > 0 {
		s.log.Log(ctx, level, "purged", "op", op, "messages", r.Messages, "direct", r.Direct, "blobs", len(r.Blobs))
	}
}

func openStore(ctx context.Context, o Options) (store.Store, error) {
	switch spec := o.Store; {
	case spec == "" || spec == "sqlite":
		return sqlite.Open(ctx, filepath.Join(o.DataDir, "hush.db"))
	case strings.HasPrefix(spec, "sqlite:"):
		return sqlite.Open(ctx, strings.TrimPrefix(spec, "sqlite:"))
	case strings.HasPrefix(spec, "postgres://"), strings.HasPrefix(spec, "postgresql://"):
		return postgres.Open(ctx, spec)
	}
	return nil, errors.New("server: --store must be sqlite, sqlite:PATH or a postgres:// URL")
}

func openBus(spec string, onReconnect func()) (bus.Bus, error) {
	switch {
	case spec == "" || spec == "local":
		return bus.NewLocal(), nil
	case strings.HasPrefix(spec, "nats://"), strings.HasPrefix(spec, "tls://"):
		return natsbus.Connect(natsbus.Config{URL: spec, Name: "hush serve", OnReconnect: onReconnect})
	}
	return nil, errors.New("server: --bus must be local or a nats:// URL")
}

// loadTLS loads the certificate and key, refusing a key file that others
// can read. Both empty means no TLS.
func loadTLS(certFile, keyFile string) (*tls.Config, error) {
	if certFile == "" && keyFile == "" {
		return nil, nil
	}
	if certFile == "" || keyFile == "" {
		return nil, errors.New("server: --tls-cert and --tls-key go together")
	}
	fi, err := os.Stat(keyFile)
	if err != nil {
		return nil, fmt.Errorf("server: TLS key: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("server: TLS key %s is accessible to group or others (mode %04o); chmod 600 it", keyFile, fi.Mode().Perm())
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("server: TLS: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// isPublic reports whether addr listens beyond the loopback interface.
func isPublic(addr string) (bool, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false, fmt.Errorf("server: address %q: %w", addr, err)
	}
	if host == "localhost" {
		return false, nil
	}
	ip := net.ParseIP(host)
	return ip == nil || !ip.IsLoopback(), nil
}

func newLogger(level, format string) (*slog.Logger, error) {
	var l slog.Level
	if level != "" {
		if err := l.UnmarshalText([]byte(level)); err != nil {
			return nil, fmt.Errorf("server: log level %q: want debug, info, warn or error", level)
		}
	}
	opts := &slog.HandlerOptions{Level: l}
	switch format {
	case "", "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("server: log format %q: want text or json", format)
}
