package edge

import "github.com/prometheus/client_golang/prometheus"

// ReasonBrowser is the error code, log reason and metric reason of a
// request the browser guard refuses.
const ReasonBrowser = "browser_request_refused"

// Metrics are the edge's metrics, registered on the registry the caller
// passes (no global state). No label ever holds a header value, a token
// or a path.
type Metrics struct {
	denied    *prometheus.CounterVec
	auditLost *prometheus.CounterVec
}

// NewMetrics creates the edge's metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		denied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "credproxy_requests_denied_total",
			Help: "Requests refused at credproxy's edge before any credential was read, by route (empty for requests to the admin listener and to the forward-proxy listener itself) and reason (browser_request_refused, caller_not_allowed, client_key_required, denied_by_policy).",
		}, []string{"route", "reason"}),
		auditLost: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "credproxy_audit_events_lost_total",
			Help: "Audit events not written, by reason: queue_full (the writer fell behind), write_error (the file could not be written), closed (recorded during shutdown).",
		}, []string{"reason"}),
	}
	for _, r := range []string{LostQueueFull, LostWriteError, LostClosed} {
		m.auditLost.WithLabelValues(r)
	}
	reg.MustRegister(m.denied, m.auditLost)
	return m
}

// AuditLost counts one audit event that was not written (an
// AuditOptions.OnLost hook). The series of every reason exist from the
// start, so that an alert has a zero to compare with. A nil *Metrics
// counts nothing.
func (m *Metrics) AuditLost(reason string) {
	if m == nil {
		return
	}
	m.auditLost.WithLabelValues(reason).Inc()
}

// Denied counts one refused request. A nil *Metrics counts nothing.
func (m *Metrics) Denied(route, reason string) {
	if m == nil {
		return
	}
	m.denied.WithLabelValues(route, reason).Inc()
}
