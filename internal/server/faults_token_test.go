package server

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/credproxy/credproxy/config"
	"github.com/credproxy/credproxy/internal/demo"
	"github.com/credproxy/credproxy/internal/logtest"
)

// faultAPIToken is the CSP api token of the fault tests.
const faultAPIToken = "e2eflt-ApiTok-5a6b7c8d9e"

// tokenTap wraps the fake CSP: it can make the endpoint drip its answer,
// and it tells the hygiene check every access token issued, so that a
// leak of any of them in a log, an error or an answer fails the test.
type tokenTap struct {
	csp  *demo.CSP
	h    *logtest.Hygiene
	mu   sync.Mutex
	drip bool
}

func (tp *tokenTap) setDrip(on bool) {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	tp.drip = on
}

func (tp *tokenTap) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	tp.mu.Lock()
	drip := tp.drip
	tp.mu.Unlock()
	if drip {
		_, _ = io.Copy(io.Discard, r.Body) // so that a client hang-up ends r.Context()
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"access_token":"`)
		for {
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(100 * time.Millisecond):
				_, _ = io.WriteString(w, "d")
			}
		}
	}
	rec := httptest.NewRecorder()
	tp.csp.ServeHTTP(rec, r)
	var body struct {
		AccessToken, IDToken, RefreshToken string
	}
	if json.Unmarshal(rec.Body.Bytes(), &body) == nil {
		tp.h.Secret(body.AccessToken, body.IDToken, body.RefreshToken)
	}
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

// faultRig is credproxy running in this process (the real server: config,
// exchange, cache, reverse proxy, admin) against a fake CSP and echo API
// on loopback.
type faultRig struct {
	t           *testing.T
	h           *logtest.Hygiene
	csp         *demo.CSP
	tap         *tokenTap
	proxy, admn string
	logs        *logtest.Capture
}

// startFaultRig issues tokens of 6 s (credproxy sees expires_in 5), so a
// whole outage, expiry and recovery fit in seconds: the margin is 0.5 s
// and renewal comes at about 3.3 s.
func startFaultRig(t *testing.T, extraEnv map[string]string) *faultRig {
	t.Helper()
	h := logtest.NewHygiene(t, faultAPIToken)
	csp := demo.NewCSP(demo.CSPOptions{APIToken: faultAPIToken, TTL: 6 * time.Second})
	tap := &tokenTap{csp: csp, h: h}
	cspSrv := httptest.NewServer(tap)
	t.Cleanup(cspSrv.Close)
	echoSrv := httptest.NewServer(demo.NewEcho(csp.Valid, demo.EchoOptions{}))
	t.Cleanup(echoSrv.Close)
	env := map[string]string{
		"CREDPROXY_AUTH":                    "csp-api-token",
		"CREDPROXY_CSP_URL":                 cspSrv.URL,
		"CREDPROXY_CSP_API_TOKEN":           faultAPIToken,
		"CREDPROXY_UPSTREAM":                echoSrv.URL,
		"CREDPROXY_ALLOW_INSECURE_UPSTREAM": "true",
		"CREDPROXY_LISTEN":                  "127.0.0.1:0",
		"CREDPROXY_ADMIN_ADDR":              "127.0.0.1:0",
		"CREDPROXY_TOKEN_WAIT":              "1s",
		"CREDPROXY_LOG_LEVEL":               "debug",
	}
	for k, v := range extraEnv {
		env[k] = v
	}
	cfg, err := config.Load(env)
	if err != nil {
		t.Fatal(err)
	}
	logs := &logtest.Capture{}
	h.Watch("credproxy logs", logs)
	log, err := NewLogger("debug", "json", logs)
	if err != nil {
		t.Fatal(err)
	}
	addrs := make(chan [2]string, 4)
	srv, err := New(cfg, Options{Logger: log, OnListen: func(name, addr string) { addrs <- [2]string{name, addr} }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		if t.Failed() {
			t.Logf("credproxy logs:\n%s", logs)
		}
	})
	r := &faultRig{t: t, h: h, csp: csp, tap: tap}
	for range 2 {
		a := <-addrs
		switch a[0] {
		case "admin":
			r.admn = a[1]
		case "route default":
			r.proxy = a[1]
		}
	}
	r.logs = logs
	r.eventually("ready", 10*time.Second, func() bool { st, _ := r.get(r.admn, "/readyz"); return st == 200 })
	return r
}

// get sends a GET and hands the answer to the hygiene check when it is an
// error page or an admin page.
func (r *faultRig) get(addr, path string) (int, string) {
	r.t.Helper()
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		r.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 500 || addr == r.admn {
		r.h.Add(resp.Status+" "+path, string(b))
	}
	return resp.StatusCode, string(b)
}

