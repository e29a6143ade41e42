package admin

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/credproxy/credproxy/tokencache"
)

// Metrics are the metrics of the routes' tokens: exchanges by result and
// their latency, renewals by trigger, and gauges read from each route's
// state when scraped. They are registered on the registry the caller
// passes. No label ever holds a token or a secret.
type Metrics struct {
	reg              prometheus.Registerer
	exchanges        *prometheus.CounterVec
	exchangeDuration *prometheus.HistogramVec
	renewals         *prometheus.CounterVec
	suppressed       *prometheus.CounterVec
	sinkWrites       *prometheus.CounterVec
	credentialExpiry *prometheus.GaugeVec
}

// NewMetrics creates the token metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		reg: reg,
		exchanges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "credproxy_exchanges_total",
			Help: "Token exchanges by route, credential kind and result (ok, rejected, unavailable, timeout, invalid_response, config).",
		}, []string{"route", "kind", "result"}),
		exchangeDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "credproxy_exchange_duration_seconds",
			Help:    "Duration of token exchanges with the identity service.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"route", "kind"}),
		renewals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "credproxy_token_renewals_total",
			Help: "Exchanges that renew a held token, by route, trigger (scheduled: ahead of expiry or a retry; upstream_401: the upstream rejected the token; reload: SIGHUP) and result (ok or the failure reason, as in credproxy_exchanges_total).",
		}, []string{"route", "trigger", "result"}),
		suppressed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "credproxy_renewals_suppressed_total",
			Help: "Renewals an upstream 401 asked for that were held back, by route: the upstream refused tokens just renewed for a 401 too (a path that refuses every token), so renewals back off (1 s doubling to 5 min) until a request succeeds, and the 401 goes to the client.",
		}, []string{"route"}),
		sinkWrites: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "credproxy_token_sink_writes_total",
			Help: "Writes of a route's token to its TOKEN_SINK_FILE by route and result (ok or error; a failed write is retried with backoff).",
		}, []string{"route", "result"}),
		credentialExpiry: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "credproxy_credential_expiry_timestamp_seconds",
			Help: "When the route's long-lived credential expires (the CSP API token, the refresh token, or CREDPROXY_CREDENTIAL_EXPIRES_AT), in seconds since 1970. No series for a route while it is unknown.",
		}, []string{"route"}),
	}
	reg.MustRegister(m.exchanges, m.exchangeDuration, m.renewals, m.suppressed, m.sinkWrites, m.credentialExpiry)
	return m
}

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

// RenewalSuppressed returns a tokencache.Options.OnRenewalSuppressed hook
// for a route: every 401-triggered renewal held back is counted. The
// series exists from the start, so that an alert has a zero to compare
// with.
func (m *Metrics) RenewalSuppressed(route string) func() {
	c := m.suppressed.WithLabelValues(route)
	return c.Inc
}

// ObserveSinkWrite returns a tokensink.Options.OnWrite hook for a route:
// every write of its token sink is counted by result. Both series exist
// from the start, so that an alert on errors has a zero to compare with.
func (m *Metrics) ObserveSinkWrite(route string) func(error) {
	ok, failed := m.sinkWrites.WithLabelValues(route, "ok"), m.sinkWrites.WithLabelValues(route, "error")
	return func(err error) {
		if err != nil {
			failed.Inc()
			return
		}
		ok.Inc()
	}
}

// CredentialExpiry returns a credexpiry.Options.OnChange hook for a
// route: it sets the route's credproxy_credential_expiry_timestamp_seconds
// to the expiry, and removes the series when the expiry is zero
// (unknown), so that no series says "1970" or NaN.
func (m *Metrics) CredentialExpiry(route string) func(time.Time) {
	return func(at time.Time) {
		if at.IsZero() {
			m.credentialExpiry.DeleteLabelValues(route)
			return
		}
		m.credentialExpiry.WithLabelValues(route).Set(float64(at.UnixNano()) / 1e9)
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
