package proxy

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the metrics of what the proxy puts on the wire: requests
// by route, mode and status, upstream latency, 401 replays, CONNECT
// decisions and leaf signatures. They are registered on the registry the
// caller passes (no global state). No label ever holds a token, a secret
// or a request path.
type Metrics struct {
	requests         *prometheus.CounterVec
	upstreamDuration *prometheus.HistogramVec
	replayCount      *prometheus.CounterVec
	connects         *prometheus.CounterVec
	leafSigned       prometheus.Counter
}

// NewMetrics creates the proxy's metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "credproxy_requests_total",
			Help: "Proxied requests by route, mode (reverse, forward) and the status returned to the client (499: the client went away).",
		}, []string{"route", "mode", "status"}),
		upstreamDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "credproxy_upstream_duration_seconds",
			Help:    "Time from forwarding a request to receiving the upstream's response headers.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2.5, 14),
		}, []string{"route"}),
		replayCount: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "credproxy_upstream_401_total",
			Help: "Upstream 401 answers to a request with a replayable body, by outcome: replayed with a renewed token, or failed (the 401 went back to the client).",
		}, []string{"route", "outcome"}),
		connects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "credproxy_forward_connects_total",
			Help: "CONNECT requests to the forward proxy by decision: intercept (a route host), tunnel (passed through untouched) or deny; unauthorized counts every request (CONNECT or not) refused with 407 by ForwardOptions.Authorize.",
		}, []string{"decision"}),
		leafSigned: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "credproxy_leaf_certificates_signed_total",
			Help: "Leaf certificates signed by the forward-proxy CA for intercepted hosts.",
		}),
	}
	reg.MustRegister(m.requests, m.upstreamDuration, m.replayCount, m.connects, m.leafSigned)
	return m
}

// routeMetrics are the per-request metrics of one route and mode, with
// label values resolved once.
type routeMetrics struct {
	m        *Metrics
	route    string
	mode     string
	upstream prometheus.Observer
	// byStatus caches the counters of the common statuses.
	byStatus map[int]prometheus.Counter
}

func (m *Metrics) forRoute(route, mode string) *routeMetrics {
	rm := &routeMetrics{m: m, route: route, mode: mode, byStatus: map[int]prometheus.Counter{},
		upstream: m.upstreamDuration.WithLabelValues(route)}
	for _, s := range []int{200, 201, 202, 204, 301, 302, 304, 400, 401, 403, 404, 429, 499, 500, 502, 503, 504} {
		rm.byStatus[s] = m.requests.WithLabelValues(route, mode, strconv.Itoa(s))
	}
	return rm
}

func (rm *routeMetrics) request(status int) {
	if c, ok := rm.byStatus[status]; ok {
		c.Inc()
		return
	}
	rm.m.requests.WithLabelValues(rm.route, rm.mode, strconv.Itoa(status)).Inc()
}

func (rm *routeMetrics) upstreamLatency(d time.Duration) { rm.upstream.Observe(d.Seconds()) }

func (rm *routeMetrics) replays(outcome string) {
	rm.m.replayCount.WithLabelValues(rm.route, outcome).Inc()
}
