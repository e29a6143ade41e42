package admin

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/credproxy/credproxy/exchange"
)

// fakeTokens serves a fixed token or error.
type fakeTokens struct {
	tok exchange.Token
	err error
}

func (f *fakeTokens) Token(context.Context) (exchange.Token, error) { return f.tok, f.err }

// counterValue sums the counters named name whose label is value.
func counterValue(t *testing.T, g prometheus.Gatherer, name, label, value string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, mt := range mf.GetMetric() {
			for _, lp := range mt.GetLabel() {
				if lp.GetName() == label && lp.GetValue() == value {
					sum += mt.GetCounter().GetValue()
				}
			}
		}
	}
	return sum
}
