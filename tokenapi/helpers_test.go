package tokenapi

import (
	"context"
	"net/http"
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

// newMux mounts both endpoints over opts where the admin listener does.
func newMux(opts Options) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle(TokenPath, NewTokenHandler(opts))
	mux.Handle(OAuth2TokenPath, NewOAuth2Handler(opts))
	return mux
}
