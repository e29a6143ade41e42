package tokenapi

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/credproxy/credproxy/exchange"
	"github.com/credproxy/credproxy/internal/logtest"
	"github.com/credproxy/credproxy/internal/secret"
	"github.com/credproxy/credproxy/tokencache"
)

const apiTestToken = "tokapi-SECRET-7f3a9c"

// startTokenAPI serves an admin listener with the token API over routes
// "wf" (a token expiring in an hour, Bearer), "sf" (no prefix, no expiry)
// and "down" (no token to be had).
func startTokenAPI(t *testing.T) (*httptest.Server, *prometheus.Registry, *logtest.Capture) {
	t.Helper()
	log, logs := logtest.New(t)
	m := prometheus.NewRegistry()
	mux := newMux(Options{Metrics: NewMetrics(m), Logger: log, Routes: []Route{
		{Name: "wf", TokenType: "Bearer", Tokens: &fakeTokens{tok: exchange.Token{Value: secret.New(apiTestToken), Expiry: time.Now().Add(time.Hour)}}},
		{Name: "sf", Tokens: &fakeTokens{tok: exchange.Token{Value: secret.New(apiTestToken + "-static")}}},
		{Name: "down", TokenType: "Bearer", Tokens: &fakeTokens{err: &tokencache.UnavailableError{Route: "down", Detail: "csp: HTTP 400: invalid_grant"}}},
	}})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, m, logs
}

type apiAnswer struct {
	status int
	header http.Header
	body   string
}

func callTokenAPI(t *testing.T, method, url string, header map[string]string, host string) apiAnswer {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	if host != "" {
		req.Host = host
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return apiAnswer{resp.StatusCode, resp.Header, string(b)}
}

func TestTokenAPIAnswersWithToken(t *testing.T) {
	srv, m, logs := startTokenAPI(t)
	before := time.Now()
	got := callTokenAPI(t, "GET", srv.URL+"/v1/token/wf", map[string]string{"Metadata": "true"}, "")
	if got.status != 200 {
		t.Fatalf("status %d %s", got.status, got.body)
	}
	if cc := got.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", cc)
	}
	if ct := got.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	var body map[string]any
	if err := json.Unmarshal([]byte(got.body), &body); err != nil {
		t.Fatal(err)
	}
	if body["access_token"] != apiTestToken || body["token_type"] != "Bearer" {
		t.Errorf("body %s", got.body)
	}
	if in, _ := body["expires_in"].(float64); in < 3590 || in > 3600 {
		t.Errorf("expires_in = %v, want about 3600", body["expires_in"])
	}
	at, err := time.Parse(time.RFC3339, body["expires_at"].(string))
	if err != nil || at.Before(before.Add(time.Hour).Add(-time.Second)) || at.After(time.Now().Add(time.Hour)) {
		t.Errorf("expires_at = %v (%v)", body["expires_at"], err)
	}
	if len(body) != 4 {
		t.Errorf("want exactly access_token, token_type, expires_in, expires_at; got %s", got.body)
	}

	// A token without expiry: expires_in 0, no expires_at.
	got = callTokenAPI(t, "GET", srv.URL+"/v1/token/sf", map[string]string{"Metadata": "True"}, "localhost")
	var static Response
	if err := json.Unmarshal([]byte(got.body), &static); err != nil || got.status != 200 {
		t.Fatalf("%d %s %v", got.status, got.body, err)
	}
	if diff := cmp.Diff(Response{AccessToken: apiTestToken + "-static", TokenType: "Bearer"}, static); diff != "" || strings.Contains(got.body, "expires_at") {
		t.Errorf("static token (-want +got):\n%s%s", diff, got.body)
	}
	if n := counterValue(t, m, "credproxy_token_api_requests_total", "route", "wf"); n != 1 {
		t.Errorf("token API requests for wf = %v, want 1", n)
	}
	if !strings.Contains(logs.String(), "token handed out") {
		t.Error("handing out a token is not logged")
	}
	logtest.AssertNoSecrets(t, "logs", logs.String(), apiTestToken)
}

