package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/credproxy/credproxy/internal/demo"
	"github.com/credproxy/credproxy/internal/logtest"
)

// auditLines reads path's lines, each of which must be one JSON object.
func auditLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // not written yet: callers that wait poll again
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("audit line %q is not one JSON object: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

// auditFind returns the lines whose via is via.
func auditFind(lines []map[string]any, via string) []map[string]any {
	var out []map[string]any
	for _, l := range lines {
		if l["via"] == via {
			out = append(out, l)
		}
	}
	return out
}

// auditCall makes one request to the admin listener and returns the body.
func auditCall(t *testing.T, req *http.Request) (int, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestAuditLog: with CREDPROXY_AUDIT_LOG a file and the token API on, a
// GET /v1/token, a POST /oauth2/token and a sink write each leave one
// line with their fields; the file is mode 0600; a path that tries to
// start a line of its own cannot; after logrotate's move and SIGHUP new
// lines go to a new file at the path; and no token or secret the test
// used is in either file.
func TestAuditLog(t *testing.T) {
	const apiToken = "auditAPI-3f9e-44d1-b0aa"
	const localSecret = "auditLOCAL-81c0-9e2d"
	_, cspURL, _, echoURL, certFile := fakes(t, demo.CSPOptions{APIToken: apiToken, TTL: time.Hour})
	dir := t.TempDir()
	logPath, sinkPath := filepath.Join(dir, "audit.log"), filepath.Join(dir, "token")
	env := cspEnv(cspURL, apiToken, echoURL, certFile, "CREDPROXY_LISTEN", "127.0.0.1:0", "CREDPROXY_ADMIN_ADDR", "127.0.0.1:0",
		"CREDPROXY_TOKEN_API", "true", "CREDPROXY_AUDIT_LOG", logPath, "CREDPROXY_TOKEN_SINK_FILE", sinkPath,
		"CREDPROXY_LOCAL_CLIENT_SECRET", localSecret)
	p := start(t, env)
	admin := p.listeners(t, 2)["admin"]
	waitReady(t, admin)

	tokenReq := func(path string) *http.Request {
		req, _ := http.NewRequest("GET", "http://"+admin+path, nil)
		req.Header.Set("Metadata", "true")
		return req
	}
	code, body := auditCall(t, tokenReq("/v1/token/default"))
	var tr struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal([]byte(body), &tr); err != nil || code != 200 {
		t.Fatalf("token API: %d %s", code, body)
	}
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {"default"}, "client_secret": {localSecret}}
	req, _ := http.NewRequest("POST", "http://"+admin+"/oauth2/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if code, body := auditCall(t, req); code != 200 {
		t.Fatalf("/oauth2/token: %d %s", code, body)
	}
	forged := "/v1/token/x%0A%7B%22via%22:%22sink%22,%22route%22:%22default%22%7D"
	if code, _ := auditCall(t, tokenReq(forged)); code != 404 {
		t.Errorf("forged route: %d, want 404", code)
	}

	var lines []map[string]any
	p.eventually(t, "four audit lines", 10*time.Second, func() bool {
		lines = auditLines(t, logPath)
		return len(lines) >= 4
	})
	checkAuditLines(t, lines)
	if fi, err := os.Stat(logPath); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("audit log mode: %v %v, want 0600", fi.Mode(), err)
	}
	if rz := get(t, "http://"+admin+"/readyz"); !strings.Contains(rz, `"audit_log": "`+logPath+`"`) || !strings.Contains(rz, `"peer_check": false`) {
		t.Errorf("/readyz does not say where the audit log goes, or the route's edge: %s", rz)
	}

	// logrotate: move the file, SIGHUP, and the next line is in a new one.
	if err := os.Rename(logPath, logPath+".1"); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	p.eventually(t, "a new audit.log after SIGHUP", 10*time.Second, func() bool { _, err := os.Stat(logPath); return err == nil })
	before := len(auditFind(auditLines(t, logPath+".1"), "token_api"))
	if code, _ := auditCall(t, tokenReq("/v1/token/default")); code != 200 {
		t.Fatalf("token API after SIGHUP: %d", code)
	}
	p.eventually(t, "the token API's line in the new audit.log", 10*time.Second, func() bool {
		return len(auditFind(auditLines(t, logPath), "token_api")) == 1
	})
	if after := len(auditFind(auditLines(t, logPath+".1"), "token_api")); after != before {
		t.Errorf("a line was written to the moved file after SIGHUP (%d -> %d token_api lines)", before, after)
	}
	if fi, err := os.Stat(logPath); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("reopened audit log mode: %v %v, want 0600", fi.Mode(), err)
	}

	sinkToken, _ := os.ReadFile(sinkPath)
	for _, f := range []string{logPath, logPath + ".1"} {
		text, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		logtest.AssertNoSecrets(t, f, string(text), apiToken, localSecret, tr.AccessToken, string(sinkToken))
	}
}

