package sdnotify

import (
	"context"
	"crypto/rand"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/credproxy/credproxy/internal/logtest"
	"github.com/credproxy/credproxy/internal/testwait"
)

// notifySocket listens on a unixgram socket as systemd's NOTIFY_SOCKET
// does and delivers each datagram's lines. name is a path, or an
// abstract name with a leading '@'.
func notifySocket(t *testing.T, name string) <-chan []string {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	got := make(chan []string, 16)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			got <- strings.Split(string(buf[:n]), "\n")
		}
	}()
	return got
}

// socketPath is a path for a socket in a temporary directory short
// enough for a unix socket (108 bytes), which t.TempDir's may not be.
func socketPath(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "sd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "notify")
}

func next(t *testing.T, got <-chan []string, what string) []string {
	t.Helper()
	select {
	case d := <-got:
		return d
	case <-time.After(10 * time.Second):
		t.Fatalf("no %s datagram within 10s", what)
		return nil
	}
}

// TestSends: each message is one datagram of its lines, to a socket path
// and to an abstract socket named with '@'; a newline in a status does
// not start a line of its own.
func TestSends(t *testing.T) {
	abstract := "@credproxy-test-" + rand.Text()
	for _, name := range []string{socketPath(t), abstract} {
		t.Run(name, func(t *testing.T) {
			got := notifySocket(t, name)
			log, logs := logtest.New(t)
			n := New(map[string]string{"NOTIFY_SOCKET": name}, log)
			for _, tc := range []struct {
				send func()
				want []string
			}{
				{func() { n.Ready("serving") }, []string{"READY=1", "STATUS=serving"}},
				{func() { n.Ready("") }, []string{"READY=1"}},
				{func() { n.Status("renewing\nMAINPID=1") }, []string{"STATUS=renewing MAINPID=1"}},
				{func() { n.Watchdog() }, []string{"WATCHDOG=1"}},
				{func() { n.Stopping("draining") }, []string{"STOPPING=1", "STATUS=draining"}},
			} {
				tc.send()
				if d := next(t, got, tc.want[0]); !slices.Equal(d, tc.want) {
					t.Errorf("datagram lines %q, want %q", d, tc.want)
				}
			}
			if strings.Contains(logs.String(), "failed") {
				t.Errorf("logged a failure:\n%s", logs)
			}
		})
	}
}

// TestOff: no NOTIFY_SOCKET, or one that cannot be sent to, gives a nil
// Notifier whose methods do nothing; a socket nobody listens on is
// logged and does not stop the caller.
func TestOff(t *testing.T) {
	log, logs := logtest.New(t)
	if n := New(map[string]string{"WATCHDOG_USEC": "200000"}, log); n != nil {
		t.Errorf("Notifier without NOTIFY_SOCKET: %+v", n)
	}
	n := New(map[string]string{"NOTIFY_SOCKET": "vsock:2:1234"}, log)
	if n != nil {
		t.Errorf("Notifier for a vsock NOTIFY_SOCKET: %+v", n)
	}
	n.Ready("serving") // nil: nothing happens
	n.Stopping("")
	n.Status("x")
	n.Watchdog()
	n.PingWatchdog(context.Background(), func() { t.Error("a nil Notifier ran the liveness check") })
	if n.WatchdogInterval() != 0 {
		t.Error("a nil Notifier has a watchdog")
	}
	if !strings.Contains(logs.String(), "NOTIFY_SOCKET is neither") {
		t.Errorf("the vsock address was not logged:\n%s", logs)
	}
	noWatchdog := New(map[string]string{"NOTIFY_SOCKET": socketPath(t)}, log)
	noWatchdog.PingWatchdog(context.Background(), func() { t.Error("PingWatchdog without a watchdog ran the liveness check") })
	noWatchdog.Ready("")
	if !strings.Contains(logs.String(), "telling systemd failed") {
		t.Errorf("a send to a missing socket was not logged:\n%s", logs)
	}
}