func TestTokenAPIRefusals(t *testing.T) {
	srv, m, logs := startTokenAPI(t)
	md := map[string]string{"Metadata": "true"}
	with := func(k, v string) map[string]string { return map[string]string{"Metadata": "true", k: v} }
	tcs := []struct {
		desc   string
		method string
		path   string
		header map[string]string
		host   string
		status int
		error  string
	}{
		{"no Metadata header", "GET", "/v1/token/wf", nil, "", 403, "forbidden"},
		{"Metadata false", "GET", "/v1/token/wf", map[string]string{"Metadata": "false"}, "", 403, "forbidden"},
		{"through a proxy", "GET", "/v1/token/wf", with("X-Forwarded-For", "10.0.0.9"), "", 403, "forbidden"},
		{"Forwarded", "GET", "/v1/token/wf", with("Forwarded", "for=10.0.0.9"), "", 403, "forbidden"},
		{"browser Origin", "GET", "/v1/token/wf", with("Origin", "http://127.0.0.1:9901"), "", 403, "forbidden"},
		{"browser fetch metadata", "GET", "/v1/token/wf", with("Sec-Fetch-Site", "same-origin"), "", 403, "forbidden"},
		{"DNS rebinding host", "GET", "/v1/token/wf", md, "attacker.example:9901", 403, "forbidden"},
		{"POST", "POST", "/v1/token/wf", md, "", 405, "method_not_allowed"},
		{"HEAD", "HEAD", "/v1/token/wf", md, "", 405, ""},
		{"unknown route", "GET", "/v1/token/nope", md, "", 404, "unknown_route"},
		{"no route", "GET", "/v1/token/", md, "", 404, "unknown_route"},
		{"nested path", "GET", "/v1/token/wf/x", md, "", 404, "unknown_route"},
		{"no valid token", "GET", "/v1/token/down", md, "", 503, "credential_unavailable"},
	}
	for _, tc := range tcs {
		t.Run(tc.desc, func(t *testing.T) {
			got := callTokenAPI(t, tc.method, srv.URL+tc.path, tc.header, tc.host)
			if got.status != tc.status {
				t.Errorf("status %d, want %d (%s)", got.status, tc.status, got.body)
			}
			if cc := got.header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control = %q", cc)
			}
			if strings.Contains(got.body, apiTestToken) {
				t.Errorf("refusal carries the token: %s", got.body)
			}
			if tc.error == "" {
				return
			}
			var body errorBody
			if err := json.Unmarshal([]byte(got.body), &body); err != nil || body.Error != tc.error || body.Detail == "" {
				t.Errorf("body %s (%v), want error %q with a detail", got.body, err, tc.error)
			}
			if tc.status == 405 && got.header.Get("Allow") != "GET" {
				t.Errorf("Allow = %q", got.header.Get("Allow"))
			}
		})
	}
	if n := counterValue(t, m, "credproxy_token_api_requests_total", "status", "403"); n != 7 {
		t.Errorf("403s counted %v, want 7", n)
	}
	logtest.AssertNoSecrets(t, "logs", logs.String(), apiTestToken)
}

// TestTokenAPIRefusesProxiedRequests: a request that says it came through
// a proxy (Via, Forwarded, any X-Forwarded-*, X-Real-Ip, the client-IP
// headers of CDNs and load balancers, and their spellings with
// underscores, which some proxies pass on) gets no token.
func TestTokenAPIRefusesProxiedRequests(t *testing.T) {
	srv, _, logs := startTokenAPI(t)
	for _, h := range proxyHeaderSpellings {
		a := callTokenAPI(t, "GET", srv.URL+"/v1/token/wf", map[string]string{"Metadata": "true", h: "1.1 other"}, "")
		if a.status != http.StatusForbidden || strings.Contains(a.body, apiTestToken) {
			t.Errorf("token API with %s = %d %q, want 403", h, a.status, a.body)
		}
	}
	logtest.AssertNoSecrets(t, "logs", logs.String(), apiTestToken)
}

// proxyHeaderSpellings are headers a proxy on the way adds.
var proxyHeaderSpellings = []string{"Via", "Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Real-Ip",
	"X_Forwarded_For", "x_forwarded_host", "X-Forwarded", "X_Real_IP", "True-Client-IP", "Client-IP", "CF-Connecting-IP",
	"Fastly-Client-IP", "X-Cluster-Client-IP", "X-Client-IP", "X-Original-Forwarded-For", "X-ProxyUser-Ip", "X-Envoy-External-Address"}

// TestTokenAPIsAnswerLoopbackCallersOnly: an admin listener bound to
// 0.0.0.0 (as in Kubernetes, for the kubelet's probes) still hands no
// token to a caller from another address, on either token API.
func TestTokenAPIsAnswerLoopbackCallersOnly(t *testing.T) {
	log, logs := logtest.New(t)
	mux := newMux(Options{Logger: log, Routes: []Route{{Name: "wf", TokenType: "Bearer", Tokens: &fakeTokens{tok: exchange.Token{Value: secret.New(apiTestToken)}}}}})
	for _, remote := range []string{"10.1.2.3:40000", "[fd00::7]:40000", "192.168.1.9:1"} {
		for _, req := range []*http.Request{
			httptest.NewRequest("GET", "http://127.0.0.1:9901/v1/token/wf", nil),
			httptest.NewRequest("POST", "http://127.0.0.1:9901/oauth2/token", strings.NewReader("grant_type=client_credentials&client_id=wf")),
		} {
			req.RemoteAddr = remote
			req.Header.Set("Metadata", "true")
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			w := httptest.NewRecorder()
			mux.ServeHTTP(w, req)
			if w.Code == http.StatusOK || strings.Contains(w.Body.String(), apiTestToken) {
				t.Errorf("%s %s from %s = %d %s, want no token", req.Method, req.URL.Path, remote, w.Code, w.Body)
			}
		}
	}
	req := httptest.NewRequest("GET", "http://127.0.0.1:9901/v1/token/wf", nil)
	req.RemoteAddr = "[::1]:40000"
	req.Header.Set("Metadata", "true")
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, req)
	if w.Code != http.StatusOK {
		t.Errorf("a loopback caller (::1) = %d %s, want the token", w.Code, w.Body)
	}
	logtest.AssertNoSecrets(t, "logs", logs.String(), apiTestToken)
}
