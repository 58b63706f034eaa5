package server

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// setting is one configurable option: its flag and config-file key, its
// environment variable, and how to apply a value.
type setting struct {
	name, env, usage string
	isBool           bool
	apply            func(o *Options, v string) error
}

var settings = []setting{
	{"addr", "HUSH_ADDR", "listen address host:port (default 127.0.0.1:8080)", false,
		func(o *Options, v string) error { o.Addr = v; return nil }},
	{"data", "HUSH_DATA", "data directory: SQLite database and blobs (default ./data)", false,
		func(o *Options, v string) error { o.DataDir = v; return nil }},
	{"store", "HUSH_STORE", "store: sqlite (default), sqlite:PATH, or a postgres:// URL", false,
		func(o *Options, v string) error { o.Store = v; return nil }},
	{"bus", "HUSH_BUS", "notification bus: local (default) or a nats:// URL", false,
		func(o *Options, v string) error { o.Bus = v; return nil }},
	{"tls-cert", "HUSH_TLS_CERT", "TLS certificate file (PEM)", false,
		func(o *Options, v string) error { o.TLSCert = v; return nil }},
	{"tls-key", "HUSH_TLS_KEY", "TLS private key file (PEM, mode 0600)", false,
		func(o *Options, v string) error { o.TLSKey = v; return nil }},
	{"insecure-public", "HUSH_INSECURE_PUBLIC", "allow plain HTTP on a non-loopback address", true,
		func(o *Options, v string) (err error) { o.InsecurePublic, err = strconv.ParseBool(v); return err }},
	{"retention", "HUSH_RETENTION", "how long undelivered messages and blobs are kept, e.g. 30d or 720h", false,
		func(o *Options, v string) (err error) { o.Retention, err = parseDuration(v); return err }},
	{"purge-interval", "HUSH_PURGE_INTERVAL", "how often expired data is purged (default 1h)", false,
		func(o *Options, v string) (err error) { o.PurgeInterval, err = parseDuration(v); return err }},
	{"delivery-grace", "HUSH_DELIVERY_GRACE", "how long a disappearing message waits beyond its timer for offline devices (default 24h)", false,
		func(o *Options, v string) (err error) { o.DeliveryGrace, err = parseDuration(v); return err }},
	{"expiry-interval", "HUSH_EXPIRY_INTERVAL", "how often what disappearing messages leave is deleted (default 1s)", false,
		func(o *Options, v string) (err error) { o.ExpiryInterval, err = parseDuration(v); return err }},
	{"shutdown-timeout", "HUSH_SHUTDOWN_TIMEOUT", "bound on a graceful shutdown (default 30s)", false,
		func(o *Options, v string) (err error) { o.ShutdownTimeout, err = parseDuration(v); return err }},
	{"device-rate", "HUSH_DEVICE_RATE", "requests per second per device (negative: unlimited)", false,
		func(o *Options, v string) (err error) { o.DeviceRate, err = strconv.ParseFloat(v, 64); return err }},
	{"device-burst", "HUSH_DEVICE_BURST", "burst of requests per device", false,
		func(o *Options, v string) (err error) { o.DeviceBurst, err = strconv.Atoi(v); return err }},
	{"ip-rate", "HUSH_IP_RATE", "unauthenticated requests per second per IP address (negative: unlimited)", false,
		func(o *Options, v string) (err error) { o.IPRate, err = strconv.ParseFloat(v, 64); return err }},
	{"ip-burst", "HUSH_IP_BURST", "burst of unauthenticated requests per IP address", false,
		func(o *Options, v string) (err error) { o.IPBurst, err = strconv.Atoi(v); return err }},
	{"calls", "HUSH_CALLS", "relay calls (default true); false turns the SFU off", true,
		func(o *Options, v string) error {
			on, err := strconv.ParseBool(v)
			o.Calls.Disabled = !on
			return err
		}},
	{"call-public-ip", "HUSH_CALL_PUBLIC_IP", "comma-separated public addresses of the SFU behind 1:1 NAT", false,
		func(o *Options, v string) error { o.Calls.PublicIPs = splitList(v); return nil }},
	{"call-udp-ports", "HUSH_CALL_UDP_PORTS", "UDP port range of call media, MIN-MAX (default: any)", false,
		func(o *Options, v string) (err error) {
			o.Calls.UDPPortMin, o.Calls.UDPPortMax, err = parsePortRange(v)
			return err
		}},
	{"call-ice-servers", "HUSH_CALL_ICE_SERVERS", "comma-separated STUN/TURN URLs given to devices for calls, e.g. turn:turn.example.org:3478", false,
		func(o *Options, v string) error { o.Calls.ICEServers = splitList(v); return nil }},
	{"call-turn-username", "HUSH_CALL_TURN_USERNAME", "username for the turn: servers", false,
		func(o *Options, v string) error { o.Calls.TURNUsername = v; return nil }},
	{"call-turn-credential", "HUSH_CALL_TURN_CREDENTIAL", "credential for the turn: servers", false,
		func(o *Options, v string) error { o.Calls.TURNCredential = v; return nil }},
	{"public-url", "HUSH_PUBLIC_URL", "this node's base URL as clients reach it, for calls hosted on it (default: the listen URL); unique per node", false,
		func(o *Options, v string) error { o.Calls.PublicURL = v; return nil }},
	{"call-max-participants", "HUSH_CALL_MAX_PARTICIPANTS", "most devices in one call (default 16)", false,
		func(o *Options, v string) (err error) { o.Calls.MaxParticipants, err = strconv.Atoi(v); return err }},
	{"log-level", "HUSH_LOG_LEVEL", "debug, info, warn or error (default info)", false,
		func(o *Options, v string) error { o.LogLevel = v; return nil }},
	{"log-format", "HUSH_LOG_FORMAT", "text or json (default text)", false,
		func(o *Options, v string) error { o.LogFormat = v; return nil }},
}