// TestWatchdogSettings: the interval is half of WATCHDOG_USEC, only for
// this process's pid; a bad value is logged and leaves the watchdog off.
func TestWatchdogSettings(t *testing.T) {
	own := strconv.Itoa(os.Getpid())
	for _, tc := range []struct {
		usec, pid string
		want      time.Duration
		logged    string
	}{
		{usec: "", want: 0},
		{usec: "30000000", want: 15 * time.Second},
		{usec: "200000", pid: own, want: 100 * time.Millisecond},
		{usec: "200000", pid: "1", want: 0},
		{usec: "31536000000000", want: 365 * 24 * time.Hour / 2},
		{usec: "31536000000001", want: 0, logged: "WATCHDOG_USEC is not a positive number"},
		{usec: "0", want: 0, logged: "WATCHDOG_USEC is not a positive number"},
		{usec: "-5", want: 0, logged: "WATCHDOG_USEC is not a positive number"},
		{usec: "30s", want: 0, logged: "WATCHDOG_USEC is not a positive number"},
		{usec: "99999999999999999999", want: 0, logged: "WATCHDOG_USEC is not a positive number"},
	} {
		log, logs := logtest.New(t)
		n := New(map[string]string{"NOTIFY_SOCKET": "/run/notify", "WATCHDOG_USEC": tc.usec, "WATCHDOG_PID": tc.pid}, log)
		if got := n.WatchdogInterval(); got != tc.want {
			t.Errorf("WATCHDOG_USEC=%q WATCHDOG_PID=%q: interval %v, want %v", tc.usec, tc.pid, got, tc.want)
		}
		if tc.logged != "" && !strings.Contains(logs.String(), tc.logged) {
			t.Errorf("WATCHDOG_USEC=%q: %q not logged:\n%s", tc.usec, tc.logged, logs)
		}
	}
}

// check is a liveness check a test can make hang and release.
type check struct {
	mu    sync.Mutex
	stuck chan struct{}
	hang  bool
	// hung is signalled, once, when a call begins to hang on stuck, so
	// that a test waits for that instead of for a duration.
	hung chan struct{}
}

func (c *check) alive() {
	c.mu.Lock()
	h, ch, hung := c.hang, c.stuck, c.hung
	c.mu.Unlock()
	if h {
		select {
		case hung <- struct{}{}:
		default: // signalled already
		}
		<-ch
	}
}

// setHang makes the calls from now on hang, or releases them. The
// channel returned receives once a call hangs.
func (c *check) setHang(hang bool) <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if hang {
		c.stuck, c.hung = make(chan struct{}), make(chan struct{}, 1)
	} else {
		close(c.stuck)
	}
	c.hang = hang
	return c.hung
}

// TestWatchdogPingsOnlyWhileAlive: WATCHDOG=1 goes out every interval
// while the liveness check returns; while it hangs no ping is sent and the
// stall is logged; once it returns the pings resume; and a hung check does
// not keep PingWatchdog from returning when its context ends.
func TestWatchdogPingsOnlyWhileAlive(t *testing.T) {
	socket := socketPath(t)
	got := notifySocket(t, socket)
	log, logs := logtest.New(t)
	n := New(map[string]string{"NOTIFY_SOCKET": socket, "WATCHDOG_USEC": "100000"}, log)
	if n.WatchdogInterval() != 50*time.Millisecond {
		t.Fatalf("interval %v, want 50ms", n.WatchdogInterval())
	}
	c := &check{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.PingWatchdog(ctx, c.alive)
	}()
	for range 3 {
		if d := next(t, got, "WATCHDOG=1"); !slices.Equal(d, []string{"WATCHDOG=1"}) {
			t.Fatalf("datagram %q, want WATCHDOG=1", d)
		}
	}
	c.setHang(true)
	// At most one ping whose check began before the hang.
	drain := time.After(300 * time.Millisecond)
	pings := 0
	for waiting := true; waiting; {
		select {
		case <-got:
			pings++
		case <-drain:
			waiting = false
		}
	}
	if pings > 1 {
		t.Errorf("%d pings while the check hung", pings)
	}
	testwait.Eventually(t, 10*time.Second, func() (bool, string) {
		return strings.Contains(logs.String(), "did not answer within the watchdog interval"), "the stall is not logged:\n" + logs.String()
	})
	c.setHang(false)
	next(t, got, "WATCHDOG=1 after the check returned")
	if !strings.Contains(logs.String(), "answers again") {
		t.Errorf("the recovery was not logged:\n%s", logs)
	}

	// A check that hangs for good does not hold up the end.
	hung := c.setHang(true)
	select {
	case <-hung:
	case <-time.After(10 * time.Second):
		t.Fatal("the check was not called again")
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("PingWatchdog did not return after its context ended, with a hung check")
	}
	c.setHang(false)
}
