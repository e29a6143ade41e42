package admin

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/credproxy/credproxy/exchange"
	"github.com/credproxy/credproxy/internal/promtest"
)

// fakeTokens serves a fixed token or error.
type fakeTokens struct {
	tok exchange.Token
	err error
}

func (f *fakeTokens) Token(context.Context) (exchange.Token, error) { return f.tok, f.err }

// counterValue sums the counters named name whose label is value.
func counterValue(t *testing.T, g prometheus.Gatherer, name, label, value string) float64 {
	return promtest.CounterSum(t, g, name, label, value)
}