// flagValue records a flag's value and whether it was given.
type flagValue struct {
	v      string
	set    bool
	isBool bool
}

func (f *flagValue) String() string     { return f.v }
func (f *flagValue) Set(s string) error { f.v, f.set = s, true; return nil }
func (f *flagValue) IsBoolFlag() bool   { return f.isBool }

// Configure defines the server's flags on fs, parses args, and returns the
// Options. Each setting comes from its flag if given, else from its
// environment variable (getenv; empty means unset), else from the config
// file named by --config or HUSH_CONFIG, else its default.
//
// The config file has one "key = value" per line, keys named as the flags
// (see docs/hush.sample.conf); blank lines and lines starting with # are
// ignored.
func Configure(fs *flag.FlagSet, args []string, getenv func(string) string) (Options, error) {
	config := fs.String("config", "", "config file of key = value lines (env HUSH_CONFIG)")
	values := make([]*flagValue, len(settings))
	for i, s := range settings {
		values[i] = &flagValue{isBool: s.isBool}
		fs.Var(values[i], s.name, s.usage+" (env "+s.env+")")
	}
	if err := fs.Parse(args); err != nil {
		return Options{}, err
	}
	if fs.NArg() > 0 {
		return Options{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	path := *config
	if path == "" {
		path = getenv("HUSH_CONFIG")
	}
	file := map[string]string{}
	if path != "" {
		var err error
		if file, err = readConfig(path); err != nil {
			return Options{}, err
		}
	}
	var o Options
	for i, s := range settings {
		v, from, ok := values[i].v, "flag --"+s.name, values[i].set
		if !ok {
			v, from = getenv(s.env), "environment variable "+s.env
			ok = v != ""
		}
		if !ok {
			v, ok = file[s.name]
			from = path + ": " + s.name
		}
		if !ok {
			continue
		}
		if s.isBool && v == "" {
			v = "true"
		}
		if err := s.apply(&o, v); err != nil {
			return Options{}, fmt.Errorf("%s: bad value: %w", from, err)
		}
	}
	return o, nil
}

// readConfig reads a file of "key = value" lines.
func readConfig(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	known := make(map[string]bool, len(settings))
	for _, s := range settings {
		known[s.name] = true
	}
	out := make(map[string]string)
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || k == "" {
			return nil, fmt.Errorf("config %s:%d: want key = value", path, n)
		}
		if !known[k] {
			return nil, fmt.Errorf("config %s:%d: unknown key %q", path, n, k)
		}
		if uq, err := strconv.Unquote(v); err == nil {
			v = uq
		}
		out[k] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return out, nil
}

// parseDuration is time.ParseDuration that also takes whole days ("30d").
func parseDuration(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 {
			return 0, errors.New("want a duration such as 30d or 720h")
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}

// splitList splits a comma-separated list, dropping empty items.
func splitList(v string) []string {
	var out []string
	for item := range strings.SplitSeq(v, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// parsePortRange parses "MIN-MAX", two UDP ports with MIN <= MAX.
func parsePortRange(v string) (lo, hi uint16, err error) {
	a, b, ok := strings.Cut(v, "-")
	if !ok {
		return 0, 0, errors.New("want MIN-MAX, e.g. 50000-50100")
	}
	l, err1 := strconv.ParseUint(strings.TrimSpace(a), 10, 16)
	h, err2 := strconv.ParseUint(strings.TrimSpace(b), 10, 16)
	if err1 != nil || err2 != nil || l == 0 || l > h {
		return 0, 0, errors.New("want MIN-MAX with 0 < MIN <= MAX <= 65535")
	}
	return uint16(l), uint16(h), nil
}
