package main

import (
	"context"
	"sync"

	"go.uber.org/zap"

	"github.com/credproxy/credproxy/admin"
	"github.com/credproxy/credproxy/config"
	"github.com/credproxy/credproxy/exchange"
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
func newSink(rc config.Route, m *admin.Metrics, log *zap.Logger) (*tokensink.Sink, func(exchange.Token)) {
	if rc.TokenSinkFile == "" {
		return nil, nil
	}
	s := tokensink.New(tokensink.Options{
		Path:    rc.TokenSinkFile,
		Mode:    rc.TokenSinkMode,
		Route:   rc.Name,
		Logger:  log.Named("tokensink"),
		OnWrite: m.ObserveSinkWrite(rc.Name),
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

// oauth2Routes are the routes of the local OAuth 2.0 token endpoint: every
// route, its client_id its name, its client secret LOCAL_CLIENT_SECRET.
func (a *app) oauth2Routes() []admin.OAuth2Route {
	var out []admin.OAuth2Route
	for _, r := range a.routes {
		out = append(out, admin.OAuth2Route{
			TokenRoute:   admin.TokenRoute{Name: r.cfg.Name, TokenType: r.cfg.HeaderPrefix, Tokens: r.cache},
			ClientSecret: r.cfg.LocalClientSecret,
		})
	}
	return out
}
