// Package sdnotify tells systemd about a service's state, for a unit with
// Type=notify: READY=1 once it serves, STOPPING=1 when its drain begins,
// STATUS= lines for `systemctl status` (WaitingStatus: what a start waits
// for), and WATCHDOG=1 pings for a unit
// with WatchdogSec=, each as sd_notify(3) says: one datagram of
// newline-separated assignments to the unix socket NOTIFY_SOCKET names.
//
// The state words are go-systemd's daemon package's constants; its
// functions are not used, because both read the process environment
// themselves (daemon.SdNotify reads NOTIFY_SOCKET, daemon.SdWatchdogEnabled
// WATCHDOG_USEC and WATCHDOG_PID, with os.Getenv), and credproxy's
// components are handed their environment as a map (run's env), so that a
// test can give each its own without touching the process's. What they
// would do for us is a dial and a write, and a number parsed: done here
// from the map, with the same rules (and an upper bound on WATCHDOG_USEC,
// whose microseconds would otherwise overflow a time.Duration).
//
// A nil *Notifier (no NOTIFY_SOCKET: not started by systemd, or by a unit
// of another Type) does nothing, so callers need no checks.
package sdnotify
