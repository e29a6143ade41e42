package server

import (
	"context"
	"errors"
	"sync"

	"go.uber.org/zap"

	"github.com/credproxy/credproxy/tokencache"
)

// reload is what a SIGHUP does while credproxy serves: it reloads the
// forward proxy's CA files, when they are configured, and renews every
// route now. It never stops credproxy nor drops a connection. Only the
// wait loop calls it.
//
// It returns at once, so that the wait loop keeps watching for shutdown:
// each route's renewal is waited for on a goroutine of its own, which
// logs one line when the exchange ends. The deduplication is the token
// cache's (tokencache.Cache.Renew): SIGHUPs that come together, or during
// a renewal, share one exchange per route, and no route exchanges twice
// within a second. ctx is the run's: a renewal still waited for when it
// ends is abandoned.
func (s *Server) reload(ctx context.Context) {
	s.log.Info("SIGHUP received",
		zap.String("did", "renewing every route now, reloading the CA files and reopening the audit log; serving continues"),
		zap.Int("routes", len(s.routes)))
	s.reloadCA()
	s.audit.Reopen() // logrotate moved the file: write to a new one at its path
	for _, r := range s.routes {
		if !s.hup.start(r, func() { s.renewRoute(ctx, r) }) {
			s.log.Debug("SIGHUP: the renewal of an earlier SIGHUP is under way; its exchange answers this one too", zap.String("route", r.cfg.Name))
		}
	}
}

// reloader runs the renewals that SIGHUPs ask for, at most one waited for
// per route. A SIGHUP while a route's renewal is still waited for would
// be answered by the same exchange (that is Renew's contract), so it
// starts no second wait, and logs no second line about one exchange.
type reloader struct {
	wg sync.WaitGroup
	// busy holds a route while its renewal is waited for. Only start
	// writes the map (from the wait loop); a renewal's goroutine frees
	// its route's slot when done.
	busy map[*liveRoute]chan struct{}
}

// start runs renew for r on a goroutine of its own, unless one is already
// running for r; it reports whether it started one.
func (h *reloader) start(r *liveRoute, renew func()) bool {
	if h.busy == nil {
		h.busy = map[*liveRoute]chan struct{}{}
	}
	slot := h.busy[r]
	if slot == nil {
		slot = make(chan struct{}, 1)
		h.busy[r] = slot
	}
	select {
	case slot <- struct{}{}:
	default:
		return false
	}
	h.wg.Go(func() {
		defer func() { <-slot }()
		renew()
	})
	return true
}

// wait returns once every renewal started has ended.
func (h *reloader) wait() { h.wg.Wait() }

// renewRoute renews r for a SIGHUP and logs the outcome: the result, and
// the new token's fingerprint or the error.
func (s *Server) renewRoute(ctx context.Context, r *liveRoute) {
	rn, err := r.cache.Renew(ctx)
	fields := []zap.Field{zap.String("route", r.cfg.Name), zap.String("result", rn.Result), zap.String("trigger", rn.Trigger), zap.Duration("duration", rn.Duration)}
	switch {
	case err == nil:
		expiresIn := zap.Duration("expires_in", rn.Lifetime)
		if rn.Lifetime == 0 {
			expiresIn = zap.String("expires_in", "never")
		}
		s.log.Info("SIGHUP: route renewed", append(fields, expiresIn, zap.Stringer("token", rn.Token.Value))...)
	case rn.Result != "":
		s.log.Warn("SIGHUP: route not renewed; its token is served while it is valid", append(fields, zap.Error(err))...)
	case errors.Is(err, tokencache.ErrStopped), errors.Is(err, context.Canceled):
		s.log.Info("SIGHUP: renewal abandoned: shutting down", zap.String("route", r.cfg.Name))
	default:
		s.log.Warn("SIGHUP: renewal abandoned", zap.String("route", r.cfg.Name), zap.Error(err))
	}
}
