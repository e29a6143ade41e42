package main

import (
	"os"
	"os/signal"
	"syscall"

	"go.uber.org/zap"
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

// reload is what a SIGHUP does while credproxy serves. The contract's
// SIGHUP renews every route now and reloads the CA files; tokencache has
// no immediate renewal yet (Invalidate is for a token an upstream
// rejected, and is counted as such), so for now reload only says so. It
// never stops credproxy nor drops a connection.
func (a *app) reload() {
	a.log.Info("SIGHUP received",
		zap.String("did", "nothing: tokens renew on their own schedule, CA files are not reloaded; serving continues"),
		zap.Int("routes", len(a.routes)))
}
