package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/credproxy/credproxy/internal/demo"
	"github.com/credproxy/credproxy/internal/logtest"
	"github.com/credproxy/credproxy/mitm"
)

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

// eventually polls ok every 20 ms for up to within, failing t if the
// process exits or time runs out.
func (p *proc) eventually(t *testing.T, what string, within time.Duration, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(within); !ok(); time.Sleep(20 * time.Millisecond) {
		p.alive(t, "waiting for "+what)
		if time.Now().After(deadline) {
			t.Fatalf("not %s within %v", what, within)
		}
	}
}

// logLines returns the JSON log lines of p holding every piece.
func (p *proc) logLines(pieces ...string) []string {
	var out []string
	for line := range strings.Lines(p.stderr.String()) {
		all := true
		for _, s := range pieces {
			all = all && strings.Contains(line, s)
		}
		if all {
			out = append(out, line)
		}
	}
	return out
}

// slowLogin delays the Splunk fake's logins by 300 ms while on, as a
// service under load answers: a SIGHUP's exchange is then still in flight
// when the SIGHUPs sent right after the first are handled.
type slowLogin struct {
	next http.Handler
	on   atomic.Bool
}

func (s *slowLogin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.on.Load() && r.Method == http.MethodPost {
		time.Sleep(300 * time.Millisecond)
	}
	s.next.ServeHTTP(w, r)
}