func (r *faultRig) eventually(what string, within time.Duration, ok func() bool) {
	r.t.Helper()
	for deadline := time.Now().Add(within); !ok(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			r.t.Fatalf("not %s within %v", what, within)
		}
	}
}

// unavailable503 waits until the held token has expired and checks the
// fail-closed answer: 503 with the JSON body of the contract, whose detail
// says credproxy's reason, never the cause's text (the service's, which
// may echo the secret); /readyz says why, with the cause.
func (r *faultRig) unavailable503(cause string) {
	r.t.Helper()
	var status int
	var body string
	r.eventually("failing closed", 20*time.Second, func() bool { status, body = r.get(r.proxy, "/api/v2/x"); return status == 503 })
	var got struct{ Error, Route, Detail string }
	if err := json.Unmarshal([]byte(body), &got); err != nil || got.Error != "credential_unavailable" || got.Route != "default" ||
		!strings.HasPrefix(got.Detail, "token exchange failed: ") || strings.Contains(got.Detail, cause) {
		r.t.Errorf("503 body %s, want credential_unavailable for route default with credproxy's reason, without %q", body, cause)
	}
	st, ready := r.get(r.admn, "/readyz")
	if st != 503 || !strings.Contains(ready, cause) {
		r.t.Errorf("/readyz %d %s, want 503 with %q", st, ready, cause)
	}
}

// recovered waits for the route to serve again, without a restart.
func (r *faultRig) recovered(within time.Duration) {
	r.t.Helper()
	r.eventually("recovered", within, func() bool { st, _ := r.get(r.proxy, "/api/v2/x"); return st == 200 })
	if st, _ := r.get(r.admn, "/readyz"); st != 200 {
		r.t.Errorf("/readyz %d after recovery", st)
	}
}

// logLine returns the first log line holding text (as JSON escapes it)
// and each of the raw JSON pieces.
func (r *faultRig) logLine(text string, raw ...string) string {
	b, _ := json.Marshal(text)
	for line := range strings.Lines(r.logs.String()) {
		all := strings.Contains(line, string(b[1:len(b)-1]))
		for _, p := range raw {
			all = all && strings.Contains(line, p)
		}
		if all {
			return line
		}
	}
	return ""
}

// TestTokenEndpointFaultsEndToEnd injects faults into the CSP token
// endpoint behind a running credproxy and checks, per fault, what an app
// and an operator see: the app keeps getting answers with the old token
// while it is valid, then 503 JSON naming the cause; the log has the
// status and the service's message; /readyz and /metrics report it; and
// the route recovers by itself once the fault clears.
func TestTokenEndpointFaultsEndToEnd(t *testing.T) {
	tcs := []struct {
		desc  string
		env   map[string]string
		fault func(r *faultRig)
		// cause is in the log line and /readyz, not the 503 detail.
		cause  string
		result string
		// recover: the fault is cleared and the route must serve again
		// within this time; 0 skips (a rejected credential waits 30-60 s
		// before its retry, shown in virtual time by tokencache's tests).
		recover time.Duration
	}{
		{
			desc: "503 outage",
			fault: func(r *faultRig) {
				r.csp.SetFault(demo.Fault{Status: 503, Body: `{"statusCode":503,"message":"Service Unavailable: maintenance"}`})
			},
			cause: "HTTP 503: Service Unavailable: maintenance", result: "unavailable", recover: 30 * time.Second,
		},
		{
			desc: "bad credential",
			fault: func(r *faultRig) {
				r.csp.SetFault(demo.Fault{Status: 400, Body: `{"statusCode":400,"message":"invalid_grant: Invalid refresh token: ****9e"}`})
			},
			cause: "HTTP 400: invalid_grant: Invalid refresh token: ****9e", result: "rejected",
		},
		{
			desc:  "hang bounded by EXCHANGE_TIMEOUT",
			env:   map[string]string{"CREDPROXY_EXCHANGE_TIMEOUT": "1s"},
			fault: func(r *faultRig) { r.csp.SetFault(demo.Fault{Delay: time.Hour}) },
			cause: "context deadline exceeded", result: "timeout", recover: 30 * time.Second,
		},
		{
			desc:  "slow-drip body bounded by EXCHANGE_TIMEOUT",
			env:   map[string]string{"CREDPROXY_EXCHANGE_TIMEOUT": "1s"},
			fault: func(r *faultRig) { r.tap.setDrip(true) },
			cause: "read answer: context deadline exceeded", result: "timeout", recover: 30 * time.Second,
		},
		{
			desc: "HTML error page",
			fault: func(r *faultRig) {
				r.csp.SetFault(demo.Fault{Status: 502, ContentType: "text/html", Body: "<html><h1>502 Bad Gateway</h1></html>"})
			},
			cause: "HTTP 502: answer is not JSON (text/html, 37 bytes)", result: "unavailable", recover: 30 * time.Second,
		},
		{
			desc: "200 without access_token",
			fault: func(r *faultRig) {
				r.csp.SetFault(demo.Fault{Status: 200, Body: `{"token_type":"bearer","expires_in":1799}`})
			},
			cause: "HTTP 200: answer has no access_token", result: "invalid_response", recover: 30 * time.Second,
		},
	}
	for _, tc := range tcs {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			r := startFaultRig(t, tc.env)
			tc.fault(r)
			if st, body := r.get(r.proxy, "/api/v2/x"); st != 200 {
				t.Fatalf("with the fault just set: %d %s, want the old token served", st, body)
			}
			r.unavailable503(tc.cause)
			line := r.logLine(tc.cause, `"result":"`+tc.result+`"`)
			if line == "" {
				t.Errorf("no log line with %q and result %s", tc.cause, tc.result)
			}
			if tc.result == "rejected" && !strings.Contains(line, `"level":"error"`) {
				t.Errorf("a rejected credential must be logged as an error: %s", line)
			}
			if _, m := r.get(r.admn, "/metrics"); !strings.Contains(m, `credproxy_exchanges_total{kind="csp-api-token",result="`+tc.result+`",route="default"}`) {
				t.Errorf("/metrics lacks the failed exchanges by result %s", tc.result)
			}
			if tc.recover == 0 {
				return
			}
			r.csp.ClearFault()
			r.tap.setDrip(false)
			r.recovered(tc.recover)
		})
	}
}

