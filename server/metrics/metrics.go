// Package metrics holds the delivery service's Prometheus metrics, on a
// registry of their own (so that several servers can run in one process,
// as the tests do), and a store.Store decorator that times every call.
//
// Metrics carry route names, status codes, operation names and message
// kinds; never a device id, a group id or anything from a request body.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics is the set of the server's collectors.
type Metrics struct {
	Registry *prometheus.Registry

	// Requests counts HTTP requests by route pattern and status code.
	Requests *prometheus.CounterVec
	// RequestSeconds is HTTP request latency by route pattern.
	RequestSeconds *prometheus.HistogramVec
	// Frames counts WebSocket frames received, by type.
	Frames *prometheus.CounterVec
	// Accepted counts messages accepted into a group log, by kind (new
	// ones only, not idempotent retries).
	Accepted *prometheus.CounterVec
	// Deliveries counts messages pushed to devices over WebSockets and
	// returned by fetches.
	Deliveries *prometheus.CounterVec
	// WebSockets is the number of open push connections.
	WebSockets prometheus.Gauge
	// StoreSeconds is store call latency by operation.
	StoreSeconds *prometheus.HistogramVec
	// Purged counts what the periodic purge deleted.
	Purged *prometheus.CounterVec
	// RateLimited counts requests refused by a rate limit, by scope.
	RateLimited *prometheus.CounterVec
}

// New creates the collectors on a new registry, with the Go runtime and
// process collectors.
func New() *Metrics {
	r := prometheus.NewRegistry()
	m := &Metrics{
		Registry: r,
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hush_http_requests_total", Help: "HTTP requests by route and status code.",
		}, []string{"route", "code"}),
		RequestSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "hush_http_request_duration_seconds", Help: "HTTP request latency by route.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2.5, 12),
		}, []string{"route"}),
		Frames: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hush_websocket_frames_total", Help: "WebSocket frames received, by type.",
		}, []string{"type"}),
		Accepted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hush_messages_accepted_total", Help: "Messages accepted into group logs and inboxes, by kind.",
		}, []string{"kind"}),
		Deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hush_deliveries_total", Help: "Messages handed to devices, by path (push or fetch).",
		}, []string{"path"}),
		WebSockets: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "hush_websockets", Help: "Open push WebSocket connections.",
		}),
		StoreSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "hush_store_duration_seconds", Help: "Store call latency by operation.",
			Buckets: prometheus.ExponentialBuckets(0.00005, 2.5, 12),
		}, []string{"op"}),
		Purged: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hush_purged_total", Help: "Items deleted by the periodic purge, by type.",
		}, []string{"type"}),
		RateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hush_rate_limited_total", Help: "Requests refused by a rate limit, by scope (device or ip).",
		}, []string{"scope"}),
	}
	r.MustRegister(m.Requests, m.RequestSeconds, m.Frames, m.Accepted, m.Deliveries,
		m.WebSockets, m.StoreSeconds, m.Purged, m.RateLimited,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}
