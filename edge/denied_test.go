package edge

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestDeniedCounts: the denials of one route, by reason, as counted.
func TestDeniedCounts(t *testing.T) {
	m := NewMetrics(prometheus.NewRegistry())
	m.Denied("a", "denied_by_policy")
	m.Denied("a", "denied_by_policy")
	m.Denied("a", ReasonBrowser)
	m.Denied("b", "client_key_required")
	got := m.DeniedCounts("a")
	if len(got) != 2 || got["denied_by_policy"] != 2 || got[ReasonBrowser] != 1 {
		t.Errorf("DeniedCounts(a) = %v", got)
	}
	if got := m.DeniedCounts("c"); len(got) != 0 {
		t.Errorf("DeniedCounts(c) = %v, want none", got)
	}
	if got := (*Metrics)(nil).DeniedCounts("a"); got != nil {
		t.Errorf("nil Metrics: %v", got)
	}
}
