package proxy

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/credproxy/credproxy/tokencache"
)

// Metrics are credproxy's Prometheus metrics. They are registered on a
// registry of credproxy's own (no global state), served at /metrics. No
// label ever holds a token, a secret or a request path.
type Metrics struct {
	reg *prometheus.Registry

	exchanges        *prometheus.CounterVec
	exchangeDuration *prometheus.HistogramVec
	requests         *prometheus.CounterVec
	upstreamDuration *prometheus.HistogramVec
	replayCount      *prometheus.CounterVec
	renewals         *prometheus.CounterVec
	connects         *prometheus.CounterVec
	leafSigned       prometheus.Counter
	tokenAPI         *prometheus.CounterVec
}

// NewMetrics creates the metrics on a new registry, with the Go runtime and
// process collectors.
func NewMetrics() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		exchanges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "credproxy_exchanges_total",
			Help: "Token exchanges by route, credential kind and result (ok, rejected, unavailable, timeout, invalid_response, config).",
		}, []string{"route", "kind", "result"}),
		exchangeDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "credproxy_exchange_duration_seconds",
			Help:    "Duration of token exchanges with the identity service.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"route", "kind"}),
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
		renewals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "credproxy_token_renewals_total",
			Help: "Exchanges that renew a held token, by route, trigger (scheduled: ahead of expiry or a retry; upstream_401: the upstream rejected the token) and result (ok or the failure reason, as in credproxy_exchanges_total).",
		}, []string{"route", "trigger", "result"}),
		tokenAPI: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "credproxy_token_api_requests_total",
			Help: "Requests to the token API (GET /v1/token/<route>) by route (empty for an unknown route) and status code.",
		}, []string{"route", "status"}),
		connects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "credproxy_forward_connects_total",
			Help: "CONNECT requests to the forward proxy by decision: intercept (a route host), tunnel (passed through untouched) or deny.",
		}, []string{"decision"}),
		leafSigned: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "credproxy_leaf_certificates_signed_total",
			Help: "Leaf certificates signed by the forward-proxy CA for intercepted hosts.",
		}),
	}
	m.reg.MustRegister(m.exchanges, m.exchangeDuration, m.requests, m.upstreamDuration, m.replayCount, m.renewals, m.tokenAPI, m.connects, m.leafSigned,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry returns the registry, for /metrics and for further collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// ObserveExchange returns a tokencache.Options.OnExchange hook for a route:
// every exchange is counted by result and timed; one that renews a held
// token is also counted by what triggered it.
func (m *Metrics) ObserveExchange(route, kind string) func(tokencache.Exchange) {
	dur := m.exchangeDuration.WithLabelValues(route, kind)
	return func(e tokencache.Exchange) {
		m.exchanges.WithLabelValues(route, kind, e.Result).Inc()
		dur.Observe(e.Duration.Seconds())
		if e.Trigger != "" && e.Trigger != "initial" {
			m.renewals.WithLabelValues(route, e.Trigger, e.Result).Inc()
		}
	}
}

// WatchRoute registers the gauges that read a route's state when scraped:
// seconds until its token expires and whether it holds a valid token.
func (m *Metrics) WatchRoute(route string, status func() tokencache.Status) {
	labels := prometheus.Labels{"route": route}
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "credproxy_token_expiry_seconds",
			Help:        "Seconds until the route's current token expires (0 when none is held or it has no expiry, as static tokens).",
			ConstLabels: labels,
		}, func() float64 { return max(0, status().ExpiresIn) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "credproxy_exchange_consecutive_failures",
			Help:        "Exchanges of the route that failed in a row since its last success (0 when the last one succeeded).",
			ConstLabels: labels,
		}, func() float64 { return float64(status().ConsecutiveFailures) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "credproxy_route_ready",
			Help:        "1 when the route holds a valid token.",
			ConstLabels: labels,
		}, func() float64 {
			if status().Ready {
				return 1
			}
			return 0
		}),
	)
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
