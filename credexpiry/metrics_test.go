package credexpiry

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TestCredentialExpiryGauge: the gauge holds the expiry in seconds since
// 1970 while it is known, and the route has no series otherwise. (Moved
// from package admin with the metric.)
func TestCredentialExpiryGauge(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	set := m.observe("wf", nil)
	m.observe("other", nil)(time.Time{})
	series := func() map[string]float64 {
		t.Helper()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]float64{}
		for _, mf := range mfs {
			if mf.GetName() != "credproxy_credential_expiry_timestamp_seconds" {
				continue
			}
			if mf.GetType().String() != "GAUGE" {
				t.Errorf("type %v", mf.GetType())
			}
			for _, mt := range mf.GetMetric() {
				for _, lp := range mt.GetLabel() {
					out[lp.GetName()+"="+lp.GetValue()] = mt.GetGauge().GetValue()
				}
			}
		}
		return out
	}
	if got := series(); len(got) != 0 {
		t.Fatalf("series before any expiry is known: %v", got)
	}
	at := time.Date(2027, 3, 1, 12, 0, 0, 500_000_000, time.UTC)
	set(at)
	if got := series(); len(got) != 1 || got["route=wf"] != float64(at.Unix())+0.5 {
		t.Errorf("series %v, want route=wf %d.5", got, at.Unix())
	}
	set(time.Time{})
	if got := series(); len(got) != 0 {
		t.Errorf("series once the expiry is unknown again: %v", got)
	}
}

// TestMetricsFromNew: a Watcher given Metrics sets its route's gauge from
// New with the configured expiry, and still calls OnChange.
func TestMetricsFromNew(t *testing.T) {
	reg := prometheus.NewRegistry()
	at := time.Date(2027, 3, 1, 12, 0, 0, 0, time.UTC)
	var changes []time.Time
	New(Options{Route: "wf", Configured: at, Metrics: NewMetrics(reg), OnChange: func(t time.Time) { changes = append(changes, t) }})
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(mfs) != 1 || len(mfs[0].GetMetric()) != 1 || mfs[0].GetMetric()[0].GetGauge().GetValue() != float64(at.Unix()) {
		t.Errorf("gauge after New: %v", mfs)
	}
	if len(changes) != 1 || !changes[0].Equal(at) {
		t.Errorf("OnChange %v", changes)
	}
}
