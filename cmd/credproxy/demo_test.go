package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// demoProc is a running `credproxy demo` and what it printed.
type demoProc struct {
	*proc
	addrs map[string]string
	guide string // stdout once the guide is complete
	tmp   string // TMPDIR of the demo: its temporary directory is made there
}

// startDemo runs `credproxy demo` on free ports (none of the documented
// ones, which may be taken), with tokens of ttl ("" for the demo's own),
// and waits until it is ready and has printed its guide.
func startDemo(t *testing.T, ttl string) *demoProc {
	t.Helper()
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatal("curl is required (CI installs it)")
	}
	d := &demoProc{tmp: t.TempDir()}
	env := map[string]string{
		"CREDPROXY_LISTEN": "127.0.0.1:0", "CREDPROXY_ADMIN_ADDR": "127.0.0.1:0", "CREDPROXY_FORWARD_ADDR": "127.0.0.1:0",
		"CREDPROXY_KEYED_LISTEN": "127.0.0.1:0",
		"CREDPROXY_LOG_FORMAT":   "json", "TMPDIR": d.tmp,
	}
	if ttl != "" {
		env[demoTTLVar] = ttl
	}
	d.proc = start(t, env, "demo")
	d.addrs = d.listeners(t, len(demoListeners))
	waitReady(t, d.addrs["admin"])
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(d.stdout.String(), "Ctrl-C stops"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the demo did not print its guide:\n%s", d.stdout)
		}
	}
	d.guide = d.stdout.String()
	return d
}

// guideCommand matches a command line of the guide: indented, and a
// command a user pastes (the status page's address is not one).
var guideCommand = regexp.MustCompile(`(?m)^  ((?:curl|export|cat) .*)$`)

// commands returns the guide's command lines, in order.
func (d *demoProc) commands() []string {
	var cmds []string
	for _, m := range guideCommand.FindAllStringSubmatch(d.guide, -1) {
		cmds = append(cmds, m[1])
	}
	return cmds
}

// command returns the guide's one command line that matches re, failing
// t unless there is exactly one.
func (d *demoProc) command(t *testing.T, re string) string {
	t.Helper()
	rx := regexp.MustCompile(re)
	var got []string
	for _, c := range d.commands() {
		if rx.MatchString(c) {
			got = append(got, c)
		}
	}
	if len(got) != 1 {
		t.Fatalf("commands matching %s: %q\nguide:\n%s", re, got, d.guide)
	}
	return got[0]
}

// shell runs script with sh as a user's shell would, but with only PATH
// and HOME set, so that the test's own proxy variables play no part. A
// curl command (not in a pipeline) gets -w so that its status is the
// output's last line; shell returns the output and that status (0 for
// other commands).
func shell(t *testing.T, script string) (out string, status int) {
	t.Helper()
	withStatus := !strings.Contains(script, "|") && strings.Contains(script, "curl -s ")
	if withStatus {
		script = strings.Replace(script, "curl -s ", `curl -s -w '\n%{http_code}' `, 1)
	}
	cmd := exec.Command("sh", "-c", script)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	b, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s", script, err, b)
	}
	out = string(b)
	if withStatus {
		i := strings.LastIndexByte(out, '\n')
		if i < 0 {
			t.Fatalf("%s: no status in %q", script, out)
		}
		var err error
		if status, err = strconv.Atoi(out[i+1:]); err != nil {
			t.Fatalf("%s: status %q", script, out[i+1:])
		}
		out = out[:i]
	}
	return out, status
}

// echoAnswer is the echo API's answer, the part the guide's tests read.
type echoAnswer struct {
	Path       string `json:"path"`
	Authorized bool   `json:"authorized"`
}

// tokenAnswer is the token API's and /oauth2/token's answer.
type tokenAnswer struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int    `json:"expires_in"`
}

