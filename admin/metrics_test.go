package admin

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/credproxy/credproxy/internal/promtest"
)

// TestRenewalSuppressedCounted: the hook counts each held-back renewal of
// its route, and the series is there at zero from the start.
func TestRenewalSuppressedCounted(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	hook := m.RenewalSuppressed("r")
	if got := promtest.CounterSum(t, reg, "credproxy_renewals_suppressed_total", "route", "r"); got != 0 {
		t.Fatalf("at start: %v", got)
	}
	hook()
	hook()
	if got := promtest.CounterSum(t, reg, "credproxy_renewals_suppressed_total", "route", "r"); got != 2 {
		t.Errorf("after two: %v", got)
	}
}
