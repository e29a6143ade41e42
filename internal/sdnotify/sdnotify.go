package sdnotify

import (
	"context"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"go.uber.org/zap"
)

// maxWatchdog bounds WATCHDOG_USEC: a year, far beyond any WatchdogSec=,
// and far below where its microseconds overflow a time.Duration.
const maxWatchdog = 365 * 24 * time.Hour

// Notifier sends a service's state to systemd. Its methods may be called
// from any goroutine: each send is a datagram of its own on a socket of
// its own, and nothing in a Notifier changes after New.
type Notifier struct {
	addr *net.UnixAddr
	log  *zap.Logger
	// watchdog is how often to send WATCHDOG=1: half of the unit's
	// WatchdogSec= (WATCHDOG_USEC), as sd_watchdog_enabled(3) advises.
	// Zero when the unit has no watchdog, or it is meant for another
	// process (WATCHDOG_PID).
	watchdog time.Duration
}

// New returns a Notifier for the NOTIFY_SOCKET of env, with the watchdog
// interval WATCHDOG_USEC and WATCHDOG_PID give; nil when NOTIFY_SOCKET is
// unset or empty, or of a kind it cannot send to.
//
// NOTIFY_SOCKET is an absolute path, or an abstract socket name written
// with a leading '@' (Go's net package turns the '@' into the leading NUL
// of the kernel's abstract namespace, as systemd means it). Any other
// kind (systemd's vsock: addresses) is logged and gives nil: systemd then
// never hears READY=1 and times the start out, and the log says why.
func New(env map[string]string, log *zap.Logger) *Notifier {
	socket := env["NOTIFY_SOCKET"]
	switch {
	case socket == "":
		return nil
	case socket[0] != '/' && socket[0] != '@':
		log.Warn("NOTIFY_SOCKET is neither an absolute path nor an abstract socket name; systemd will not be told when credproxy is ready",
			zap.String("notify_socket", socket))
		return nil
	}
	n := &Notifier{addr: &net.UnixAddr{Name: socket, Net: "unixgram"}, log: log}
	n.watchdog = watchdogInterval(env["WATCHDOG_USEC"], env["WATCHDOG_PID"], log)
	return n
}

// watchdogInterval is half of usec, when pid is empty or this process's
// (sd_watchdog_enabled(3)). A value that is not a positive count of
// microseconds is logged and leaves the watchdog off.
func watchdogInterval(usec, pid string, log *zap.Logger) time.Duration {
	if usec == "" {
		return 0
	}
	if pid != "" && pid != strconv.Itoa(os.Getpid()) {
		log.Debug("the systemd watchdog is meant for another process", zap.String("watchdog_pid", pid))
		return 0
	}
	us, err := strconv.ParseInt(usec, 10, 64)
	if err != nil || us <= 0 || us > int64(maxWatchdog/time.Microsecond) {
		log.Warn("WATCHDOG_USEC is not a positive number of microseconds; systemd's watchdog is not pinged",
			zap.String("watchdog_usec", usec))
		return 0
	}
	return time.Duration(us) * time.Microsecond / 2
}

// WatchdogInterval is how often PingWatchdog pings: half of the unit's
// WatchdogSec=; zero when there is no watchdog for this process.
func (n *Notifier) WatchdogInterval() time.Duration {
	if n == nil {
		return 0
	}
	return n.watchdog
}

// Ready tells systemd the service is ready (READY=1), with status for
// `systemctl status` when not empty, in one datagram.
func (n *Notifier) Ready(status string) { n.send(daemon.SdNotifyReady, status) }

// Stopping tells systemd the service is stopping (STOPPING=1): its drain
// begins. With status as Ready.
func (n *Notifier) Stopping(status string) { n.send(daemon.SdNotifyStopping, status) }

// Status sets the text `systemctl status` shows (STATUS=).
func (n *Notifier) Status(status string) { n.send("", status) }

// Watchdog pings systemd's watchdog once (WATCHDOG=1).
func (n *Notifier) Watchdog() { n.send(daemon.SdNotifyWatchdog, "") }

// send sends state and a STATUS= line of status (each when not empty) in
// one datagram. A newline in status would start an assignment of its
// own: it becomes a space. A failure is logged and otherwise ignored:
// serving never depends on systemd hearing.
func (n *Notifier) send(state, status string) {
	if n == nil {
		return
	}
	var lines []string
	if state != "" {
		lines = append(lines, state)
	}
	if status != "" {
		lines = append(lines, "STATUS="+strings.NewReplacer("\n", " ", "\r", " ").Replace(status))
	}
	msg := strings.Join(lines, "\n")
	conn, err := net.DialUnix("unixgram", nil, n.addr)
	if err == nil {
		_, err = conn.Write([]byte(msg))
		conn.Close()
	}
	if err != nil {
		n.log.Warn("telling systemd failed", zap.String("state", msg), zap.Error(err))
		return
	}
	n.log.Debug("told systemd", zap.String("state", msg))
}

// PingWatchdog sends WATCHDOG=1 every WatchdogInterval until ctx ends,
// each time only after alive has returned: while it hangs (a stuck
// component) the pings stop, and systemd restarts the service once
// WatchdogSec= passes without one. alive runs apart, so a hung check
// never holds up the return when ctx ends. Without a watchdog (or a
// Notifier) it returns at once.
func (n *Notifier) PingWatchdog(ctx context.Context, alive func()) {
	if n.WatchdogInterval() <= 0 {
		return
	}
	tick := time.NewTicker(n.watchdog)
	defer tick.Stop()
	for {
		if !n.pingOnce(ctx, alive, tick.C) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// pingOnce runs alive and pings when it returns. When a tick comes first
// the stall is logged and it waits on for alive (logging its return),
// without pinging. False when ctx ended.
func (n *Notifier) pingOnce(ctx context.Context, alive func(), tick <-chan time.Time) bool {
	answered := make(chan struct{})
	go func() {
		alive()
		close(answered)
	}()
	select {
	case <-answered:
		n.Watchdog()
		return true
	case <-ctx.Done():
		return false
	case <-tick:
	}
	n.log.Error("the liveness check did not answer within the watchdog interval; systemd's watchdog is not pinged",
		zap.Duration("interval", n.watchdog))
	select {
	case <-answered:
		n.log.Info("the liveness check answers again; pinging systemd's watchdog")
		return true
	case <-ctx.Done():
		return false
	}
}
