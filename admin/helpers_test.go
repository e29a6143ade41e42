package admin

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/credproxy/credproxy/internal/promtest"
)

// counterValue sums the counters named name whose label is value.
func counterValue(t *testing.T, g prometheus.Gatherer, name, label, value string) float64 {
	return promtest.CounterSum(t, g, name, label, value)
}
