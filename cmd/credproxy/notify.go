package main

import (
	"context"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"
)

// sdNotifier tells systemd about credproxy's state, for a unit with
// Type=notify, through the datagram protocol of sd_notify(3): one
// datagram of newline-separated KEY=VALUE lines sent to the unix socket
// named by NOTIFY_SOCKET. The few lines the protocol needs are here rather
// than go-systemd's daemon package, which reads NOTIFY_SOCKET from the
// process environment itself; credproxy's commands get theirs as a map.
//
// A nil *sdNotifier (no NOTIFY_SOCKET: not started by systemd, or by a
// unit of another Type) does nothing.
type sdNotifier struct {
	addr *net.UnixAddr
	log  *zap.Logger
	// watchdog is how often WATCHDOG=1 is sent: half of the unit's
	// WatchdogSec (WATCHDOG_USEC), as sd_watchdog_enabled(3) advises.
	// Zero when the unit has no watchdog, or it is meant for another
	// process (WATCHDOG_PID).
	watchdog time.Duration
}

// newSDNotifier returns a notifier for the NOTIFY_SOCKET value socket: an
// absolute path, or an abstract socket name written with a leading '@'
// (Go's net package turns that '@' into the leading NUL of the kernel's
// abstract namespace, as systemd means it). Nil when socket is empty or of
// a kind credproxy cannot send to (systemd's vsock: addresses), which is
// logged: systemd then never hears READY=1 and times the start out.
func newSDNotifier(socket string, log *zap.Logger) *sdNotifier {
	switch {
	case socket == "":
		return nil
	case socket[0] != '/' && socket[0] != '@':
		log.Warn("NOTIFY_SOCKET is neither an absolute path nor an abstract socket name; systemd will not be told when credproxy is ready",
			zap.String("notify_socket", socket))
		return nil
	}
	return &sdNotifier{addr: &net.UnixAddr{Name: socket, Net: "unixgram"}, log: log}
}

// withWatchdog sets n's watchdog interval from systemd's WATCHDOG_USEC and
// WATCHDOG_PID (sd_watchdog_enabled(3)): half of usec, when pid is empty or
// credproxy's own. A value that is not a positive count of microseconds is
// logged and the watchdog left off.
func (n *sdNotifier) withWatchdog(usec, pid string) *sdNotifier {
	if n == nil || usec == "" {
		return n
	}
	if pid != "" && pid != strconv.Itoa(os.Getpid()) {
		n.log.Debug("the systemd watchdog is meant for another process", zap.String("watchdog_pid", pid))
		return n
	}
	us, err := strconv.ParseInt(usec, 10, 64)
	if err != nil || us <= 0 || us > int64(365*24*time.Hour/time.Microsecond) {
		n.log.Warn("WATCHDOG_USEC is not a positive number of microseconds; systemd's watchdog is not pinged",
			zap.String("watchdog_usec", usec))
		return n
	}
	n.watchdog = time.Duration(us) * time.Microsecond / 2
	return n
}

// send sends state, newline-separated assignments, in one datagram. A
// failure is logged and otherwise ignored: serving never depends on it.
func (n *sdNotifier) send(state string) {
	if n == nil {
		return
	}
	conn, err := net.DialUnix("unixgram", nil, n.addr)
	if err == nil {
		_, err = conn.Write([]byte(state))
		conn.Close()
	}
	if err != nil {
		n.log.Warn("telling systemd failed", zap.String("state", state), zap.Error(err))
		return
	}
	n.log.Debug("told systemd", zap.String("state", state))
}

// readyPoll is how often startNotify looks at the routes until every one
// holds a token. tokencache has no event for a route's first token; a
// Status read takes a mutex for a few fields, and the polling lasts only
// through start-up.
const readyPoll = 20 * time.Millisecond

// startNotify tells systemd READY=1 once every route holds a valid token
// (when /readyz turns 200), watching from a goroutine of its own, and
// pings the unit's watchdog from another while the routes' caches answer.
// The returned stop, called once when serving ends, stops both (READY=1
// and WATCHDOG=1 are then never sent after it; systemd does not watch a
// stopping unit) and tells systemd STOPPING=1: the drain begins. Without
// a notifier both do nothing.
func (a *app) startNotify(ctx context.Context) (stop func()) {
	if a.notify == nil {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		if a.waitAllReady(ctx) {
			a.notify.send("READY=1\nSTATUS=serving: every route holds a token")
		}
	})
	if a.notify.watchdog > 0 {
		wg.Go(func() { a.notify.pingWatchdog(ctx, a.routesAnswer) })
	}
	return func() {
		cancel()
		wg.Wait()
		a.notify.send("STOPPING=1\nSTATUS=draining requests, then stopping")
	}
}

// routesAnswer returns once every route's cache has answered a Status
// read: a cache stuck on its lock (the state every request and renewal
// goes through) never returns.
func (a *app) routesAnswer() {
	for _, r := range a.routes {
		r.cache.Status()
	}
}

// pingWatchdog sends WATCHDOG=1 every n.watchdog until ctx ends, each
// time only after alive has returned: when it hangs (routesAnswer: a
// stuck cache) the pings stop, and systemd restarts credproxy once
// WatchdogSec passes without one. alive runs apart, so a stuck cache
// never holds up the shutdown.
func (n *sdNotifier) pingWatchdog(ctx context.Context, alive func()) {
	tick := time.NewTicker(n.watchdog)
	defer tick.Stop()
	for {
		answered := make(chan struct{})
		go func() {
			alive()
			close(answered)
		}()
		select {
		case <-answered:
			n.send("WATCHDOG=1")
		case <-ctx.Done():
			return
		case <-tick.C:
			n.log.Error("a route's token cache did not answer within the watchdog interval; systemd's watchdog is not pinged",
				zap.Duration("interval", n.watchdog))
			select {
			case <-answered:
				n.log.Info("the token caches answer again; pinging systemd's watchdog")
			case <-ctx.Done():
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// waitAllReady reports, once it is so, that every route holds a valid
// token, or false if ctx ends first.
func (a *app) waitAllReady(ctx context.Context) bool {
	tick := time.NewTicker(readyPoll)
	defer tick.Stop()
	for {
		ready := true
		for _, r := range a.routes {
			ready = ready && r.cache.Status().Ready
		}
		if ready {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-tick.C:
		}
	}
}
