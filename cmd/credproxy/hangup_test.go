package main

import (
	"bufio"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/credproxy/credproxy/internal/demo"
	"github.com/credproxy/credproxy/internal/logtest"
)

// splunkAPI starts a fake Splunk Observability API over TLS on loopback:
// the session endpoints and, on every other path, an echo API that accepts
// only live sessions. certFile holds its certificate, for SSL_CERT_FILE.
func splunkAPI(t *testing.T, email, password string) (splunk *demo.Splunk, echo *demo.Echo, apiURL, certFile string) {
	t.Helper()
	splunk = demo.NewSplunk(demo.SplunkOptions{Email: email, Password: password})
	echo = demo.NewEcho(splunk.Valid, demo.EchoOptions{Header: "X-SF-Token", NoPrefix: true})
	mux := http.NewServeMux()
	mux.Handle(demo.SplunkSessionPath, splunk)
	mux.Handle("/", echo)
	srv := httptest.NewTLSServer(mux)
	t.Cleanup(srv.Close)
	certFile = filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	return splunk, echo, srv.URL, certFile
}

// alive fails the test at once if the process has exited.
func (p *proc) alive(t *testing.T, after string) {
	t.Helper()
	select {
	case err := <-p.done:
		p.done <- err
		t.Fatalf("credproxy exited after %s: %v", after, err)
	default:
	}
}

// TestHangupKeepsServing: a SIGHUP during a 5 s streamed response through
// a splunk-session route neither cuts the response nor stops the process:
// the stream runs to its end, a new request is served with the session,
// and credproxy logs that it received the signal and what it did. A
// SIGTERM afterwards still drains, ends the Splunk session and exits 0.
func TestHangupKeepsServing(t *testing.T) {
	const password = "hupPa55w0rd-4d3c2b1a"
	splunk, echo, apiURL, certFile := splunkAPI(t, "ops@example.com", password)
	p := start(t, map[string]string{
		"CREDPROXY_AUTH":             "splunk-session",
		"CREDPROXY_UPSTREAM":         apiURL,
		"CREDPROXY_SPLUNK_EMAIL":     "ops@example.com",
		"CREDPROXY_SPLUNK_PASSWORD":  password,
		"CREDPROXY_LISTEN":           "127.0.0.1:0",
		"CREDPROXY_ADMIN_ADDR":       "127.0.0.1:0",
		"CREDPROXY_SHUTDOWN_TIMEOUT": "10s",
		"SSL_CERT_FILE":              certFile,
	})
	addrs := p.listeners(t, 2)
	waitReady(t, addrs["admin"])
	proxyURL := "http://" + addrs["route default"]

	resp, err := http.Get(proxyURL + "/stream?chunks=6&interval=1s") // 5 s from first line to last
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	if line, err := br.ReadString('\n'); err != nil || line != "{\"n\":1}\n" {
		t.Fatalf("first line %q %v", line, err)
	}
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	lines, err := readLines(br)
	if err != io.EOF || len(lines) != 5 || lines[4] != `{"n":6}` {
		t.Errorf("the in-flight stream was cut by SIGHUP: got %q after the signal (%v)", lines, err)
	}
	p.alive(t, "SIGHUP")

	r, err := http.Get(proxyURL + "/v2/detector")
	if err != nil {
		t.Fatalf("a new request after SIGHUP: %v", err)
	}
	body, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if r.StatusCode != 200 || !strings.Contains(string(body), `"authorized":true`) {
		t.Errorf("a new request after SIGHUP: %d %s", r.StatusCode, body)
	}
	p.alive(t, "SIGHUP and a new request")
	if logs := p.stderr.String(); !strings.Contains(logs, `"msg":"SIGHUP received"`) {
		t.Errorf("no info line for the SIGHUP")
	}

	session := echo.LastHeader().Get("X-Sf-Token")
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t, 15*time.Second); code != 0 {
		t.Errorf("exit code after SIGTERM = %d", code)
	}
	if deleted := splunk.Deleted(); len(deleted) != 1 || deleted[0] != session || splunk.Live() != 0 {
		t.Errorf("sessions ended at shutdown: %d (want the one in use), live %d", len(deleted), splunk.Live())
	}
	logtest.AssertNoSecrets(t, "logs", p.stderr.String(), password, session)
}
