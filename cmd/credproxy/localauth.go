package main

import (
	"context"
	"sync"

	"go.uber.org/zap"

	"github.com/credproxy/credproxy/config"
	"github.com/credproxy/credproxy/exchange"
	"github.com/credproxy/credproxy/tokenapi"
	"github.com/credproxy/credproxy/tokensink"
)

// The wiring of what credproxy offers local clients besides the proxy:
// the admin listener's OAuth 2.0 token endpoint and the token sinks.

// checkSinkPaths checks, before anything starts, that every route's
// TOKEN_SINK_FILE can be written as far as can be told without writing:
// a missing directory is a configuration error naming the variable (exit
// code 2), not a failure found at the first exchange.
func checkSinkPaths(routes []config.Route) error {
	var problems []config.Problem
	for _, rc := range routes {
		if rc.TokenSinkFile == "" {
			continue
		}
		if err := tokensink.CheckPath(rc.TokenSinkFile); err != nil {
			problems = append(problems, config.Problem{Var: rc.Prefix + "TOKEN_SINK_FILE", Msg: err.Error()})
		}
	}
	if len(problems) > 0 {
		return &config.Error{Problems: problems}
	}
	return nil
}

// newSink returns a route's token sink and the tokencache OnToken hook
// that feeds it; both nil when the route has no TOKEN_SINK_FILE.
func newSink(rc config.Route, m *tokensink.Metrics, log *zap.Logger) (*tokensink.Sink, func(exchange.Token)) {
	if rc.TokenSinkFile == "" {
		return nil, nil
	}
	s := tokensink.New(tokensink.Options{
		Path:    rc.TokenSinkFile,
		Mode:    rc.TokenSinkMode,
		Route:   rc.Name,
		Logger:  log.Named("tokensink"),
		Metrics: m,
	})
	return s, s.Offer
}

// startSinks runs the routes' token sinks on wg until ctx ends: the
// caches' context, so that a sink file is removed when its route stops,
// after the listeners have drained.
func (a *app) startSinks(ctx context.Context, wg *sync.WaitGroup) {
	for _, r := range a.routes {
		if r.sink != nil {
			wg.Go(func() { r.sink.Run(ctx) })
		}
	}
}

// tokenRoutes are the routes of the token endpoints: every route, its name
// the token API's path element and the OAuth 2.0 client_id, its client
// secret LOCAL_CLIENT_SECRET.
func (a *app) tokenRoutes() []tokenapi.Route {
	var out []tokenapi.Route
	for _, r := range a.routes {
		out = append(out, tokenapi.Route{
			Name: r.cfg.Name, TokenType: r.cfg.HeaderPrefix, Tokens: r.cache,
			Identity: identityFunc(r.cfg), ClientSecret: r.cfg.LocalClientSecret,
		})
	}
	return out
}