// TestDemoGuide runs every command the demo prints, as a user pasting it
// would, and checks each answer's status and shape: the reverse proxy
// (with and without a forged credential), the forward proxy (with -x and
// --cacert, and with the HTTPS_PROXY line pasted first), the token API,
// /oauth2/token with the printed client secret, the token sink, readyz
// and metrics, and the keyed route: with its client key, a POST its
// policy refuses, no key. The outage commands are TestDemoLifecycle's.
func TestDemoGuide(t *testing.T) {
	d := startDemo(t, "")
	checked := map[string]bool{}
	run := func(re string) (string, int) {
		t.Helper()
		c := d.command(t, re)
		checked[c] = true
		return shell(t, c)
	}
	wantEcho := func(what, out string, status int) {
		t.Helper()
		var e echoAnswer
		if status != 200 || json.Unmarshal([]byte(out), &e) != nil || !e.Authorized || e.Path != "/api/v2/source" {
			t.Errorf("%s: %d %s", what, status, out)
		}
	}
	wantToken := func(what, out string, status int) string {
		t.Helper()
		var a tokenAnswer
		if status != 200 || json.Unmarshal([]byte(out), &a) != nil || a.AccessToken == "" || a.TokenType != "Bearer" || a.ExpiresIn <= 0 {
			t.Errorf("%s: %d %s", what, status, out)
		}
		return a.AccessToken
	}

	out, status := run(`^curl -s http://` + regexp.QuoteMeta(d.addrs["route default"]) + `/api/v2/source$`)
	wantEcho("reverse proxy", out, status)
	out, status = run(`^curl -s -H 'Authorization: Bearer forged' http://127\.0\.0\.1:\d+/api/v2/source$`)
	wantEcho("reverse proxy, forged credential", out, status)
	out, status = run(`^curl -s -x http://127\.0\.0\.1:\d+ --cacert \S+/ca\.pem https://127\.0\.0\.1:\d+/api/v2/source$`)
	wantEcho("forward proxy with -x", out, status)
	export := d.command(t, `^export HTTPS_PROXY=http://127\.0\.0\.1:\d+ SSL_CERT_FILE=\S+/ca\.pem$`)
	plain := d.command(t, `^curl -s https://127\.0\.0\.1:\d+/api/v2/source$`)
	checked[export], checked[plain] = true, true
	out, status = shell(t, export+"\n"+plain)
	wantEcho("forward proxy through HTTPS_PROXY", out, status)

	out, status = run(`^curl -s -H 'Metadata: true' http://127\.0\.0\.1:\d+/v1/token/default$`)
	tok := wantToken("token API", out, status)
	out, status = run(`^curl -s -d grant_type=client_credentials -d client_id=default -d client_secret=[0-9a-f]{24} http://127\.0\.0\.1:\d+/oauth2/token$`)
	if got := wantToken("/oauth2/token", out, status); got != tok {
		t.Errorf("/oauth2/token and the token API disagree")
	}
	if out, _ = run(`^cat /\S+/token$`); out != tok && out != tok+"\n" {
		t.Errorf("the token sink holds %q, not the token API's token", out)
	}

	// The keyed route: its client key and its policy.
	key := `-H 'Authorization: Bearer [0-9a-f]{32}' `
	out, status = run(`^curl -s ` + key + `http://127\.0\.0\.1:\d+/api/v2/source$`)
	wantEcho("keyed route with the key", out, status)
	if out, status = run(`^curl -s -X POST ` + key + `http://127\.0\.0\.1:\d+/api/v2/source$`); status != 403 || !strings.Contains(out, `"denied_by_policy"`) {
		t.Errorf("keyed route, a POST: %d %s", status, out)
	}
	if out, status = run(`^curl -s http://` + regexp.QuoteMeta(d.addrs["route keyed"]) + `/api/v2/source$`); status != 401 {
		t.Errorf("keyed route without a key: %d %s", status, out)
	}

	out, status = run(`^curl -s http://127\.0\.0\.1:\d+/readyz$`)
	var ready struct{ Ready bool }
	if status != 200 || json.Unmarshal([]byte(out), &ready) != nil || !ready.Ready {
		t.Errorf("readyz: %d %s", status, out)
	}
	if out, _ = run(`^curl -s http://127\.0\.0\.1:\d+/metrics \| grep \^credproxy_$`); !strings.Contains(out, `credproxy_exchanges_total{`) {
		t.Errorf("metrics: %s", out)
	}
	if page := get(t, "http://"+d.addrs["admin"]+"/"); !strings.Contains(page, "default") {
		t.Errorf("status page: %s", page)
	}

	outage := regexp.MustCompile(`^curl -s -X (POST|DELETE) '?http://127\.0\.0\.1:\d+/demo/outage`)
	for _, c := range d.commands() {
		if !checked[c] && !outage.MatchString(c) {
			t.Errorf("a command of the guide no test runs: %s", c)
		}
	}
	if n := strings.Count(strings.TrimSpace(d.guide), "\n") + 1; n > 45 {
		t.Errorf("the guide is %d lines, want about 40:\n%s", n, d.guide)
	}
}

