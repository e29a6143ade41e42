package main

import (
	"context"
	"net"
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
// (when /readyz turns 200), watching from a goroutine of its own. The
// returned stop, called once when serving ends, stops the watch (READY=1
// is then never sent after it) and tells systemd STOPPING=1: the drain
// begins. Without a notifier both do nothing.
func (a *app) startNotify(ctx context.Context) (stop func()) {
	if a.notify == nil {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if a.waitAllReady(ctx) {
			a.notify.send("READY=1\nSTATUS=serving: every route holds a token")
		}
	}()
	return func() {
		cancel()
		<-done
		a.notify.send("STOPPING=1\nSTATUS=draining requests, then stopping")
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
