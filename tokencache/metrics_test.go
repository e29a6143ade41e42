package tokencache

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/credproxy/credproxy/internal/promtest"
)

// TestRenewalSuppressedCounted: the hook counts each held-back renewal of
// its route, and the series is there at zero from the start. (Moved from
// package admin with the metric.)
func TestRenewalSuppressedCounted(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	hook := m.renewalSuppressed("r", nil)
	if got := promtest.CounterSum(t, reg, "credproxy_renewals_suppressed_total", "route", "r"); got != 0 {
		t.Fatalf("at start: %v", got)
	}
	hook()
	hook()
	if got := promtest.CounterSum(t, reg, "credproxy_renewals_suppressed_total", "route", "r"); got != 2 {
		t.Errorf("after two: %v", got)
	}
}

// TestNilMetricsKeepHooks: without Metrics the caller's hooks are called
// as they are, and with Metrics they are called too.
func TestNilMetricsKeepHooks(t *testing.T) {
	var nilMetrics *Metrics
	calls := 0
	nilMetrics.renewalSuppressed("r", func() { calls++ })()
	nilMetrics.observeExchange("r", "static", func(Exchange) { calls++ })(Exchange{Result: "ok"})
	nilMetrics.watch("r", func() Status { return Status{} })
	m := NewMetrics(prometheus.NewRegistry())
	m.renewalSuppressed("r", func() { calls++ })()
	m.observeExchange("r", "static", func(Exchange) { calls++ })(Exchange{Result: "ok"})
	if calls != 4 {
		t.Errorf("hooks called %d times, want 4", calls)
	}
	if nilMetrics.renewalSuppressed("r", nil) != nil || nilMetrics.observeExchange("r", "static", nil) != nil {
		t.Error("nil Metrics without hooks made one")
	}
}
