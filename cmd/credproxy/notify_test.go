package main

import (
	"encoding/pem"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
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

	// While the first exchange is delayed, systemd is told what the start
	// waits for (STATUS=, shown by systemctl status); then READY=1.
	ready := nextDatagram(t, got, 30*time.Second, "READY=1")
	waiting := 0
	for !slices.Contains(ready.lines, "READY=1") {
		if len(ready.lines) != 1 || !strings.HasPrefix(ready.lines[0], "STATUS=waiting for the first token of route default") {
			t.Fatalf("before READY=1 a datagram %q, want only STATUS=waiting for the first token of route default", ready.lines)
		}
		waiting++
		ready = nextDatagram(t, got, 30*time.Second, "READY=1")
	}
	if waiting == 0 {
		t.Errorf("READY=1 came with no STATUS= saying what the start waited for (the first exchange took %v)", delay)
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
		case !ready && len(d.lines) == 1 && strings.HasPrefix(d.lines[0], "STATUS=waiting for the first token"):
			// What the start waits for, before READY=1.
		default:
			t.Fatalf("datagram %q, want WATCHDOG=1, READY=1 or (before it) STATUS=waiting", d.lines)
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
