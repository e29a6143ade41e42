package edge

import (
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// DeniedCounts returns the requests refused so far on route, by reason
// (what credproxy_requests_denied_total holds), for the status page and
// /readyz. It reads only that counter. A nil *Metrics has none.
func (m *Metrics) DeniedCounts(route string) map[string]uint64 {
	if m == nil {
		return nil
	}
	ch := make(chan prometheus.Metric, 16)
	go func() { m.denied.Collect(ch); close(ch) }()
	out := map[string]uint64{}
	for metric := range ch {
		var pb dto.Metric
		if metric.Write(&pb) != nil || pb.Counter == nil {
			continue
		}
		var r, reason string
		for _, l := range pb.Label {
			switch l.GetName() {
			case "route":
				r = l.GetValue()
			case "reason":
				reason = l.GetValue()
			}
		}
		if r == route && pb.Counter.GetValue() > 0 {
			out[reason] = uint64(pb.Counter.GetValue())
		}
	}
	return out
}
