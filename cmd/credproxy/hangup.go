package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"go.uber.org/zap"

	"github.com/credproxy/credproxy/mitm"
	"github.com/credproxy/credproxy/tokencache"
)

// catchHangup takes SIGHUP from its default action, which ends the process
// at once, mid-request and without ending Splunk sessions, for as long as
// the run or demo command lasts, its drain included: until stop, each
// SIGHUP is sent on the returned channel, or dropped while one is pending
// there. exec does not call it: its command gets the signal.
func catchHangup() (hangup <-chan os.Signal, stop func()) {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGHUP)
	return c, func() { signal.Stop(c) }
}

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
func (a *app) reload(ctx context.Context) {
	a.log.Info("SIGHUP received",
		zap.String("did", "renewing every route now and reloading the CA files; serving continues"),
		zap.Int("routes", len(a.routes)))
	a.reloadCA()
	for _, r := range a.routes {
		if !a.hup.start(r, func() { a.renewRoute(ctx, r) }) {
			a.log.Debug("SIGHUP: the renewal of an earlier SIGHUP is under way; its exchange answers this one too", zap.String("route", r.cfg.Name))
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
func (a *app) renewRoute(ctx context.Context, r *liveRoute) {
	rn, err := r.cache.Renew(ctx)
	fields := []zap.Field{zap.String("route", r.cfg.Name), zap.String("result", rn.Result), zap.String("trigger", rn.Trigger), zap.Duration("duration", rn.Duration)}
	switch {
	case err == nil:
		expiresIn := zap.Duration("expires_in", rn.Lifetime)
		if rn.Lifetime == 0 {
			expiresIn = zap.String("expires_in", "never")
		}
		a.log.Info("SIGHUP: route renewed", append(fields, expiresIn, zap.Stringer("token", rn.Token.Value))...)
	case rn.Result != "":
		a.log.Warn("SIGHUP: route not renewed; its token is served while it is valid", append(fields, zap.Error(err))...)
	case errors.Is(err, tokencache.ErrStopped), errors.Is(err, context.Canceled):
		a.log.Info("SIGHUP: renewal abandoned: shutting down", zap.String("route", r.cfg.Name))
	default:
		a.log.Warn("SIGHUP: renewal abandoned", zap.String("route", r.cfg.Name), zap.Error(err))
	}
}

// reloadCA loads the forward proxy's CA files again and, when they hold
// another CA, makes it sign the leaves of new interceptions
// (proxy.Forward.SetCA). A CA that fails to load is logged as an error
// and the one in use is kept. An ephemeral CA (no CA files) is kept.
func (a *app) reloadCA() {
	if a.forward == nil {
		return
	}
	if a.cfg.CACertFile == "" {
		a.log.Info("forward-proxy CA kept: it is this process's own (no CREDPROXY_CA_CERT_FILE to reload)")
		return
	}
	old := a.forward.CA()
	ca, err := mitm.LoadCA(a.cfg.CACertFile, a.cfg.CAKeyFile)
	if err != nil {
		a.log.Error("forward-proxy CA not reloaded; the one in use is kept",
			zap.Error(fmt.Errorf("CREDPROXY_CA_CERT_FILE, CREDPROXY_CA_KEY_FILE: %w", err)),
			zap.String("fingerprint", old.Fingerprint()))
		return
	}
	if ca.Certificate().Equal(old.Certificate()) {
		a.log.Info("forward-proxy CA unchanged", zap.String("fingerprint", old.Fingerprint()))
		return
	}
	a.forward.SetCA(ca)
	a.log.Info("forward-proxy CA reloaded: new intercepted connections get leaves it signs",
		zap.String("subject", ca.Certificate().Subject.String()),
		zap.String("fingerprint", ca.Fingerprint()),
		zap.String("previous_fingerprint", old.Fingerprint()))
}
