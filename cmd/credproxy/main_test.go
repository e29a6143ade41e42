package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/credproxy/credproxy/internal/demo"
	"github.com/credproxy/credproxy/internal/logtest"
	"github.com/credproxy/credproxy/internal/rtpolicy"
)

// binary is the credproxy binary built once for the whole-process tests.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "credproxy-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "credproxy")
	// -race: the whole-process tests and the soak race-check credproxy
	// itself, not only the test process (see raceEnv).
	build := exec.Command("go", "build", "-race", "-o", binary, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building credproxy:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a running credproxy binary.
type proc struct {
	cmd    *exec.Cmd
	stderr *logtest.Capture
	stdout *logtest.Capture
	addrs  chan [2]string // listener name, address, from the logs
	done   chan error
}

// raceEnv is in the environment of every run of the binary: a data race
// ends it at once with exit code 66, so that a test expecting another exit
// code fails, and the report on its stderr (raceReport) fails the test
// even where the exit code is not looked at.
const raceEnv = "GORACE=halt_on_error=1 exitcode=66"

// raceReport starts every report of the race detector.
const raceReport = "WARNING: DATA RACE"

// command returns a command that runs bin with args and exactly env, plus
// PATH and raceEnv.
func command(bin string, env map[string]string, args ...string) *exec.Cmd {
	cmd := exec.Command(bin, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), raceEnv}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	return cmd
}

// checkNoRace fails t if stderr, a process's, holds a race report.
func checkNoRace(t testing.TB, who, stderr string) {
	t.Helper()
	if i := strings.Index(stderr, raceReport); i >= 0 {
		t.Errorf("%s: the race detector found a data race:\n%s", who, stderr[i:])
	}
}

// runBinary runs the binary with args and exactly env (plus PATH and
// raceEnv) to completion, and returns its exit code (-1 when a signal
// ended it), stdout and stderr. A race report fails t.
func runBinary(t *testing.T, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := command(binary, env, args...)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("credproxy %v: %v", args, err)
	}
	checkNoRace(t, fmt.Sprintf("credproxy %v", args), errOut.String())
	return code, out.String(), errOut.String()
}

// start runs the binary with args and exactly env (plus PATH and raceEnv).
// It is killed when the test ends; a race report on its stderr fails t.
func start(t *testing.T, env map[string]string, args ...string) *proc {
	t.Helper()
	cmd := command(binary, env, args...)
	p := &proc{cmd: cmd, stderr: &logtest.Capture{}, stdout: &logtest.Capture{}, addrs: make(chan [2]string, 16), done: make(chan error, 1)}
	pr, pw := io.Pipe()
	cmd.Stderr = io.MultiWriter(p.stderr, pw)
	cmd.Stdout = p.stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			var line struct{ Msg, Listener, Addr string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "listening" {
				p.addrs <- [2]string{line.Listener, line.Addr}
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	go func() { err := cmd.Wait(); pw.Close(); p.done <- err }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
		checkNoRace(t, fmt.Sprintf("credproxy %v", args), p.stderr.String())
		if t.Failed() {
			t.Logf("credproxy stderr:\n%s\nstdout:\n%s", p.stderr, p.stdout)
		}
	})
	return p
}

// listeners waits for n "listening" log lines.
func (p *proc) listeners(t *testing.T, n int) map[string]string {
	t.Helper()
	got := map[string]string{}
	deadline := time.After(15 * time.Second)
	for len(got) < n {
		select {
		case a := <-p.addrs:
			got[a[0]] = a[1]
		case err := <-p.done:
			p.done <- err
			t.Fatalf("credproxy exited: %v", err)
		case <-deadline:
			t.Fatalf("listeners so far: %v", got)
		}
	}
	return got
}

// wait returns the exit code once the process has ended.
func (p *proc) wait(t *testing.T, within time.Duration) int {
	t.Helper()
	select {
	case err := <-p.done:
		p.done <- err
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(within):
		t.Fatalf("credproxy still running after %v", within)
		return -1
	}
}

// cspEnv is the environment of one csp-api-token route to the echo API,
// which credproxy trusts through SSL_CERT_FILE; more adds variables as
// name, value pairs.
func cspEnv(cspURL, apiToken, echoURL, certFile string, more ...string) map[string]string {
	env := map[string]string{
		"CREDPROXY_AUTH":          "csp-api-token",
		"CREDPROXY_CSP_URL":       cspURL,
		"CREDPROXY_CSP_API_TOKEN": apiToken,
		"CREDPROXY_UPSTREAM":      echoURL,
		"SSL_CERT_FILE":           certFile,
	}
	for i := 0; i+1 < len(more); i += 2 {
		env[more[i]] = more[i+1]
	}
	return env
}