// TestDemoLifecycle runs `credproxy demo` as a newcomer would: the status
// data shows the demo API token expiring in about 20 days, and the printed
// outage command, pasted into a shell, breaks the identity service: the
// old token is served through the outage, requests then fail closed with
// 503, and the printed command that ends the outage brings the route back
// without a restart. Tokens live 3 s here (CREDPROXY_DEMO_TOKEN_TTL), not
// the demo's 30, so that an outage outlives one within seconds.
func TestDemoLifecycle(t *testing.T) {
	const ttl = 3 * time.Second
	d := startDemo(t, ttl.String())
	proxyURL, admin := "http://"+d.addrs["route default"]+"/api/v2/source", d.addrs["admin"]

	// The API token's own expiry, from the fake CSP's details endpoint.
	var r readyRoute
	for deadline := time.Now().Add(15 * time.Second); r.CredentialExpiresAt.IsZero(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("status.json never showed the API token's expiry:\n%s", get(t, "http://"+admin+"/status.json"))
		}
		r = routesOf(t, "/status.json", get(t, "http://"+admin+"/status.json"))[0]
	}
	if left := time.Until(r.CredentialExpiresAt); r.Source != "lookup" || left < 20*24*time.Hour || left > 21*24*time.Hour {
		t.Errorf("credential expires in %v (from %q), want about 20 days from the lookup", left, r.Source)
	}

	// The commands the demo prints.
	post := d.command(t, `^curl -s -X POST 'http://127\.0\.0\.1:\d+/demo/outage\?seconds=60'$`)
	del := d.command(t, `^curl -s -X DELETE http://127\.0\.0\.1:\d+/demo/outage$`)
	out, status := shell(t, post)
	var answer struct {
		OutageUntil time.Time `json:"outage_until"`
	}
	if status != 200 || json.Unmarshal([]byte(out), &answer) != nil || time.Until(answer.OutageUntil) < 50*time.Second {
		t.Fatalf("%s: %d %s", post, status, out)
	}

	// Through the outage: the old token until it expires, then 503.
	call := func() (int, string) {
		resp, err := http.Get(proxyURL)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	served := 0
	for deadline := time.Now().Add(ttl + 15*time.Second); ; time.Sleep(50 * time.Millisecond) {
		code, body := call()
		if code == 503 {
			if !strings.Contains(body, `"error":"credential_unavailable"`) {
				t.Errorf("503 body %s", body)
			}
			break
		}
		if code != 200 || !strings.Contains(body, `"authorized":true`) {
			t.Fatalf("during the outage: %d %s", code, body)
		}
		served++
		if time.Now().After(deadline) {
			t.Fatal("still served after the token must have expired")
		}
	}
	if served == 0 {
		t.Error("the old token was not served at the start of the outage")
	}
	if !strings.Contains(d.stderr.String(), `"msg":"exchange failed"`) {
		t.Error("the failed renewals are not logged")
	}

	// The outage ends: credproxy recovers by itself.
	if out, status := shell(t, del); status != 200 || out != `{"outage_until":null}` {
		t.Fatalf("%s: %d %s", del, status, out)
	}
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(50 * time.Millisecond) {
		if code, _ := call(); code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("credproxy did not recover after the outage")
		}
	}
	d.alive(t, "the outage")
}

// TestDemo runs `credproxy demo` and uses it as the README says: it
// serves through SIGHUP, and SIGINT stops it with exit code 0 and removes
// its temporary directory (the CA certificate, the token sink).
func TestDemo(t *testing.T) {
	d := startDemo(t, "")
	if body := get(t, "http://"+d.addrs["route default"]+"/api/v2/source"); !strings.Contains(body, `"authorized":true`) {
		t.Errorf("demo proxy answered %s", body)
	}
	if entries, _ := os.ReadDir(d.tmp); len(entries) != 1 || !strings.HasPrefix(entries[0].Name(), "credproxy-demo-") {
		t.Errorf("the demo's temporary directory: %v", entries)
	}
	// SIGHUP leaves the demo serving.
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(d.stderr.String(), `"msg":"SIGHUP received"`) && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		d.alive(t, "SIGHUP")
	}
	d.alive(t, "SIGHUP")
	if body := get(t, "http://"+d.addrs["route default"]+"/api/v2/source"); !strings.Contains(body, `"authorized":true`) {
		t.Errorf("demo proxy answered %s after SIGHUP", body)
	}
	_ = d.cmd.Process.Signal(os.Interrupt)
	if code := d.wait(t, 10*time.Second); code != 0 {
		t.Errorf("demo exit code after SIGINT = %d", code)
	}
	if entries, _ := os.ReadDir(d.tmp); len(entries) != 0 {
		t.Errorf("the demo left %v behind", entries)
	}
}
