package main

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/credproxy/credproxy/internal/demo"
	"github.com/credproxy/credproxy/internal/logtest"
)

// TestTokenAPIAndTokenCommand runs credproxy with CREDPROXY_TOKEN_API=true
// and checks the token API, the status page, and that `credproxy token`
// takes the running credproxy's token: it is given a wrong API token, so
// a token it prints cannot come from an exchange of its own.
func TestTokenAPIAndTokenCommand(t *testing.T) {
	const apiToken = "tokcmd-5d2e-41aa-b00c"
	const wrongToken = "wr0ngAPI-77aa-1b2c-ee"
	csp, cspURL, _, echoURL, certFile := fakes(t, demo.CSPOptions{APIToken: apiToken, TTL: time.Hour})
	env := cspEnv(cspURL, apiToken, echoURL, certFile, "CREDPROXY_LISTEN", "127.0.0.1:0", "CREDPROXY_ADMIN_ADDR", "127.0.0.1:0", "CREDPROXY_TOKEN_API", "true")
	p := start(t, env)
	admin := p.listeners(t, 2)["admin"]
	waitReady(t, admin)

	call := func(header string) (int, http.Header, string) {
		req, _ := http.NewRequest("GET", "http://"+admin+"/v1/token/default", nil)
		if header != "" {
			req.Header.Set("Metadata", header)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(b)
	}
	if code, _, body := call(""); code != 403 {
		t.Errorf("without Metadata: true: %d %s", code, body)
	}
	code, hdr, body := call("true")
	var tr struct {
		AccessToken string    `json:"access_token"`
		TokenType   string    `json:"token_type"`
		ExpiresIn   int       `json:"expires_in"`
		ExpiresAt   time.Time `json:"expires_at"`
	}
	if err := json.Unmarshal([]byte(body), &tr); err != nil || code != 200 {
		t.Fatalf("token API: %d %s %v", code, body, err)
	}
	if !csp.Valid(tr.AccessToken) || tr.TokenType != "Bearer" || tr.ExpiresIn < 3000 || tr.ExpiresAt.IsZero() || hdr.Get("Cache-Control") != "no-store" {
		t.Errorf("token API answer: valid=%v type=%q expires_in=%d expires_at=%v cache=%q",
			csp.Valid(tr.AccessToken), tr.TokenType, tr.ExpiresIn, tr.ExpiresAt, hdr.Get("Cache-Control"))
	}

	// The status page and its JSON.
	if page := get(t, "http://"+admin+"/"); !strings.Contains(page, "<title>credproxy status</title>") {
		t.Errorf("status page: %.200s", page)
	}
	st := get(t, "http://"+admin+"/status.json")
	if !strings.Contains(st, `"route":"default"`) || !strings.Contains(st, `"kind":"csp-api-token"`) || !strings.Contains(st, `"upstream":"`+echoURL) {
		t.Errorf("status.json: %s", st)
	}

	// credproxy token, with a credential the CSP would refuse: the token
	// comes from the running credproxy.
	exchanges := csp.Exchanges()
	cmdEnv := map[string]string{}
	for k, v := range env {
		cmdEnv[k] = v
	}
	cmdEnv["CREDPROXY_CSP_API_TOKEN"] = wrongToken
	cmdEnv["CREDPROXY_ADMIN_ADDR"] = admin
	code, out, errOut := runBinary(t, cmdEnv, "token")
	if code != 0 || strings.TrimSpace(out) != tr.AccessToken {
		t.Errorf("credproxy token: exit %d, did not print the running credproxy's token (stderr %s)", code, errOut)
	}
	if csp.Exchanges() != exchanges {
		t.Errorf("credproxy token exchanged itself although the token API answered")
	}

	for _, s := range []string{st, p.stderr.String(), errOut} {
		logtest.AssertNoSecrets(t, "status.json, logs and stderr", s, tr.AccessToken, apiToken)
	}
}

// TestTokenCommandFallsBack checks that `credproxy token` does its own
// exchange when the credproxy on CREDPROXY_ADMIN_ADDR has no token API
// (404), and when nothing listens there.
func TestTokenCommandFallsBack(t *testing.T) {
	const apiToken = "fallbk-1a2b-3c4d-5e6f"
	csp, cspURL, _, echoURL, certFile := fakes(t, demo.CSPOptions{APIToken: apiToken, TTL: time.Hour})
	env := cspEnv(cspURL, apiToken, echoURL, certFile, "CREDPROXY_LISTEN", "127.0.0.1:0", "CREDPROXY_ADMIN_ADDR", "127.0.0.1:0")
	p := start(t, env) // token API off
	admin := p.listeners(t, 2)["admin"]
	waitReady(t, admin)

	for _, addr := range []string{admin, "127.0.0.1:1"} {
		cmdEnv := map[string]string{}
		for k, v := range env {
			cmdEnv[k] = v
		}
		cmdEnv["CREDPROXY_ADMIN_ADDR"] = addr
		before := csp.Exchanges()
		code, out, errOut := runBinary(t, cmdEnv, "token")
		if code != 0 || !csp.Valid(strings.TrimSpace(out)) || csp.Exchanges() != before+1 {
			t.Errorf("admin %s: exit %d, exchanges %d -> %d, stderr %s", addr, code, before, csp.Exchanges(), errOut)
		}
		if errOut != "" {
			t.Errorf("admin %s: a silent fallback expected, stderr %q", addr, errOut)
		}
	}
}
