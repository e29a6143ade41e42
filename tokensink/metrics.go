package tokensink

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics count the token sinks' writes by route and result, registered
// once on the registry the caller passes and shared by every route's Sink
// (Options.Metrics). A nil *Metrics counts nothing.
type Metrics struct {
	writes *prometheus.CounterVec
}

// NewMetrics creates the sink metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{writes: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "credproxy_token_sink_writes_total",
		Help: "Writes of a route's token to its TOKEN_SINK_FILE by route and result (ok or error; a failed write is retried with backoff).",
	}, []string{"route", "result"})}
	reg.MustRegister(m.writes)
	return m
}

// observeWrite returns the hook that counts a route's sink writes by
// result, then calls next, the caller's OnWrite, when set. Both series
// exist from the start, so that an alert on errors has a zero to compare
// with.
func (m *Metrics) observeWrite(route string, next func(error)) func(error) {
	if m == nil {
		return next
	}
	ok, failed := m.writes.WithLabelValues(route, "ok"), m.writes.WithLabelValues(route, "error")
	return func(err error) {
		if err != nil {
			failed.Inc()
		} else {
			ok.Inc()
		}
		if next != nil {
			next(err)
		}
	}
}
