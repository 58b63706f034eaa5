// Package httpapi serves the wire protocol of package proto over HTTP and
// WebSocket: routing, request decoding and limits, authentication, rate
// limits, error codes, metrics and request logs. The work itself is done by
// the delivery, keys, blobs and provision packages.
//
// Every error answer is a JSON proto.Error with a stable code, and every
// request body is bounded (http.MaxBytesReader): a malformed or oversized
// request is refused before anything is stored, and never disturbs what
// is.
//
// # Security considerations
//
// Logs carry the route pattern (never the path, whose ids and query could
// matter), the status, the latency, the device id and the client address;
// never a header, a token, a secret or a body. Error answers name the
// field at fault and never echo its content.
package httpapi

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/hush-chat/hush/proto"
	"github.com/hush-chat/hush/server/auth"
	"github.com/hush-chat/hush/server/blobs"
	"github.com/hush-chat/hush/server/calls"
	"github.com/hush-chat/hush/server/delivery"
	"github.com/hush-chat/hush/server/keys"
	"github.com/hush-chat/hush/server/metrics"
	"github.com/hush-chat/hush/server/provision"
	"github.com/hush-chat/hush/store"
)

// Limits are the rate limits. A zero rate disables that limit.
type Limits struct {
	// DeviceRate and DeviceBurst limit each authenticated device's requests
	// and WebSocket frames (token bucket: DeviceRate per second sustained,
	// bursts of DeviceBurst).
	DeviceRate  float64
	DeviceBurst int
	// IPRate and IPBurst limit unauthenticated requests per client IP.
	IPRate  float64
	IPBurst int
}

// Config is what an API is made of.
type Config struct {
	Store     store.Store
	Auth      *auth.Authenticator
	Delivery  *delivery.Service
	Keys      *keys.Directory
	Blobs     *blobs.Service
	Provision *provision.Channels
	Metrics   *metrics.Metrics
	Logger    *slog.Logger
	Limits    Limits
	// Calls, if set, is the SFU that "call" frames go to (wscall.go).
	Calls *calls.SFU
}

// API is the HTTP handler of the delivery service.
type API struct {
	Config
	mux      *http.ServeMux
	devices  *limiter
	ips      *limiter
	draining atomic.Bool

	sessionsMu sync.Mutex
	sessions   map[*session]struct{}
	sessionsWG sync.WaitGroup
}

// New returns an API. Call Close when done with it.
func New(c Config) *API {
	a := &API{
		Config:   c,
		mux:      http.NewServeMux(),
		devices:  newLimiter(c.Limits.DeviceRate, c.Limits.DeviceBurst),
		ips:      newLimiter(c.Limits.IPRate, c.Limits.IPBurst),
		sessions: make(map[*session]struct{}),
	}
	a.routes()
	return a
}

// access says who may call an endpoint.
type access int

const (
	device   access = iota // an authenticated device; rate-limited per device
	public                 // anyone; rate-limited per IP address
	optional               // anyone, per IP; authenticated when credentials are sent
	open                   // anyone, unlimited (health and metrics)
)

// handler serves one method of one route. dev is nil for public access.
type handler func(w http.ResponseWriter, r *http.Request, dev *store.Device) error

type method struct {
	access access
	h      handler
}

