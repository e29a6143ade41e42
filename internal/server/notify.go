package server

import (
	"context"
	"sync"
	"time"

	"github.com/credproxy/credproxy/internal/sdnotify"
)

// readyPoll is how often startNotify looks at the routes until every one
// holds a token. tokencache has no event for a route's first token; a
// Status read takes a mutex for a few fields, and the polling lasts only
// through start-up.
const readyPoll = 20 * time.Millisecond

// startNotify tells systemd READY=1 once every route holds a valid token
// (when /readyz turns 200), watching from a goroutine of its own, and
// pings the unit's watchdog from another while the routes' caches answer
// (internal/sdnotify speaks the protocol). The returned stop, called once
// when serving ends, stops both (READY=1 and WATCHDOG=1 are then never
// sent after it; systemd does not watch a stopping unit) and tells
// systemd STOPPING=1: the drain begins. Without a notifier both do
// nothing.
func (s *Server) startNotify(ctx context.Context) (stop func()) {
	if s.opts.Notifier == nil {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		if s.waitAllReady(ctx, s.opts.Notifier.Status) {
			s.opts.Notifier.Ready("serving: every route holds a token")
		}
	})
	if s.opts.Notifier.WatchdogInterval() > 0 {
		wg.Go(func() { s.opts.Notifier.PingWatchdog(ctx, s.routesAnswer) })
	}
	return func() {
		cancel()
		wg.Wait()
		s.opts.Notifier.Stopping("draining requests, then stopping")
	}
}

// routesAnswer returns once every route's cache has answered a Status
// read: a cache stuck on its lock (the state every request and renewal
// goes through) never returns, and the watchdog pings stop.
func (s *Server) routesAnswer() {
	for _, r := range s.routes {
		r.cache.Status()
	}
}

// waitAllReady reports, once it is so, that every route holds a valid
// token, or false if ctx ends first. Meanwhile it tells status what the
// start waits for (sdnotify.WaitingStatus: the routes without a token and
// their last errors, as /readyz shows them), each time that text changes:
// `systemctl status` then says why a start hangs.
func (s *Server) waitAllReady(ctx context.Context, status func(string)) bool {
	tick := time.NewTicker(readyPoll)
	defer tick.Stop()
	told := ""
	for {
		var pending []sdnotify.Pending
		for _, r := range s.routes {
			if st := r.cache.Status(); !st.Ready {
				pending = append(pending, sdnotify.Pending{Route: r.cfg.Name, LastError: st.LastError})
			}
		}
		if len(pending) == 0 {
			return true
		}
		if text := sdnotify.WaitingStatus(pending); text != told && status != nil {
			status(text)
			told = text
		}
		select {
		case <-ctx.Done():
			return false
		case <-tick.C:
		}
	}
}
