package main

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/credproxy/credproxy/config"
	"github.com/credproxy/credproxy/internal/demo"
	"github.com/credproxy/credproxy/internal/identity"
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

	// credproxy token, configured as the running credproxy: its token,
	// no exchange of its own, and stderr names where it came from.
	exchanges := csp.Exchanges()
	cmdEnv := copyEnv(env, "CREDPROXY_ADMIN_ADDR", admin)
	code, out, errOut := runBinary(t, cmdEnv, "token")
	if code != 0 || strings.TrimSpace(out) != tr.AccessToken || csp.Exchanges() != exchanges {
		t.Errorf("credproxy token: exit %d, exchanges %d -> %d, did not print the running credproxy's token (stderr %s)",
			code, exchanges, csp.Exchanges(), errOut)
	}
	if want := "token from the credproxy at " + admin + " (route default)"; !strings.Contains(errOut, want) {
		t.Errorf("credproxy token: stderr %q lacks %q", errOut, want)
	}

	// With another API token it is another identity: never the running
	// credproxy's token, and its own exchange fails (the CSP refuses it).
	code, out, errOut = runBinary(t, copyEnv(cmdEnv, "CREDPROXY_CSP_API_TOKEN", wrongToken), "token")
	if code != 1 || strings.Contains(out, tr.AccessToken) || !strings.Contains(errOut, "as another identity") {
		t.Errorf("credproxy token for another identity: exit %d, stdout %q, stderr %s", code, out, errOut)
	}

	// Without a secret it may ask: the kind and CSP_URL match, or nothing
	// is configured at all and the route name alone decides.
	for desc, e := range map[string]map[string]string{
		"no secret": copyEnv(cmdEnv, "CREDPROXY_CSP_API_TOKEN", ""),
		"nothing":   {"CREDPROXY_ADMIN_ADDR": admin},
	} {
		code, out, errOut = runBinary(t, e, "token")
		if code != 0 || strings.TrimSpace(out) != tr.AccessToken || !strings.Contains(errOut, "token from the credproxy at "+admin) {
			t.Errorf("credproxy token, %s configured: exit %d, did not print the running credproxy's token (stderr %s)", desc, code, errOut)
		}
	}
	// ...but with another CSP_URL it is another principal: no token, and
	// without a secret no exchange either (exit 2, the missing variable).
	code, out, errOut = runBinary(t, copyEnv(cmdEnv, "CREDPROXY_CSP_API_TOKEN", "", "CREDPROXY_CSP_URL", "https://csp.invalid"), "token")
	if code != 2 || strings.Contains(out, tr.AccessToken) || !strings.Contains(errOut, "CREDPROXY_CSP_API_TOKEN: required") {
		t.Errorf("credproxy token, no secret, another CSP: exit %d, stdout %q, stderr %s", code, out, errOut)
	}

	for _, s := range []string{st, p.stderr.String(), errOut} {
		logtest.AssertNoSecrets(t, "status.json, logs and stderr", s, tr.AccessToken, apiToken)
	}
}

// copyEnv returns env with the given key, value pairs set; an empty value
// removes the key.
func copyEnv(env map[string]string, kv ...string) map[string]string {
	out := map[string]string{}
	for k, v := range env {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "" {
			delete(out, kv[i])
			continue
		}
		out[kv[i]] = kv[i+1]
	}
	return out
}

// closedAddr returns a loopback address where nothing listens: that of a
// listener just closed.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// fakeTokenAPI serves a token API that hands out token for route
// "default" with the given fingerprints (none when both are empty), as
// another credproxy (or something posing as one) would.
func fakeTokenAPI(t *testing.T, token, principal, identity string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/token/default" || r.Header.Get("Metadata") != "true" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": token, "token_type": "Bearer",
			"expires_in": 3600, "principal": principal, "identity": identity})
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// TestTokenCommandChecksIdentity: a credproxy answering on the admin
// address for another identity (a demo, another user's) never has its
// token printed; one answering for this identity does, and stderr says
// which answered.
func TestTokenCommandChecksIdentity(t *testing.T) {
	const apiToken = "ident-77e1-4c2b-9a0d"
	const theirs = "their-token-d41d8cd98f"
	csp, cspURL, _, echoURL, certFile := fakes(t, demo.CSPOptions{APIToken: apiToken, TTL: time.Hour})
	env := cspEnv(cspURL, apiToken, echoURL, certFile)
	cfg, err := config.Load(env)
	if err != nil {
		t.Fatal(err)
	}
	mine, err := identity.Of(cfg.Routes[0])
	if err != nil {
		t.Fatal(err)
	}
	tcs := []struct {
		desc, principal, identity string
		used                      bool
	}{
		{desc: "another identity", principal: mine.Principal, identity: "pbkdf2-sha256:0123456789abcdef"},
		{desc: "another principal", principal: "sha256:0123456789abcdef", identity: "pbkdf2-sha256:0123456789abcdef"},
		{desc: "no identity (an older credproxy)"},
		{desc: "this identity", principal: mine.Principal, identity: mine.Identity, used: true},
	}
	for _, tc := range tcs {
		t.Run(tc.desc, func(t *testing.T) {
			addr := fakeTokenAPI(t, theirs, tc.principal, tc.identity)
			before := csp.Exchanges()
			code, out, errOut := runBinary(t, copyEnv(env, "CREDPROXY_ADMIN_ADDR", addr), "token")
			printed := strings.TrimSpace(out)
			switch {
			case code != 0:
				t.Errorf("exit %d, stderr %s", code, errOut)
			case tc.used && (printed != theirs || csp.Exchanges() != before ||
				!strings.Contains(errOut, "token from the credproxy at "+addr+" (route default)")):
				t.Errorf("the matching credproxy's token was not used: exchanges %d -> %d, stderr %s", before, csp.Exchanges(), errOut)
			case !tc.used && (printed == theirs || !csp.Valid(printed) || !strings.Contains(errOut, "token from a fresh exchange")):
				t.Errorf("printed %q, stderr %s: want a fresh token, not theirs", printed, errOut)
			}
		})
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

	for _, addr := range []string{admin, closedAddr(t)} {
		cmdEnv := copyEnv(env, "CREDPROXY_ADMIN_ADDR", addr)
		before := csp.Exchanges()
		code, out, errOut := runBinary(t, cmdEnv, "token")
		if code != 0 || !csp.Valid(strings.TrimSpace(out)) || csp.Exchanges() != before+1 {
			t.Errorf("admin %s: exit %d, exchanges %d -> %d, stderr %s", addr, code, before, csp.Exchanges(), errOut)
		}
		if errOut != "credproxy token: token from a fresh exchange\n" {
			t.Errorf("admin %s: stderr %q, want only where the token came from", addr, errOut)
		}
	}
}
