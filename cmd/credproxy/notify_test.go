package main

import (
	"context"
	"crypto/rand"
	"encoding/pem"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/credproxy/credproxy/internal/demo"
	"github.com/credproxy/credproxy/internal/logtest"
)

// datagram is one sd_notify message a notifySocket received.
type datagram struct {
	at    time.Time
	lines []string
}

// notifySocket listens on a unixgram socket as systemd's NOTIFY_SOCKET
// does and delivers each datagram with the time it arrived. name is a
// path, or an abstract name with a leading '@'.
func notifySocket(t *testing.T, name string) <-chan datagram {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	got := make(chan datagram, 16)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			got <- datagram{at: time.Now(), lines: strings.Split(string(buf[:n]), "\n")}
		}
	}()
	return got
}

// shortTempDir is a temporary directory with a path short enough for a
// unix socket (108 bytes), which t.TempDir's may not be.
func shortTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "sd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// nextDatagram waits up to within for a datagram on got.
func nextDatagram(t *testing.T, got <-chan datagram, within time.Duration, what string) datagram {
	t.Helper()
	select {
	case d := <-got:
		return d
	case <-time.After(within):
		t.Fatalf("no %s datagram within %v", what, within)
		return datagram{}
	}
}

// TestSDNotifierSends: send delivers its state in one datagram to a
// socket path and to an abstract socket named with '@'.
func TestSDNotifierSends(t *testing.T) {
	abstract := "@credproxy-test-" + rand.Text()
	for _, name := range []string{filepath.Join(shortTempDir(t), "notify"), abstract} {
		t.Run(name, func(t *testing.T) {
			got := notifySocket(t, name)
			log, logs := logtest.New(t)
			newSDNotifier(name, log).send("READY=1\nSTATUS=serving")
			d := nextDatagram(t, got, 5*time.Second, "READY=1")
			if want := []string{"READY=1", "STATUS=serving"}; !slices.Equal(d.lines, want) {
				t.Errorf("datagram lines %q, want %q", d.lines, want)
			}
			if strings.Contains(logs.String(), "failed") {
				t.Errorf("logged a failure:\n%s", logs)
			}
		})
	}
}

// TestSDNotifierOff: no NOTIFY_SOCKET, or one credproxy cannot send to,
// gives a nil notifier whose send does nothing; a socket nobody listens on
// is logged and does not stop credproxy.
func TestSDNotifierOff(t *testing.T) {
	log, logs := logtest.New(t)
	if n := newSDNotifier("", log); n != nil {
		t.Errorf("notifier for an empty NOTIFY_SOCKET: %+v", n)
	}
	n := newSDNotifier("vsock:2:1234", log)
	if n != nil {
		t.Errorf("notifier for a vsock NOTIFY_SOCKET: %+v", n)
	}
	n.send("READY=1") // nil: nothing happens
	if !strings.Contains(logs.String(), "NOTIFY_SOCKET is neither") {
		t.Errorf("the vsock address was not logged:\n%s", logs)
	}
	newSDNotifier(filepath.Join(shortTempDir(t), "nobody"), log).send("READY=1")
	if !strings.Contains(logs.String(), "telling systemd failed") {
		t.Errorf("a send to a missing socket was not logged:\n%s", logs)
	}
}

// answerTimes records when a handler finished each token exchange's
// answer: after ServeHTTP returns, the response has been written (net/http
// sends the buffered answer only then), so a client reads it after that
// time. Other requests (the API token's details lookup at start) are not
// recorded: readiness does not wait for them.
type answerTimes struct {
	h  http.Handler
	mu sync.Mutex
	at []time.Time
}

func (a *answerTimes) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.h.ServeHTTP(w, r)
	if r.URL.Path != demo.CSPAPITokenPath {
		return
	}
	a.mu.Lock()
	a.at = append(a.at, time.Now())
	a.mu.Unlock()
}

func (a *answerTimes) times() []time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.at)
}