// TestHangupRenewsEveryRoute: three SIGHUPs in a row, sent while a 5 s
// stream runs through a splunk-session route, renew each of the two
// routes (that one and a CSP route) with exactly one exchange at its
// identity service, and each renewal is logged once, with its result and
// the new token's fingerprint, and counted with trigger "reload". The
// stream runs to its end, new requests get the new tokens, the replaced
// Splunk session is ended, and credproxy goes on serving until a SIGTERM
// drains it (exit 0, the new session ended).
func TestHangupRenewsEveryRoute(t *testing.T) {
	const password = "hupPa55w0rd-4d3c2b1a"
	const apiToken = "hupApiT0k-77e1-90ab"
	splunk := demo.NewSplunk(demo.SplunkOptions{Email: "ops@example.com", Password: password})
	sfxEcho := demo.NewEcho(splunk.Valid, demo.EchoOptions{Header: "X-SF-Token", NoPrefix: true})
	logins := &slowLogin{next: splunk}
	mux := http.NewServeMux()
	mux.Handle(demo.SplunkSessionPath, logins)
	mux.Handle("/", sfxEcho)
	sfxSrv := httptest.NewTLSServer(mux)
	t.Cleanup(sfxSrv.Close)
	csp, cspURL, wfEcho, wfURL, certFile := fakes(t, demo.CSPOptions{APIToken: apiToken, TTL: time.Hour})

	p := start(t, map[string]string{
		"CREDPROXY_ROUTES":              "wf,sfx",
		"CREDPROXY_WF_AUTH":             "csp-api-token",
		"CREDPROXY_WF_CSP_URL":          cspURL,
		"CREDPROXY_WF_CSP_API_TOKEN":    apiToken,
		"CREDPROXY_WF_UPSTREAM":         wfURL,
		"CREDPROXY_WF_LISTEN":           "127.0.0.1:0",
		"CREDPROXY_SFX_AUTH":            "splunk-session",
		"CREDPROXY_SFX_UPSTREAM":        sfxSrv.URL, // httptest's TLS servers share one certificate
		"CREDPROXY_SFX_SPLUNK_EMAIL":    "ops@example.com",
		"CREDPROXY_SFX_SPLUNK_PASSWORD": password,
		"CREDPROXY_SFX_LISTEN":          "127.0.0.1:0",
		"CREDPROXY_ADMIN_ADDR":          "127.0.0.1:0",
		"CREDPROXY_SHUTDOWN_TIMEOUT":    "10s",
		"SSL_CERT_FILE":                 certFile,
	})
	addrs := p.listeners(t, 3)
	waitReady(t, addrs["admin"])
	wfProxy, sfxProxy := "http://"+addrs["route wf"], "http://"+addrs["route sfx"]

	resp, err := http.Get(sfxProxy + "/stream?chunks=6&interval=1s") // 5 s from first line to last
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	if line, err := br.ReadString('\n'); err != nil || line != "{\"n\":1}\n" {
		t.Fatalf("first line %q %v", line, err)
	}
	oldSession := sfxEcho.LastHeader().Get("X-Sf-Token")
	cspBefore, loginsBefore := csp.Exchanges(), len(splunk.Logins())

	csp.SetFault(demo.Fault{Delay: 300 * time.Millisecond}) // slow, but answering
	logins.on.Store(true)
	for range 3 {
		if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	lines, err := readLines(br)
	if err != io.EOF || len(lines) != 5 || lines[4] != `{"n":6}` {
		t.Errorf("the in-flight stream was cut by SIGHUP: got %q after the signal (%v)", lines, err)
	}
	p.eventually(t, "both routes renewed", 15*time.Second, func() bool {
		return len(p.logLines(`"msg":"SIGHUP: route renewed"`)) >= 2
	})
	time.Sleep(1500 * time.Millisecond) // past the 1 s gap: a second exchange would show
	p.alive(t, "three SIGHUPs")
	if n := csp.Exchanges() - cspBefore; n != 1 {
		t.Errorf("CSP route: %d exchanges after three SIGHUPs, want exactly 1", n)
	}
	if n := len(splunk.Logins()) - loginsBefore; n != 1 {
		t.Errorf("Splunk route: %d logins after three SIGHUPs, want exactly 1", n)
	}
	for _, route := range []string{"wf", "sfx"} {
		got := p.logLines(`"msg":"SIGHUP: route renewed"`, `"route":"`+route+`"`)
		if len(got) != 1 || !strings.Contains(got[0], `"level":"info"`) || !strings.Contains(got[0], `"result":"ok"`) || !strings.Contains(got[0], `"token":"sha256:`) {
			t.Errorf("route %s: log lines for its renewal %q, want one info line with result ok and a token fingerprint", route, got)
		}
	}
	if len(p.logLines(`"msg":"SIGHUP received"`)) == 0 {
		t.Error("no log line for the SIGHUP itself")
	}

	for _, u := range []string{wfProxy, sfxProxy} {
		r, err := http.Get(u + "/v2/detector")
		if err != nil {
			t.Fatalf("a new request after SIGHUP: %v", err)
		}
		body, _ := io.ReadAll(r.Body)
		r.Body.Close()
		if r.StatusCode != 200 || !strings.Contains(string(body), `"authorized":true`) {
			t.Errorf("%s after SIGHUP: %d %s", u, r.StatusCode, body)
		}
	}
	newSession := sfxEcho.LastHeader().Get("X-Sf-Token")
	if newSession == oldSession {
		t.Error("the Splunk route still uses the session from before the SIGHUP")
	}
	if deleted := splunk.Deleted(); len(deleted) != 1 || deleted[0] != oldSession {
		t.Errorf("sessions ended after the renewal: %d, want the replaced one", len(deleted))
	}
	metrics := get(t, "http://"+addrs["admin"]+"/metrics")
	for _, route := range []string{"wf", "sfx"} {
		if want := `credproxy_token_renewals_total{result="ok",route="` + route + `",trigger="reload"} 1`; !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t, 15*time.Second); code != 0 {
		t.Errorf("exit code after SIGTERM = %d", code)
	}
	if deleted := splunk.Deleted(); len(deleted) != 2 || deleted[1] != newSession || splunk.Live() != 0 {
		t.Errorf("sessions ended at shutdown: %d (want the replaced one, then the one in use), live %d", len(deleted), splunk.Live())
	}
	wfToken := strings.TrimPrefix(wfEcho.LastHeader().Get("Authorization"), "Bearer ")
	logtest.AssertNoSecrets(t, "logs", p.stderr.String()+metrics, password, apiToken, oldSession, newSession, wfToken)
}

// writeCA writes a new CA's ca.pem and ca-key.pem into dir, replacing
// what is there as a rotation would (a new file renamed over the old).
func writeCA(t *testing.T, dir, name string) *mitm.CA {
	t.Helper()
	ca, err := mitm.NewCA(name)
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	if err := ca.WriteFiles(tmp); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"ca.pem", "ca-key.pem"} {
		if err := os.Rename(filepath.Join(tmp, f), filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	return ca
}

// connectLeaf opens a tunnel through the forward proxy at proxyAddr to
// target and returns the leaf certificate credproxy presents in it,
// verified against roots, and the TLS connection.
func connectLeaf(t *testing.T, proxyAddr, target string, roots ...*mitm.CA) (*x509.Certificate, *tls.Conn) {
	t.Helper()
	raw, err := net.Dial("tcp", proxyAddr)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(raw, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
	resp, err := http.ReadResponse(bufio.NewReader(raw), &http.Request{Method: http.MethodConnect})
	if err != nil || resp.StatusCode != 200 {
		raw.Close()
		t.Fatalf("CONNECT %s: %v %v", target, resp, err)
	}
	pool := x509.NewCertPool()
	for _, ca := range roots {
		pool.AddCert(ca.Certificate())
	}
	host, _, _ := net.SplitHostPort(target)
	conn := tls.Client(raw, &tls.Config{RootCAs: pool, ServerName: host, NextProtos: []string{"http/1.1"}})
	if err := conn.Handshake(); err != nil {
		raw.Close()
		t.Fatalf("TLS in the tunnel to %s: %v", target, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn.ConnectionState().PeerCertificates[0], conn
}

// signedBy says which of cas signed leaf.
func signedBy(leaf *x509.Certificate, cas map[string]*mitm.CA) string {
	for name, ca := range cas {
		if leaf.CheckSignatureFrom(ca.Certificate()) == nil {
			return name
		}
	}
	return "none"
}

// TestHangupReloadsCA: the forward proxy's CA files are rotated on disk
// and credproxy gets a SIGHUP: a new CONNECT gets a leaf signed by the
// new CA, /ca.pem serves it, and a tunnel intercepted before keeps
// working. A CA file that then fails to load is logged as an error
// naming the variables, and the CA in use is kept.
func TestHangupReloadsCA(t *testing.T) {
	const apiToken = "hupCaT0k-31c9-55de"
	_, cspURL, _, echoURL, certFile := fakes(t, demo.CSPOptions{APIToken: apiToken, TTL: time.Hour})
	dir := t.TempDir()
	cas := map[string]*mitm.CA{"first": writeCA(t, dir, "credproxy test CA one")}
	p := start(t, cspEnv(cspURL, apiToken, echoURL, certFile, append(onLoopback,
		"CREDPROXY_CA_CERT_FILE", filepath.Join(dir, "ca.pem"),
		"CREDPROXY_CA_KEY_FILE", filepath.Join(dir, "ca-key.pem"))...))
	addrs := p.listeners(t, 3)
	waitReady(t, addrs["admin"])
	target := strings.TrimPrefix(echoURL, "https://")

	leaf, before := connectLeaf(t, addrs["forward"], target, cas["first"])
	if by := signedBy(leaf, cas); by != "first" {
		t.Fatalf("leaf before the rotation signed by %s", by)
	}

	cas["second"] = writeCA(t, dir, "credproxy test CA two")
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	p.eventually(t, "the CA reloaded", 10*time.Second, func() bool {
		return len(p.logLines(`"msg":"forward-proxy CA reloaded`, cas["second"].Fingerprint())) == 1
	})
	leaf, _ = connectLeaf(t, addrs["forward"], target, cas["second"])
	if by := signedBy(leaf, cas); by != "second" {
		t.Errorf("leaf of a CONNECT after the reload signed by %s, want the new CA", by)
	}
	block, _ := pem.Decode([]byte(get(t, "http://"+addrs["admin"]+"/ca.pem")))
	if block == nil || !bytes.Equal(block.Bytes, cas["second"].Certificate().Raw) {
		t.Error("/ca.pem does not serve the reloaded CA")
	}
	fmt.Fprintf(before, "GET /api/v2/before HTTP/1.1\r\nHost: %s\r\n\r\n", target)
	if resp, err := http.ReadResponse(bufio.NewReader(before), nil); err != nil || resp.StatusCode != 200 {
		t.Errorf("the tunnel intercepted before the reload: %v %v", resp, err)
	}

	if err := os.WriteFile(filepath.Join(dir, "ca-key.pem"), []byte("not a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	p.eventually(t, "the failed reload logged", 10*time.Second, func() bool {
		return len(p.logLines(`"level":"error"`, `"msg":"forward-proxy CA not reloaded; the one in use is kept"`, "CREDPROXY_CA_KEY_FILE")) == 1
	})
	leaf, _ = connectLeaf(t, addrs["forward"], target, cas["second"])
	if by := signedBy(leaf, cas); by != "second" {
		t.Errorf("leaf after a failed reload signed by %s, want the CA in use kept", by)
	}
	p.alive(t, "two SIGHUPs")
}
