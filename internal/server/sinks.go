package server

import (
	"context"
	"sync"

	"go.uber.org/zap"

	"github.com/credproxy/credproxy/config"
	"github.com/credproxy/credproxy/edge"
	"github.com/credproxy/credproxy/exchange"
	"github.com/credproxy/credproxy/tokensink"
)

// CheckSinkPaths checks, before anything starts, that every route's
// TOKEN_SINK_FILE can be written as far as can be told without writing:
// a missing directory is a configuration error naming the variable (exit
// code 2), not a failure found at the first exchange. New calls it; the
// check command too.
func CheckSinkPaths(routes []config.Route) error {
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
// that feeds it; both nil when the route has no TOKEN_SINK_FILE. Every
// token written is one audit event (via sink, decision allowed, the
// token's fingerprint): a token put on disk is a token handed out.
func newSink(rc config.Route, m *tokensink.Metrics, audit *edge.Auditor, log *zap.Logger) (*tokensink.Sink, func(exchange.Token)) {
	if rc.TokenSinkFile == "" {
		return nil, nil
	}
	s := tokensink.New(tokensink.Options{
		Path:    rc.TokenSinkFile,
		Mode:    rc.TokenSinkMode,
		Route:   rc.Name,
		Logger:  log.Named("tokensink"),
		Metrics: m,
		OnWritten: func(tok exchange.Token) {
			audit.Record(edge.Event{Route: rc.Name, Via: edge.ViaSink, Path: rc.TokenSinkFile, Decision: edge.Allowed, Token: tok.Value})
		},
	})
	return s, s.Offer
}

// startSinks runs the routes' token sinks on wg until ctx ends: the
// caches' context, so that a sink file is removed when its route stops,
// after the listeners have drained.
func (s *Server) startSinks(ctx context.Context, wg *sync.WaitGroup) {
	for _, r := range s.routes {
		if r.sink != nil {
			wg.Go(func() { r.sink.Run(ctx) })
		}
	}
}