// checkAuditLines checks the lines of TestAuditLog's first requests.
func checkAuditLines(t *testing.T, lines []map[string]any) {
	t.Helper()
	api, oauth2, sink := auditFind(lines, "token_api"), auditFind(lines, "oauth2"), auditFind(lines, "sink")
	if len(api) != 2 || len(oauth2) != 1 || len(sink) != 1 {
		t.Fatalf("audit lines: %d token_api (want 2), %d oauth2 (want 1), %d sink (want 1): %v", len(api), len(oauth2), len(sink), lines)
	}
	token := func(l map[string]any) string { s, _ := l["token"].(string); return s }
	for _, l := range []map[string]any{api[0], oauth2[0]} {
		caller, _ := l["caller"].(string)
		if l["route"] != "default" || l["decision"] != "allowed" || l["status"] != 200.0 ||
			!strings.HasPrefix(caller, "127.0.0.1:") || !strings.HasPrefix(token(l), "sha256:") || l["time"] == nil {
			t.Errorf("audit line of a token handed out: %v", l)
		}
	}
	if api[0]["method"] != "GET" || api[0]["path"] != "/v1/token/default" || oauth2[0]["method"] != "POST" || oauth2[0]["path"] != "/oauth2/token" {
		t.Errorf("method and path: %v %v", api[0], oauth2[0])
	}
	if s := sink[0]; s["route"] != "default" || s["decision"] != "allowed" || !strings.HasPrefix(token(s), "sha256:") {
		t.Errorf("sink line: %v", s)
	}
	if f := api[1]; f["route"] != nil || f["decision"] != "unknown_route" || f["status"] != 404.0 || !strings.Contains(f["path"].(string), "%0A") {
		t.Errorf("the forged route's line: %v", f)
	}
}

// TestCheckSaysAudit: credproxy check says whether auditing is on, and
// where the lines go.
func TestCheckSaysAudit(t *testing.T) {
	const apiToken = "chkAudit-7a1e-22cd-9f0b"
	_, cspURL, _, echoURL, certFile := fakes(t, demo.CSPOptions{APIToken: apiToken, TTL: time.Hour})
	env := cspEnv(cspURL, apiToken, echoURL, certFile)
	if code, out, errOut := runBinary(t, env, "check"); code != 0 || !strings.Contains(out, "audit log: off\n") {
		t.Errorf("check without CREDPROXY_AUDIT_LOG: exit %d, does not say \"audit log: off\":\n%s%s", code, out, errOut)
	}
	path := filepath.Join(t.TempDir(), "audit.log")
	env["CREDPROXY_AUDIT_LOG"] = path
	if code, out, errOut := runBinary(t, env, "check"); code != 0 || !strings.Contains(out, "audit log: "+path+"\n") {
		t.Errorf("check with CREDPROXY_AUDIT_LOG=%s: exit %d, does not name it:\n%s%s", path, code, out, errOut)
	}
	env["CREDPROXY_AUDIT_LOG"] = "stdout"
	if _, out, _ := runBinary(t, env, "check"); !strings.Contains(out, "audit log: stdout\n") {
		t.Errorf("check with CREDPROXY_AUDIT_LOG=stdout:\n%s", out)
	}
}