// TestSystemdNotify runs the binary as a Type=notify unit would, with
// NOTIFY_SOCKET set to a socket of the test's, and a CSP that takes 1 s to
// answer the first exchange: READY=1 arrives only after the CSP answered
// (nothing at all before), /readyz is 200 by then, and SIGTERM brings
// STOPPING=1 before the process exits 0.
func TestSystemdNotify(t *testing.T) {
	const apiToken = "sdN0tify-api-t0ken-5e6f"
	const delay = time.Second
	csp := demo.NewCSP(demo.CSPOptions{APIToken: apiToken, TTL: time.Hour})
	csp.SetFault(demo.Fault{Delay: delay, Times: 1})
	answers := &answerTimes{h: csp}
	cspSrv := httptest.NewTLSServer(answers)
	t.Cleanup(cspSrv.Close)
	echoSrv := httptest.NewTLSServer(demo.NewEcho(csp.Valid, demo.EchoOptions{}))
	t.Cleanup(echoSrv.Close)
	// httptest's TLS servers share one certificate.
	certFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cspSrv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	socket := filepath.Join(shortTempDir(t), "notify")
	got := notifySocket(t, socket)

	started := time.Now()
	p := start(t, cspEnv(cspSrv.URL, apiToken, echoSrv.URL, certFile,
		"CREDPROXY_LISTEN", "127.0.0.1:0",
		"CREDPROXY_ADMIN_ADDR", "127.0.0.1:0",
		"NOTIFY_SOCKET", socket,
	))
	admin := p.listeners(t, 2)["admin"]

	ready := nextDatagram(t, got, 30*time.Second, "READY=1")
	if !slices.Contains(ready.lines, "READY=1") {
		t.Fatalf("the first datagram is %q, want READY=1 first", ready.lines)
	}
	// Under load an exchange may time out and be retried: what matters is
	// that READY=1 follows the first, delayed, answer.
	answered := answers.times()
	switch {
	case len(answered) == 0:
		t.Fatal("READY=1 before the CSP answered anything")
	case !ready.at.After(answered[0]):
		t.Errorf("READY=1 arrived %v before the CSP answered", answered[0].Sub(ready.at))
	case answered[0].Sub(started) < delay:
		t.Errorf("the CSP answered %v after start, before its %v delay", answered[0].Sub(started), delay)
	}
	resp, err := http.Get("http://" + admin + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/readyz = %d after READY=1", resp.StatusCode)
	}

	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	stopping := nextDatagram(t, got, 10*time.Second, "STOPPING=1")
	if !slices.Contains(stopping.lines, "STOPPING=1") {
		t.Errorf("after SIGTERM the datagram is %q, want STOPPING=1", stopping.lines)
	}
	if code := p.wait(t, 15*time.Second); code != 0 {
		t.Errorf("exit code after SIGTERM = %d", code)
	}
	select {
	case d := <-got:
		t.Errorf("a datagram after STOPPING=1: %q", d.lines)
	default:
	}
	logtest.AssertNoSecrets(t, "logs", p.stderr.String(), apiToken)
}

// TestSDNotifierWatchdogSettings: the watchdog interval is half of
// WATCHDOG_USEC, only for credproxy's own PID; a bad value is logged and
// leaves the watchdog off.
func TestSDNotifierWatchdogSettings(t *testing.T) {
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
		{usec: "0", want: 0, logged: "WATCHDOG_USEC is not a positive number"},
		{usec: "-5", want: 0, logged: "WATCHDOG_USEC is not a positive number"},
		{usec: "30s", want: 0, logged: "WATCHDOG_USEC is not a positive number"},
		{usec: "99999999999999999999", want: 0, logged: "WATCHDOG_USEC is not a positive number"},
	} {
		log, logs := logtest.New(t)
		n := newSDNotifier("/run/notify", log).withWatchdog(tc.usec, tc.pid)
		if n.watchdog != tc.want {
			t.Errorf("WATCHDOG_USEC=%q WATCHDOG_PID=%q: interval %v, want %v", tc.usec, tc.pid, n.watchdog, tc.want)
		}
		if tc.logged != "" && !strings.Contains(logs.String(), tc.logged) {
			t.Errorf("WATCHDOG_USEC=%q: %q not logged:\n%s", tc.usec, tc.logged, logs)
		}
	}
	if n := (*sdNotifier)(nil).withWatchdog("200000", ""); n != nil {
		t.Errorf("a nil notifier gained a watchdog: %+v", n)
	}
}