// onLoopback puts the reverse listener, the admin listener and the forward
// proxy on ephemeral loopback ports (name, value pairs for cspEnv).
var onLoopback = []string{
	"CREDPROXY_LISTEN", "127.0.0.1:0",
	"CREDPROXY_ADMIN_ADDR", "127.0.0.1:0",
	"CREDPROXY_FORWARD_ADDR", "127.0.0.1:0",
}

// fakes starts a fake CSP and echo API over TLS on loopback and writes
// their certificate to a PEM file for SSL_CERT_FILE.
func fakes(t *testing.T, opts demo.CSPOptions) (csp *demo.CSP, cspURL string, echo *demo.Echo, echoURL, certFile string) {
	t.Helper()
	f := startFakes(t, opts)
	return f.csp, f.cspURL, f.echo, f.echoURL, f.certFile
}

// fakeSet is a fake CSP and echo API on loopback.
type fakeSet struct {
	csp             *demo.CSP
	echo            *demo.Echo
	cspURL, echoURL string
	certFile        string
	echoConnsOpen   atomic.Int64 // connections the echo API holds open
}

func startFakes(t *testing.T, opts demo.CSPOptions) *fakeSet {
	t.Helper()
	f := &fakeSet{csp: demo.NewCSP(opts)}
	cspSrv := httptest.NewTLSServer(f.csp)
	t.Cleanup(cspSrv.Close)
	f.echo = demo.NewEcho(f.csp.Valid, demo.EchoOptions{})
	echoSrv := httptest.NewUnstartedServer(f.echo)
	echoSrv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			f.echoConnsOpen.Add(1)
		case http.StateClosed, http.StateHijacked:
			f.echoConnsOpen.Add(-1)
		}
	}
	echoSrv.StartTLS()
	t.Cleanup(echoSrv.Close)
	f.certFile = filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: echoSrv.Certificate().Raw})
	if err := os.WriteFile(f.certFile, pemBytes, 0o644); err != nil {
		t.Fatal(err)
	}
	f.cspURL, f.echoURL = cspSrv.URL, echoSrv.URL
	return f
}

func waitReady(t *testing.T, admin string) {
	t.Helper()
	waitReadyz(t, admin, http.StatusOK, 15*time.Second)
}

