package tokensink

import (
	"errors"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/credproxy/credproxy/internal/promtest"
)

// TestObserveSinkWrite: token sink writes are counted by route and
// result, and the error series exists before the first error. (Moved
// from package admin with the metric.)
func TestObserveSinkWrite(t *testing.T) {
	reg := prometheus.NewRegistry()
	observe := NewMetrics(reg).observeWrite("r", nil)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	series := 0
	for _, mf := range mfs {
		if mf.GetName() == "credproxy_token_sink_writes_total" {
			series = len(mf.GetMetric())
		}
	}
	if series != 2 {
		t.Errorf("series before any write = %d, want ok and error", series)
	}
	observe(nil)
	observe(nil)
	observe(errors.New("rename /run/t: is a directory"))
	if ok, bad := promtest.CounterSum(t, reg, "credproxy_token_sink_writes_total", "result", "ok"), promtest.CounterSum(t, reg, "credproxy_token_sink_writes_total", "result", "error"); ok != 2 || bad != 1 {
		t.Errorf("ok %v, error %v; want 2 and 1", ok, bad)
	}
}
