package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/url"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/credproxy/credproxy/internal/demo"
)

// forwardClient returns a client that goes through credproxy's forward
// proxy and trusts the CA it serves at /ca.pem.
func forwardClient(t *testing.T, admin, forward string) *http.Client {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(get(t, "http://"+admin+"/ca.pem"))) {
		t.Fatal("no CA at /ca.pem")
	}
	pu, _ := url.Parse("http://" + forward)
	tr := &http.Transport{Proxy: http.ProxyURL(pu), TLSClientConfig: &tls.Config{RootCAs: pool}, MaxIdleConnsPerHost: 64}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// shutdownProxy starts credproxy with a reverse route and the forward
// proxy in front of a fake CSP and echo API.
func shutdownProxy(t *testing.T, timeout string) (p *proc, addrs map[string]string, echoURL string) {
	t.Helper()
	_, cspURL, _, echoURL, certFile := fakes(t, demo.CSPOptions{APIToken: "shutdown-faults-tok-7", TTL: time.Hour})
	p = start(t, map[string]string{
		"CREDPROXY_AUTH":             "csp-api-token",
		"CREDPROXY_CSP_URL":          cspURL,
		"CREDPROXY_CSP_API_TOKEN":    "shutdown-faults-tok-7",
		"CREDPROXY_UPSTREAM":         echoURL,
		"CREDPROXY_LISTEN":           "127.0.0.1:0",
		"CREDPROXY_ADMIN_ADDR":       "127.0.0.1:0",
		"CREDPROXY_FORWARD_ADDR":     "127.0.0.1:0",
		"CREDPROXY_SHUTDOWN_TIMEOUT": timeout,
		"SSL_CERT_FILE":              certFile,
	})
	addrs = p.listeners(t, 3)
	waitReady(t, addrs["admin"])
	return p, addrs, echoURL
}

// readLines reads NDJSON lines until the body ends.
func readLines(br *bufio.Reader) (lines []string, err error) {
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return lines, err
		}
		lines = append(lines, strings.TrimSpace(line))
	}
}

// TestShutdownDrainsFiveSecondStreamsInBothModes: SIGTERM during a 5 s
// streamed response, one through the reverse listener and one through an
// intercepted forward tunnel: /readyz fails at once, both streams run to
// their end within CREDPROXY_SHUTDOWN_TIMEOUT, and the process exits 0.
func TestShutdownDrainsFiveSecondStreamsInBothModes(t *testing.T) {
	p, addrs, echoURL := shutdownProxy(t, "15s")
	fwd := forwardClient(t, addrs["admin"], addrs["forward"])
	const path = "/stream?chunks=6&interval=1s" // 5 s from first line to last
	var readers []*bufio.Reader
	for _, u := range []struct {
		c   *http.Client
		url string
	}{{http.DefaultClient, "http://" + addrs["route default"] + path}, {fwd, echoURL + path}} {
		resp, err := u.c.Get(u.url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		br := bufio.NewReader(resp.Body)
		if line, err := br.ReadString('\n'); err != nil || line != "{\"n\":1}\n" {
			t.Fatalf("first line %q %v", line, err)
		}
		readers = append(readers, br)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitReadyz(t, addrs["admin"], http.StatusServiceUnavailable, 5*time.Second)
	for i, br := range readers {
		lines, _ := readLines(br)
		if len(lines) != 5 || lines[4] != `{"n":6}` {
			t.Errorf("stream %d was cut by the shutdown: got %q after the signal", i, lines)
		}
	}
	if code := p.wait(t, 15*time.Second); code != 0 {
		t.Errorf("exit code %d", code)
	}
}

// TestShutdownTimeoutCutsLongStream: a response longer than
// CREDPROXY_SHUTDOWN_TIMEOUT is cut when the timeout ends, and the
// process still exits cleanly rather than waiting for it.
func TestShutdownTimeoutCutsLongStream(t *testing.T) {
	p, addrs, _ := shutdownProxy(t, "1s")
	resp, err := http.Get("http://" + addrs["route default"] + "/stream?chunks=60&interval=1s")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	if _, err := br.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	lines, err := readLines(br)
	if err == nil || len(lines) >= 59 {
		t.Errorf("the stream outlived the shutdown timeout: %d more lines, %v", len(lines), err)
	}
	if code := p.wait(t, 20*time.Second); code != 0 {
		t.Errorf("exit code %d", code)
	}
}

// TestSecondSignalExitsAtOnce: a second SIGTERM during the drain ends the
// process at once (by the signal) instead of waiting out a 60 s shutdown
// timeout.
func TestSecondSignalExitsAtOnce(t *testing.T) {
	p, addrs, _ := shutdownProxy(t, "60s")
	resp, err := http.Get("http://" + addrs["route default"] + "/stream?chunks=120&interval=1s")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if _, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitReadyz(t, addrs["admin"], http.StatusServiceUnavailable, 5*time.Second)
	select {
	case err := <-p.done:
		p.done <- err
		t.Fatalf("exited on the first signal while a request was in flight: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.done:
		p.done <- err
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("exit: %v, want death by SIGTERM", err)
		}
		if ws, ok := ee.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGTERM {
			t.Errorf("exit status %v, want killed by SIGTERM", ee)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("a second SIGTERM did not end the process; it is waiting out the drain")
	}
}
