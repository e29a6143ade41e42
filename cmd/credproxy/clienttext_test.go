package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/credproxy/credproxy/internal/demo"
	"github.com/credproxy/credproxy/internal/logtest"
)

// marker is a word the fake identity services put in their messages: its
// absence from an answer shows that none of their free text reached it.
const marker = "zebracorn"

// clientAnswers gathers what a client of credproxy gets while no token can
// be had: the reverse proxy's 503, the token API's and the local OAuth 2.0
// endpoint's answers.
func clientAnswers(t *testing.T, addrs map[string]string) map[string]string {
	t.Helper()
	out := map[string]string{"reverse proxy 503": get(t, "http://"+addrs["route default"]+"/x")}
	req, _ := http.NewRequest("GET", "http://"+addrs["admin"]+"/v1/token/default", nil)
	req.Header.Set("Metadata", "true")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	out["token API"] = string(b)
	resp, err = http.PostForm("http://"+addrs["admin"]+"/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {"default"}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	out["/oauth2/token"] = string(b)
	return out
}

// readyzHolding polls /readyz until it holds want.
func readyzHolding(t *testing.T, admin, want string) string {
	t.Helper()
	var ready string
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if ready = get(t, "http://"+admin+"/readyz"); strings.Contains(ready, want) {
			return ready
		}
	}
	t.Fatalf("/readyz never held %q: %s", want, ready)
	return ""
}

// TestServiceTextNeverReachesClients: an identity service whose error
// message echoes the client secret in every encoding of logtest.Shapes.
// The answers clients get say credproxy's reason, the status and the
// OAuth 2.0 code, and hold none of the service's text; the log, /readyz
// and check show the message, with no encoding of the secret.
func TestServiceTextNeverReachesClients(t *testing.T) {
	const clientSecret = "cl1ent-S3cret+/=É-0123456789"
	var msg strings.Builder
	msg.WriteString(marker + ": client secret refused:")
	for _, sh := range logtest.Shapes(clientSecret) {
		msg.WriteString(" " + sh.Text)
	}
	idpSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": "invalid_client", "error_description": msg.String()})
	}))
	defer idpSrv.Close()
	_, _, _, echoURL, certFile := fakes(t, demo.CSPOptions{})
	env := map[string]string{
		"CREDPROXY_AUTH": "oauth2-client-credentials", "CREDPROXY_TOKEN_URL": idpSrv.URL + "/oauth2/token",
		"CREDPROXY_CLIENT_ID": "svc", "CREDPROXY_CLIENT_SECRET": clientSecret, "CREDPROXY_UPSTREAM": echoURL,
		"CREDPROXY_LISTEN": "127.0.0.1:0", "CREDPROXY_ADMIN_ADDR": "127.0.0.1:0", "CREDPROXY_TOKEN_API": "true",
		"SSL_CERT_FILE": certFile,
	}
	h := logtest.NewHygiene(t, clientSecret)
	p := start(t, env)
	h.Watch("credproxy's log", p.stderr)
	addrs := p.listeners(t, 2)
	ready := readyzHolding(t, addrs["admin"], marker)
	h.Add("/readyz", ready)
	for where, body := range clientAnswers(t, addrs) {
		h.Add(where, body)
		if strings.Contains(body, marker) || !strings.Contains(body, "identity service answered 401 (invalid_client)") {
			t.Errorf("%s: %s: want credproxy's reason with status and code, no service text", where, body)
		}
	}
	code, out, errOut := runBinary(t, env, "check")
	h.Add("check", out+errOut)
	if code == 0 || !strings.Contains(out, marker) {
		t.Errorf("check: %d %s %s: want the service's message", code, out, errOut)
	}
	if !strings.Contains(p.stderr.String(), marker) {
		t.Errorf("the log lacks the service's message")
	}
}

// TestSecretInFileVariableNotShown: a token put into
// CREDPROXY_CSP_API_TOKEN_FILE by mistake appears nowhere: not in the
// log, /readyz, check's output or the 503 body. The variable is named.
func TestSecretInFileVariableNotShown(t *testing.T) {
	const token = "Zx9kQ2mR7vT4wY8nB3cF6hJ1pL5sD0gA"
	_, cspURL, _, echoURL, certFile := fakes(t, demo.CSPOptions{})
	env := cspEnv(cspURL, "", echoURL, certFile, "CREDPROXY_CSP_API_TOKEN_FILE", token, "CREDPROXY_TOKEN_API", "true",
		"CREDPROXY_LISTEN", "127.0.0.1:0", "CREDPROXY_ADMIN_ADDR", "127.0.0.1:0")
	delete(env, "CREDPROXY_CSP_API_TOKEN")
	h := logtest.NewHygiene(t, token)
	p := start(t, env)
	h.Watch("credproxy's log", p.stderr)
	addrs := p.listeners(t, 2)
	ready := readyzHolding(t, addrs["admin"], "CREDPROXY_CSP_API_TOKEN_FILE")
	h.Add("/readyz", ready)
	if !strings.Contains(ready, "not shown") {
		t.Errorf("/readyz = %s: want the value said to be not shown", ready)
	}
	for where, body := range clientAnswers(t, addrs) {
		h.Add(where, body)
	}
	code, out, errOut := runBinary(t, env, "check")
	h.Add("check", out+errOut)
	if code == 0 || !strings.Contains(out, "CREDPROXY_CSP_API_TOKEN_FILE does not name a readable file") {
		t.Errorf("check: %d %s %s", code, out, errOut)
	}
	if h.Texts() < 6 {
		t.Errorf("only %d texts checked", h.Texts())
	}
}
