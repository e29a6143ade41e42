package credexpiry

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics hold the credential expiry gauge, registered once on the
// registry the caller passes and shared by every route's Watcher
// (Options.Metrics). A nil *Metrics records nothing.
type Metrics struct {
	expiry *prometheus.GaugeVec
}

// NewMetrics creates the credential expiry gauge on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{expiry: prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "credproxy_credential_expiry_timestamp_seconds",
		Help: "When the route's long-lived credential expires (the CSP API token, the refresh token, or CREDPROXY_CREDENTIAL_EXPIRES_AT), in seconds since 1970. No series for a route while it is unknown.",
	}, []string{"route"})}
	reg.MustRegister(m.expiry)
	return m
}

// observe returns the hook that sets route's gauge to the expiry, and
// removes the series when the expiry is zero (unknown), so that no series
// says "1970" or NaN; then it calls next, the caller's OnChange, when set.
func (m *Metrics) observe(route string, next func(time.Time)) func(time.Time) {
	if m == nil {
		return next
	}
	return func(at time.Time) {
		if at.IsZero() {
			m.expiry.DeleteLabelValues(route)
		} else {
			m.expiry.WithLabelValues(route).Set(float64(at.UnixNano()) / 1e9)
		}
		if next != nil {
			next(at)
		}
	}
}