// waitReadyz polls the admin listener's /readyz until it answers status,
// for at most within.
func waitReadyz(t *testing.T, admin string, status int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		r, err := http.Get("http://" + admin + "/readyz")
		if err == nil {
			r.Body.Close()
			if r.StatusCode == status {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz did not answer %d within %v (last: %v %v)", status, within, r, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestBinaryEndToEnd runs the built binary against a fake CSP and a TLS
// echo API trusted through SSL_CERT_FILE, and calls it with curl and with
// Go's net/http.
func TestBinaryEndToEnd(t *testing.T) {
	const clientSecret = "e2e-app-secret+/=xyz"
	csp, cspURL, echo, echoURL, certFile := fakes(t, demo.CSPOptions{ClientID: "e2e-app", ClientSecret: clientSecret, TTL: 30 * time.Minute})
	secretFile := filepath.Join(t.TempDir(), "client-secret")
	if err := os.WriteFile(secretFile, []byte(clientSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := start(t, map[string]string{
		"CREDPROXY_AUTH":                   "csp-oauth-app",
		"CREDPROXY_CSP_URL":                cspURL + "/",
		"CREDPROXY_CSP_CLIENT_ID":          "e2e-app",
		"CREDPROXY_CSP_CLIENT_SECRET_FILE": secretFile,
		"CREDPROXY_CSP_ORG_ID":             "org-e2e",
		"CREDPROXY_UPSTREAM":               echoURL,
		"CREDPROXY_LISTEN":                 "127.0.0.1:0",
		"CREDPROXY_ADMIN_ADDR":             "127.0.0.1:0",
		"CREDPROXY_LOG_LEVEL":              "debug",
		"SSL_CERT_FILE":                    certFile,
		"HTTPS_PROXY":                      "http://127.0.0.1:1", // must be ignored
	})
	addrs := p.listeners(t, 2)
	proxyAddr, admin := addrs["route default"], addrs["admin"]
	waitReady(t, admin)

	// curl, with a forged credential that must be replaced.
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatal("curl is required (CI installs it)")
	}
	out, err := exec.Command("curl", "-sS", "--noproxy", "*", "-H", "Authorization: Bearer forged-by-client",
		"http://"+proxyAddr+"/api/v2/source?limit=1").Output()
	if err != nil {
		t.Fatalf("curl: %v", err)
	}
	var echoed struct {
		Authorized bool   `json:"authorized"`
		Path       string `json:"path"`
	}
	if err := json.Unmarshal(out, &echoed); err != nil || !echoed.Authorized || echoed.Path != "/api/v2/source" {
		t.Fatalf("curl got %s (%v)", out, err)
	}
	injected := echo.LastHeader().Get("Authorization")
	if !strings.HasPrefix(injected, "Bearer ") || !csp.Valid(strings.TrimPrefix(injected, "Bearer ")) {
		t.Fatalf("upstream saw Authorization %q, want a valid CSP token", injected)
	}

	// Go's net/http, with a body.
	resp, err := http.Post("http://"+proxyAddr+"/report?f=wavefront", "text/plain", strings.NewReader("cpu.load 1 source=e2e\n"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Contains(body, []byte(`"body_bytes":22`)) {
		t.Fatalf("Go client got %d %s", resp.StatusCode, body)
	}

	// The exchange on the wire: raw Basic, orgId, one exchange so far.
	reqs := csp.Requests()
	if len(reqs) != 1 || reqs[0].Path != "/csp/gateway/am/api/auth/authorize" || reqs[0].Form.Get("orgId") != "org-e2e" {
		t.Fatalf("CSP saw %+v", reqs)
	}

	// Readiness and metrics.
	ready := get(t, "http://"+admin+"/readyz")
	if !strings.Contains(ready, `"state": "valid"`) {
		t.Errorf("/readyz = %s", ready)
	}
	metrics := get(t, "http://"+admin+"/metrics")
	for _, want := range []string{
		`credproxy_exchanges_total{kind="csp-oauth-app",result="ok",route="default"} 1`,
		`credproxy_requests_total{mode="reverse",route="default",status="200"} 2`,
		`credproxy_token_expiry_seconds{route="default"}`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	// Graceful stop.
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t, 10*time.Second); code != 0 {
		t.Errorf("exit code after SIGTERM = %d", code)
	}
	logs := p.stderr.String()
	if !strings.Contains(logs, `"msg":"stopped"`) || !strings.Contains(logs, `"msg":"token obtained"`) {
		t.Errorf("logs lack the lifecycle lines")
	}
	logtest.AssertNoSecrets(t, "logs", logs+ready+metrics, clientSecret, strings.TrimPrefix(injected, "Bearer "))
}

func get(t *testing.T, u string) string {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestBadConfiguration: each missing or invalid variable stops start-up
// with exit code 2 and a line naming the variable.
func TestBadConfiguration(t *testing.T) {
	base := map[string]string{
		"CREDPROXY_AUTH":          "csp-api-token",
		"CREDPROXY_CSP_API_TOKEN": "nvr-l0gged-s3cr3t-9f2a",
		"CREDPROXY_UPSTREAM":      "https://example.wavefront.com",
	}
	tcs := []struct {
		desc    string
		set     map[string]string
		unset   []string
		wantVar string
	}{
		{desc: "no AUTH", unset: []string{"CREDPROXY_AUTH"}, wantVar: "CREDPROXY_AUTH"},
		{desc: "unknown AUTH", set: map[string]string{"CREDPROXY_AUTH": "kerberos"}, wantVar: "CREDPROXY_AUTH"},
		{desc: "splunk without login", set: map[string]string{"CREDPROXY_AUTH": "splunk-session"}, wantVar: "CREDPROXY_SPLUNK_EMAIL"},
		{desc: "no api token", unset: []string{"CREDPROXY_CSP_API_TOKEN"}, wantVar: "CREDPROXY_CSP_API_TOKEN"},
		{desc: "no upstream", unset: []string{"CREDPROXY_UPSTREAM"}, wantVar: "CREDPROXY_UPSTREAM"},
		{desc: "http upstream", set: map[string]string{"CREDPROXY_UPSTREAM": "http://example.wavefront.com"}, wantVar: "CREDPROXY_UPSTREAM"},
		{desc: "bad duration", set: map[string]string{"CREDPROXY_SHUTDOWN_TIMEOUT": "soon"}, wantVar: "CREDPROXY_SHUTDOWN_TIMEOUT"},
		{desc: "bad bool", set: map[string]string{"CREDPROXY_ALLOW_INSECURE_UPSTREAM": "perhaps"}, wantVar: "CREDPROXY_ALLOW_INSECURE_UPSTREAM"},
		{desc: "bad listen", set: map[string]string{"CREDPROXY_LISTEN": "8080"}, wantVar: "CREDPROXY_LISTEN"},
		{desc: "bad refresh fraction", set: map[string]string{"CREDPROXY_REFRESH_AT": "1.5"}, wantVar: "CREDPROXY_REFRESH_AT"},
		{desc: "bad log format", set: map[string]string{"CREDPROXY_LOG_FORMAT": "xml"}, wantVar: "CREDPROXY_LOG_FORMAT"},
		{desc: "secret and file", set: map[string]string{"CREDPROXY_CSP_API_TOKEN_FILE": "/x"}, wantVar: "CREDPROXY_CSP_API_TOKEN_FILE"},
	}
	for _, tc := range tcs {
		t.Run(tc.desc, func(t *testing.T) {
			env := map[string]string{}
			for k, v := range base {
				env[k] = v
			}
			for _, k := range tc.unset {
				delete(env, k)
			}
			for k, v := range tc.set {
				env[k] = v
			}
			var stderr bytes.Buffer
			err := run(context.Background(), []string{"run"}, env, rtpolicy.Applied{}, io.Discard, &stderr)
			if code := exitCode(err); code != 2 {
				t.Errorf("exit code = %d, want 2 (err %v)", code, err)
			}
			if !strings.Contains(stderr.String(), tc.wantVar+":") {
				t.Errorf("stderr does not name %s:\n%s", tc.wantVar, stderr.String())
			}
			logtest.AssertNoSecrets(t, "stderr", stderr.String(), "nvr-l0gged-s3cr3t-9f2a")
		})
	}

	// Several problems at once, through the real binary.
	p := start(t, map[string]string{"CREDPROXY_AUTH": "csp-oauth-app", "CREDPROXY_SHUTDOWN_TIMEOUT": "x"})
	if code := p.wait(t, 10*time.Second); code != 2 {
		t.Errorf("binary exit code = %d, want 2", code)
	}
	for _, v := range []string{"CREDPROXY_CSP_CLIENT_ID:", "CREDPROXY_CSP_CLIENT_SECRET:", "CREDPROXY_UPSTREAM:", "CREDPROXY_SHUTDOWN_TIMEOUT:"} {
		if !strings.Contains(p.stderr.String(), v) {
			t.Errorf("stderr does not name %s", v)
		}
	}
}

func TestCommands(t *testing.T) {
	const apiToken = "cmdT3st-9c1e-77ab-f00d"
	csp, cspURL, _, echoURL, certFile := fakes(t, demo.CSPOptions{APIToken: apiToken, TTL: time.Hour})
	// token asks the admin address; nothing listens at a closed one.
	env := cspEnv(cspURL, apiToken, echoURL, certFile, "CREDPROXY_ADMIN_ADDR", closedAddr(t))
	code, out, errOut := runBinary(t, env, "check")
	if code != 0 || !strings.Contains(out, "default") || !strings.Contains(out, "ok") {
		t.Errorf("check: %d %s %s", code, out, errOut)
	}
	logtest.AssertNoSecrets(t, "check output", out+errOut, apiToken)

	code, out, _ = runBinary(t, env, "token")
	if tok := strings.TrimSpace(out); code != 0 || !csp.Valid(tok) {
		t.Errorf("token: exit %d, printed a token the CSP does not accept", code)
	}

	bad := map[string]string{}
	for k, v := range env {
		bad[k] = v
	}
	bad["CREDPROXY_CSP_API_TOKEN"] = "wr0ngT0k-42aa-1b2c-dd"
	code, out, errOut = runBinary(t, bad, "check")
	if code != 1 || !strings.Contains(out, "FAILED") || !strings.Contains(out, "HTTP 400") {
		t.Errorf("check with a bad token: %d %s %s", code, out, errOut)
	}
	logtest.AssertNoSecrets(t, "check output", out+errOut, "wr0ngT0k-42aa-1b2c-dd")

	if code, out, _ := runBinary(t, nil, "version"); code != 0 || !strings.HasPrefix(out, "credproxy ") {
		t.Errorf("version: %d %q", code, out)
	}
	if code, out, _ := runBinary(t, nil, "--help"); code != 0 || !strings.Contains(out, "CREDPROXY_CSP_URL") && !strings.Contains(out, "CSP_URL") {
		t.Errorf("--help: %d, lacks the variables:\n%s", code, out)
	}
	if code, _, errOut := runBinary(t, nil, "frobnicate"); code != 2 || !strings.Contains(errOut, "unknown command") {
		t.Errorf("unknown command: %d %s", code, errOut)
	}
	if code, _, _ := runBinary(t, env, "token", "nosuchroute"); code != 2 {
		t.Errorf("token for an unknown route: exit %d, want 2", code)
	}
}