func (a *API) routes() {
	a.route(proto.PathAccounts, map[string]method{"POST": {public, a.register}})
	a.route(proto.PathUser, map[string]method{"GET": {device, a.user}})
	a.route(proto.PathDevices, map[string]method{"POST": {device, a.addDevice}})
	a.route(proto.PathDevice, map[string]method{"DELETE": {device, a.revokeDevice}})
	a.route(proto.PathKeyPackages, map[string]method{"POST": {device, a.uploadKeyPackages}})
	a.route(proto.PathKeyPackageCount, map[string]method{"GET": {device, a.countKeyPackages}})
	a.route(proto.PathClaim, map[string]method{"POST": {device, a.claim}})
	a.route(proto.PathGroups, map[string]method{"POST": {device, a.createGroup}})
	a.route(proto.PathGroupMessages, map[string]method{"POST": {device, a.send}})
	a.route(proto.PathMessages, map[string]method{"GET": {device, a.fetch}})
	a.route(proto.PathAck, map[string]method{"POST": {device, a.ack}})
	a.route(proto.PathBlobs, map[string]method{"POST": {device, a.uploadBlob}})
	a.route(proto.PathBlob, map[string]method{"GET": {device, a.downloadBlob}})
	a.route(proto.PathProvision, map[string]method{"POST": {device, a.openProvision}})
	a.route(proto.PathProvisionBox, map[string]method{"GET": {optional, a.getProvision}, "PUT": {optional, a.putProvision}})
	a.route(proto.PathWebSocket, map[string]method{"GET": {device, a.webSocket}})
	a.route(proto.PathHealth, map[string]method{"GET": {open, a.health}})
	metricsHandler := promhttp.HandlerFor(a.Metrics.Registry, promhttp.HandlerOpts{})
	a.route(proto.PathMetrics, map[string]method{"GET": {open, func(w http.ResponseWriter, r *http.Request, _ *store.Device) error {
		metricsHandler.ServeHTTP(w, r)
		return nil
	}}})
	a.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		a.writeError(w, r, &proto.Error{Code: proto.CodeNotFound, Message: "no such endpoint"})
	})
}

// route registers the methods of a path. Unknown methods get
// CodeMethod; every answer is counted and timed under the route's name.
func (a *API) route(path string, methods map[string]method) {
	allow := ""
	for m := range methods {
		if allow != "" {
			allow += ", "
		}
		allow += m
	}
	counters := make(map[string]func(code int, d time.Duration))
	for m := range methods {
		name := m + " " + path
		hist := a.Metrics.RequestSeconds.WithLabelValues(name)
		counters[m] = func(code int, d time.Duration) {
			a.Metrics.Requests.WithLabelValues(name, strconv.Itoa(code)).Inc()
			hist.Observe(d.Seconds())
		}
	}
	a.mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
		m, ok := methods[r.Method]
		if !ok {
			w.Header().Set("Allow", allow)
			a.writeError(w, r, &proto.Error{Code: proto.CodeMethod, Message: r.Method + " is not allowed here; allowed: " + allow})
			return
		}
		start := time.Now()
		rw := &statusWriter{ResponseWriter: w}
		dev, err := a.serve(rw, r, m)
		if err != nil {
			a.writeErrorFor(rw, r, dev, err)
		}
		if rw.status == 0 {
			rw.status = http.StatusOK
		}
		d := time.Since(start)
		counters[r.Method](rw.status, d)
		if a.Logger.Enabled(r.Context(), slog.LevelDebug) {
			attrs := []any{"route", r.Method + " " + path, "status", rw.status, "dur", d, "ip", clientIP(r)}
			if dev != nil {
				attrs = append(attrs, "device", dev.ID)
			}
			a.Logger.Debug("request", attrs...)
		}
	})
}

// serve checks the version, the rate limits and the credentials, and runs
// the method.
func (a *API) serve(w http.ResponseWriter, r *http.Request, m method) (*store.Device, error) {
	w.Header().Set(proto.HeaderVersion, strconv.Itoa(proto.Version))
	if v := r.Header.Get(proto.HeaderVersion); v != "" && v != strconv.Itoa(proto.Version) {
		return nil, &proto.Error{Code: proto.CodeVersion, Message: "this server speaks protocol version " + strconv.Itoa(proto.Version)}
	}
	if m.access == open {
		return nil, m.h(w, r, nil)
	}
	if a.draining.Load() {
		return nil, errDraining
	}
	var dev *store.Device
	if m.access == device || (m.access == optional && r.Header.Get(proto.HeaderAuthorization) != "") {
		d, err := a.authenticate(r)
		if err != nil {
			// Failed attempts count against the client's address.
			if errors.Is(err, auth.ErrUnauthorized) && !a.ips.allow(clientIP(r)) {
				a.Metrics.RateLimited.WithLabelValues("ip").Inc()
				return nil, errRateLimited
			}
			return nil, err
		}
		dev = &d
	}
	if m.access == device {
		if !a.devices.allow(string(dev.ID[:])) {
			a.Metrics.RateLimited.WithLabelValues("device").Inc()
			return dev, errRateLimited
		}
	} else if !a.ips.allow(clientIP(r)) {
		a.Metrics.RateLimited.WithLabelValues("ip").Inc()
		return dev, errRateLimited
	}
	return dev, m.h(w, r, dev)
}

