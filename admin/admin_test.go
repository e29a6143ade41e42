package admin

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/credproxy/credproxy/exchange"
	"github.com/credproxy/credproxy/internal/jsonerror"
	"github.com/credproxy/credproxy/internal/secret"
	"github.com/credproxy/credproxy/tokenapi"
	"github.com/credproxy/credproxy/tokencache"
)

func TestAdmin(t *testing.T) {
	reg := prometheus.NewRegistry()
	ready := tokencache.Status{Route: "a", State: "valid", Ready: true}
	pending := tokencache.Status{Route: "b", State: "pending", LastError: "csp: HTTP 503"}
	cur := []tokencache.Status{ready, pending}
	var mu sync.Mutex
	statuses := []func() tokencache.Status{
		func() tokencache.Status { mu.Lock(); defer mu.Unlock(); return cur[0] },
		func() tokencache.Status { mu.Lock(); defer mu.Unlock(); return cur[1] },
	}
	// Route a's gauges come from a token cache registered on reg, as
	// credproxy's are: /metrics serves whatever reg holds.
	startCache(t, "a", tokencache.NewMetrics(reg))
	admin := New(Options{Registry: reg, Routes: []Route{{Name: "a", Status: statuses[0]}, {Name: "b", Status: statuses[1]}}})
	srv := httptest.NewServer(admin)
	defer srv.Close()

	get := func(path string) (int, string) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Errorf("/healthz = %d", code)
	}
	code, body := get("/readyz")
	if code != 503 || !strings.Contains(body, `"state": "pending"`) || !strings.Contains(body, "csp: HTTP 503") {
		t.Errorf("/readyz with a pending route = %d %s", code, body)
	}
	mu.Lock()
	cur[1] = tokencache.Status{Route: "b", State: "valid", Ready: true}
	mu.Unlock()
	if code, body := get("/readyz"); code != 200 {
		t.Errorf("/readyz all ready = %d %s", code, body)
	}
	admin.ShuttingDown()
	if code, body := get("/readyz"); code != 503 || !strings.Contains(body, "shutting_down") {
		t.Errorf("/readyz while shutting down = %d %s", code, body)
	}
	if code, body := get("/metrics"); code != 200 || !strings.Contains(body, `credproxy_route_ready{route="a"} 1`) {
		t.Errorf("/metrics = %d, lacks the route gauge", code)
	}
}

// startCache runs a token cache for route over a source that always
// answers, with m, and returns once it holds a token.
func startCache(t *testing.T, route string, m *tokencache.Metrics) *tokencache.Cache {
	t.Helper()
	src := exchange.SourceFunc(func(context.Context) (exchange.Token, error) {
		return exchange.Token{Value: secret.New("admin-test-static")}, nil
	})
	cache := tokencache.New(src, tokencache.Options{Route: route, Kind: "static", Metrics: m})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); cache.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	if _, err := cache.Token(ctx); err != nil {
		t.Fatal(err)
	}
	return cache
}

// switchedOff asserts resp is the 404 JSON error body of a switched-off
// endpoint naming variable.
func switchedOff(t *testing.T, what string, resp *http.Response, variable string) {
	t.Helper()
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var body jsonerror.Body
	if err := json.Unmarshal(b, &body); err != nil || resp.StatusCode != 404 || body.Error != "endpoint_off" ||
		!strings.Contains(body.Detail, variable) || resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("%s: %d %q, want 404 endpoint_off naming %s", what, resp.StatusCode, b, variable)
	}
}

// TestTokenAPIOffByDefault: without a TokenAPI handler the admin listener
// has no token API, and says how to switch it on.
func TestTokenAPIOffByDefault(t *testing.T) {
	admin := New(Options{Registry: prometheus.NewRegistry()})
	srv := httptest.NewServer(admin)
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL+"/v1/token/default", nil)
	req.Header.Set("Metadata", "true")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	switchedOff(t, "token API without a TokenAPI handler", resp, "CREDPROXY_TOKEN_API=true")
}

// TestOAuth2OffByDefault: without an OAuth2 handler the admin listener
// has no OAuth 2.0 token endpoint, and says how to switch it on.
func TestOAuth2OffByDefault(t *testing.T) {
	srv := httptest.NewServer(New(Options{Registry: prometheus.NewRegistry()}))
	defer srv.Close()
	resp, err := http.PostForm(srv.URL+tokenapi.OAuth2TokenPath, url.Values{"grant_type": {"client_credentials"}, "client_id": {"default"}})
	if err != nil {
		t.Fatal(err)
	}
	switchedOff(t, "OAuth 2.0 endpoint without a handler", resp, "CREDPROXY_TOKEN_API=true")
}

// TestCAOffByDefault: without the forward proxy there is no CA, and
// /ca.pem says which variable turns the forward proxy on.
func TestCAOffByDefault(t *testing.T) {
	srv := httptest.NewServer(New(Options{Registry: prometheus.NewRegistry()}))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/ca.pem")
	if err != nil {
		t.Fatal(err)
	}
	switchedOff(t, "/ca.pem without a CA", resp, "CREDPROXY_FORWARD_ADDR")
}

// TestMountsWhatItIsGiven: the token API, the OAuth 2.0 endpoint and the
// CA are served where they belong when given, and /metrics only with a
// registry.
func TestMountsWhatItIsGiven(t *testing.T) {
	mark := func(name string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, name) })
	}
	srv := httptest.NewServer(New(Options{TokenAPI: mark("tokenapi"), OAuth2: mark("oauth2"), CA: func() []byte { return []byte("PEM") }}))
	defer srv.Close()
	for path, want := range map[string]string{"/v1/token/r": "tokenapi", "/oauth2/token": "oauth2", "/ca.pem": "PEM", "/metrics": "404 page not found\n"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != want {
			t.Errorf("%s: %q, want %q", path, b, want)
		}
	}
}
