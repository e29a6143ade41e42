package tokencache

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the metrics of the routes' tokens, registered once on the
// registry the caller passes and shared by every route's Cache
// (Options.Metrics): exchanges by result and their latency, renewals by
// trigger, 401-triggered renewals held back, and gauges read from each
// route's state when scraped. No label ever holds a token or a secret.
//
// A nil *Metrics is valid and counts nothing, so that a Cache needs no
// registry in tests.
type Metrics struct {
	reg              prometheus.Registerer
	exchanges        *prometheus.CounterVec
	exchangeDuration *prometheus.HistogramVec
	renewals         *prometheus.CounterVec
	suppressed       *prometheus.CounterVec
	states           *stateCollector
}

// NewMetrics creates the token metrics on reg. The per-route gauges are
// registered on reg by New, one set per route.
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
		states: &stateCollector{desc: prometheus.NewDesc("credproxy_route_state",
			"The route's state, as /readyz and the status page show it: 1 for the state it is in now, 0 for the others "+
				"(pending, valid, renewing, failing, expired, stopped).", []string{"route", "state"}, nil)},
	}
	reg.MustRegister(m.exchanges, m.exchangeDuration, m.renewals, m.suppressed, m.states)
	return m
}

// observeExchange returns the hook that counts a route's exchanges by
// result and times them, and counts one that renews a held token by what
// triggered it; then it calls next, the caller's OnExchange, when set.
func (m *Metrics) observeExchange(route, kind string, next func(Exchange)) func(Exchange) {
	if m == nil {
		return next
	}
	dur := m.exchangeDuration.WithLabelValues(route, kind)
	return func(e Exchange) {
		m.exchanges.WithLabelValues(route, kind, e.Result).Inc()
		dur.Observe(e.Duration.Seconds())
		if e.Trigger != "" && e.Trigger != "initial" {
			m.renewals.WithLabelValues(route, e.Trigger, e.Result).Inc()
		}
		if next != nil {
			next(e)
		}
	}
}

// renewalSuppressed returns the hook that counts a route's held-back
// 401-triggered renewals, then calls next when set. The series exists
// from the start, so that an alert has a zero to compare with.
func (m *Metrics) renewalSuppressed(route string, next func()) func() {
	if m == nil {
		return next
	}
	c := m.suppressed.WithLabelValues(route)
	if next == nil {
		return c.Inc
	}
	return func() { c.Inc(); next() }
}

// watch registers the gauges that read a route's state when scraped:
// seconds until its token expires, exchanges failed in a row, whether
// it holds a valid token, and its State.
func (m *Metrics) watch(route string, status func() Status) {
	if m == nil {
		return
	}
	m.states.add(route, status)
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

// stateCollector serves credproxy_route_state: one series per route and
// State, read from each route's Status once per scrape, so that the
// series of a route always agree with each other.
type stateCollector struct {
	desc *prometheus.Desc
	// mu guards routes: New adds to it while a scrape may read it.
	mu     sync.Mutex
	routes []watchedRoute
}

type watchedRoute struct {
	name   string
	status func() Status
}

func (sc *stateCollector) add(route string, status func() Status) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	sc.routes = append(sc.routes, watchedRoute{name: route, status: status})
}

func (sc *stateCollector) Describe(ch chan<- *prometheus.Desc) { ch <- sc.desc }

func (sc *stateCollector) Collect(ch chan<- prometheus.Metric) {
	sc.mu.Lock()
	routes := sc.routes
	sc.mu.Unlock()
	for _, r := range routes {
		now := r.status().State
		for _, s := range States() {
			v := 0.0
			if s == now {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(sc.desc, prometheus.GaugeValue, v, r.name, string(s))
		}
	}
}