// authenticate checks the Authorization header or, for WebSocket upgrades
// from browsers, the credentials in the subprotocol list.
func (a *API) authenticate(r *http.Request) (store.Device, error) {
	if h := r.Header.Get(proto.HeaderAuthorization); h != "" {
		return a.Auth.Header(r.Context(), h)
	}
	for _, p := range websocketProtocols(r) {
		if enc, ok := strings.CutPrefix(p, proto.WebSocketAuthPrefix); ok {
			token, err := base64.RawURLEncoding.DecodeString(enc)
			if err != nil {
				return store.Device{}, auth.ErrUnauthorized
			}
			return a.Auth.Token(r.Context(), string(token))
		}
	}
	return store.Device{}, auth.ErrUnauthorized
}

// Drain makes the API refuse new requests with CodeUnavailable (health
// checks fail too, so that load balancers move away) while those under way
// finish.
func (a *API) Drain() { a.draining.Store(true) }

// CloseSessions closes every WebSocket with StatusGoingAway, after the
// frame each is handling, and waits until their handlers have returned or
// ctx ends.
func (a *API) CloseSessions(ctx context.Context) error {
	a.Drain()
	a.sessionsMu.Lock()
	for s := range a.sessions {
		go s.goAway()
	}
	a.sessionsMu.Unlock()
	done := make(chan struct{})
	go func() { a.sessionsWG.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close releases the API's background work.
func (a *API) Close() {
	a.devices.close()
	a.ips.close()
}

// ServeHTTP implements http.Handler.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.mux.ServeHTTP(w, r) }

func (a *API) health(w http.ResponseWriter, r *http.Request, _ *store.Device) error {
	if a.draining.Load() {
		return errDraining
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if _, err := a.Store.Group(ctx, store.GroupID{0}); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// statusWriter records the status code for metrics and logs.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController and the WebSocket upgrade reach the
// underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// decode reads a JSON body of at most limit bytes into v.
func decode(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	r.Body = http.MaxBytesReader(w, r.Body, limit)
	dec := json.NewDecoder(r.Body)
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return &proto.Error{Code: proto.CodeBadRequest, Message: "malformed JSON: data after the body's value"}
	}
	return nil
}

// jsonError describes a decoding failure without echoing the input.
func jsonError(err error) error {
	var maxErr *http.MaxBytesError
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &maxErr):
		return err
	case errors.Is(err, io.EOF):
		return &proto.Error{Code: proto.CodeBadRequest, Message: "malformed JSON: empty body"}
	case errors.As(err, &typeErr):
		return &proto.Error{Code: proto.CodeBadRequest, Message: "malformed JSON: field " + strconv.Quote(typeErr.Field) + " has the wrong type"}
	case errors.As(err, &syntaxErr):
		return &proto.Error{Code: proto.CodeBadRequest, Message: "malformed JSON at byte " + strconv.FormatInt(syntaxErr.Offset, 10)}
	}
	return &proto.Error{Code: proto.CodeBadRequest, Message: "malformed JSON body"}
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", proto.ContentTypeJSON)
	w.WriteHeader(status)
	_, err = w.Write(append(b, '\n'))
	return err
}

// pathGroupID decodes the {id} of a group path: unpadded base64url.
func pathGroupID(r *http.Request) (store.GroupID, error) {
	id, err := base64.RawURLEncoding.DecodeString(r.PathValue("id"))
	if err != nil {
		return nil, &proto.Error{Code: proto.CodeBadRequest, Message: "group id in the path must be unpadded base64url"}
	}
	return id, delivery.CheckGroupID(id)
}

// clientIP is the address the request came from (the connection's peer:
// deployments behind a proxy rate-limit there).
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