// TestRetryAfterHonouredEndToEnd: every exchange gets a 429 with
// Retry-After: 3. While the held 6 s token is usable (for 1.5 s at most
// after its renewal), the retry comes sooner than 3 s, or it would expire
// for want of one; once it has stopped being usable, the next exchange
// is held back at least 3 s, as the service asks.
func TestRetryAfterHonouredEndToEnd(t *testing.T) {
	t.Parallel()
	r := startFaultRig(t, nil)
	r.csp.SetFault(demo.Fault{Status: 429, RetryAfter: "3", Body: `{"message":"Too many requests"}`})
	before := len(r.csp.Requests())
	r.eventually("four refused exchanges", 30*time.Second, func() bool { return len(r.csp.Requests()) >= before+4 })
	reqs := r.csp.Requests()[before:]
	if gap := reqs[1].Time.Sub(reqs[0].Time); gap >= 3*time.Second {
		t.Errorf("retry %v after the first 429, while the held token was usable for less than 2 s: want it before the token stops being usable", gap)
	}
	if gap := reqs[3].Time.Sub(reqs[2].Time); gap < 3*time.Second {
		t.Errorf("retry %v after a 429 with Retry-After: 3 and no usable token, want at least 3 s", gap)
	}
	// The wait is the larger of Retry-After and the backoff's jitter, so
	// the log names what the service asked; the gap above checks the wait.
	if line := r.logLine("HTTP 429: Too many requests", `"retry_after":"3s"`, `"old_token_usable_for":"0s"`); line == "" {
		t.Errorf("no log line with the 429, retry_after 3s and no usable token")
	}
	r.csp.ClearFault()
	r.recovered(30 * time.Second)
}

// TestRetryAfterNeverLetsTokenExpireEndToEnd: one 429 asking for an hour,
// on the renewal of a 6 s token, while the service answers again at once:
// credproxy retries while the held token is still usable, so an app
// calling five times a second for two lifetimes never gets a 503, and the
// log says that the service's wish was cut short, with both durations.
// (REFRESH_AT 0.5 renews 1.5-2.5 s before the token stops being usable,
// leaving the 1 s gap between two exchanges room on a loaded machine.)
func TestRetryAfterNeverLetsTokenExpireEndToEnd(t *testing.T) {
	t.Parallel()
	r := startFaultRig(t, map[string]string{"CREDPROXY_REFRESH_AT": "0.5"})
	r.csp.SetFault(demo.Fault{Status: 429, RetryAfter: "3600", Body: `{"message":"Too many requests"}`, Times: 1})
	var failed []int
	for deadline := time.Now().Add(12 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if st, _ := r.get(r.proxy, "/api/v2/x"); st != 200 {
			failed = append(failed, st)
		}
	}
	if r.logLine("HTTP 429: Too many requests") == "" {
		t.Fatal("the service's 429 never came")
	}
	if len(failed) > 0 {
		t.Errorf("%d requests failed (%v) after one 429 with Retry-After: 3600", len(failed), failed)
	}
	if line := r.logLine("Retry-After", `"level":"warn"`, `"retry_after":"1h0m0s"`, `"retry_in":"`); line == "" {
		t.Error("no warning that the Retry-After was cut short, with both durations")
	}
}