// TestWatchdogPingsOnlyWhileAlive: WATCHDOG=1 goes out every interval
// while the liveness check returns; while it hangs no ping is sent and the
// stall is logged; once it returns the pings resume; and a hung check does
// not keep pingWatchdog from returning when its context ends.
func TestWatchdogPingsOnlyWhileAlive(t *testing.T) {
	socket := filepath.Join(shortTempDir(t), "notify")
	got := notifySocket(t, socket)
	log, logs := logtest.New(t)
	n := newSDNotifier(socket, log)
	n.watchdog = 50 * time.Millisecond
	var (
		mu    sync.Mutex
		stuck = make(chan struct{})
		hang  bool
	)
	alive := func() {
		mu.Lock()
		h, ch := hang, stuck
		mu.Unlock()
		if h {
			<-ch
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.pingWatchdog(ctx, alive)
	}()
	for range 3 {
		if d := nextDatagram(t, got, 10*time.Second, "WATCHDOG=1"); !slices.Equal(d.lines, []string{"WATCHDOG=1"}) {
			t.Fatalf("datagram %q, want WATCHDOG=1", d.lines)
		}
	}
	mu.Lock()
	hang = true
	mu.Unlock()
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
	if !strings.Contains(logs.String(), "did not answer within the watchdog interval") {
		t.Errorf("the stall was not logged:\n%s", logs)
	}
	mu.Lock()
	hang = false
	close(stuck)
	mu.Unlock()
	nextDatagram(t, got, 10*time.Second, "WATCHDOG=1 after the check returned")
	if !strings.Contains(logs.String(), "answer again") {
		t.Errorf("the recovery was not logged:\n%s", logs)
	}

	// A check that hangs for good does not hold up the end.
	mu.Lock()
	hang, stuck = true, make(chan struct{})
	mu.Unlock()
	time.Sleep(2 * n.watchdog)
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("pingWatchdog did not return after its context ended, with a hung check")
	}
	mu.Lock()
	close(stuck)
	mu.Unlock()
}

// TestSystemdWatchdogInTheBinary runs the binary as a unit with
// WatchdogSec=200ms would: WATCHDOG=1 arrives again and again (every
// 100 ms), READY=1 among them once the token is held, and after SIGTERM
// STOPPING=1 is the last datagram.
func TestSystemdWatchdogInTheBinary(t *testing.T) {
	const apiToken = "sdW4tchd0g-api-t0ken-7a8b"
	_, cspURL, _, echoURL, certFile := fakes(t, demo.CSPOptions{APIToken: apiToken, TTL: time.Hour})
	socket := filepath.Join(shortTempDir(t), "notify")
	got := notifySocket(t, socket)
	p := start(t, cspEnv(cspURL, apiToken, echoURL, certFile,
		"CREDPROXY_LISTEN", "127.0.0.1:0",
		"CREDPROXY_ADMIN_ADDR", "127.0.0.1:0",
		"NOTIFY_SOCKET", socket,
		"WATCHDOG_USEC", "200000",
	))
	pings, ready := 0, false
	for pings < 5 || !ready {
		d := nextDatagram(t, got, 30*time.Second, "WATCHDOG=1 or READY=1")
		switch {
		case slices.Equal(d.lines, []string{"WATCHDOG=1"}):
			pings++
		case slices.Contains(d.lines, "READY=1"):
			ready = true
		default:
			t.Fatalf("datagram %q, want WATCHDOG=1 or READY=1", d.lines)
		}
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for {
		d := nextDatagram(t, got, 10*time.Second, "STOPPING=1")
		if slices.Contains(d.lines, "STOPPING=1") {
			break
		}
	}
	if code := p.wait(t, 15*time.Second); code != 0 {
		t.Errorf("exit code after SIGTERM = %d", code)
	}
	select {
	case d := <-got:
		t.Errorf("a datagram after STOPPING=1: %q", d.lines)
	default:
	}
	logtest.AssertNoSecrets(t, "logs", p.stderr.String(), apiToken)
}
