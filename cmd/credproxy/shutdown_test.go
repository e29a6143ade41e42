package main

import (
	"bufio"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/credproxy/credproxy/internal/demo"
)

// TestGracefulShutdown: on SIGTERM /readyz fails at once while an
// in-flight streamed response runs to its end, then the process exits 0.
func TestGracefulShutdown(t *testing.T) {
	_, cspURL, _, echoURL, certFile := fakes(t, demo.CSPOptions{APIToken: "shutdown-api-tok-1", TTL: time.Hour})
	p := start(t, map[string]string{
		"CREDPROXY_AUTH":             "csp-api-token",
		"CREDPROXY_CSP_URL":          cspURL,
		"CREDPROXY_CSP_API_TOKEN":    "shutdown-api-tok-1",
		"CREDPROXY_UPSTREAM":         echoURL,
		"CREDPROXY_LISTEN":           "127.0.0.1:0",
		"CREDPROXY_ADMIN_ADDR":       "127.0.0.1:0",
		"CREDPROXY_SHUTDOWN_TIMEOUT": "10s",
		"SSL_CERT_FILE":              certFile,
	})
	addrs := p.listeners(t, 2)
	waitReady(t, addrs["admin"])

	resp, err := http.Get("http://" + addrs["route default"] + "/stream?chunks=5&interval=300ms")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	if line, err := br.ReadString('\n'); err != nil || line != "{\"n\":1}\n" {
		t.Fatalf("first line %q %v", line, err)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitReadyz(t, addrs["admin"], http.StatusServiceUnavailable, 2*time.Second)
	var lines []string
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			break
		}
		lines = append(lines, strings.TrimSpace(line))
	}
	if len(lines) != 4 || lines[3] != `{"n":5}` {
		t.Errorf("the in-flight stream was cut: got %q after the signal", lines)
	}
	if code := p.wait(t, 10*time.Second); code != 0 {
		t.Errorf("exit code %d", code)
	}
}
