package proxy

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/zap"

	"github.com/credproxy/credproxy/exchange"
	"github.com/credproxy/credproxy/internal/logtest"
	"github.com/credproxy/credproxy/internal/promtest"
	"github.com/credproxy/credproxy/internal/secret"
	"github.com/credproxy/credproxy/tokencache"
)

// upstream is a TLS test API that accepts the tokens in valid and records
// what it received.
type upstream struct {
	srv      *httptest.Server
	mu       sync.Mutex
	valid    map[string]bool
	requests []seen
	handler  http.HandlerFunc // when set, serves authorised requests
	conns    atomic.Int32     // TCP connections accepted
}

type seen struct {
	Proto                     string
	Method, Path, Query, Auth string
	Header                    http.Header
	Body                      string
}

func newUpstream(t *testing.T, valid ...string) *upstream {
	t.Helper()
	u := &upstream{valid: map[string]bool{}}
	for _, v := range valid {
		u.valid[v] = true
	}
	u.srv = httptest.NewUnstartedServer(http.HandlerFunc(u.serve))
	u.srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			u.conns.Add(1)
		}
	}
	// Offers HTTP/2, as SaaS APIs do: credproxy speaks it only for
	// clients that do.
	u.srv.EnableHTTP2 = true
	u.srv.StartTLS()
	t.Cleanup(u.srv.Close)
	return u
}

func (u *upstream) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	u.mu.Lock()
	u.requests = append(u.requests, seen{Proto: r.Proto, Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Auth: r.Header.Get("Authorization"), Header: r.Header.Clone(), Body: string(body)})
	ok := u.valid[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
	h := u.handler
	u.mu.Unlock()
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		http.Error(w, `{"error":"invalid_token"}`, http.StatusUnauthorized)
		return
	}
	if h != nil {
		h(w, r)
		return
	}
	fmt.Fprintf(w, "hello %s", r.URL.Path)
}

func (u *upstream) seen() []seen {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]seen(nil), u.requests...)
}

func (u *upstream) url(t testing.TB) *url.URL {
	v, err := url.Parse(u.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// transport trusts the test upstream's certificate, and nothing else.
func (u *upstream) transport() *Transport {
	pool := x509.NewCertPool()
	pool.AddCert(u.srv.Certificate())
	return NewTransport(pool)
}

// fakeTokens serves a fixed token or error.
type fakeTokens struct {
	tok exchange.Token
	err error
}

func (f *fakeTokens) Token(context.Context) (exchange.Token, error) { return f.tok, f.err }
func (f *fakeTokens) Invalidate(context.Context, exchange.Token) (exchange.Token, error) {
	return exchange.Token{}, &tokencache.UnavailableError{Route: "r", Detail: "no other token"}
}

// startReverse serves a route's reverse proxy on loopback.
func startReverse(t *testing.T, up *upstream, tokens Tokens, log *zap.Logger) (*httptest.Server, *Metrics) {
	t.Helper()
	m := NewMetrics(prometheus.NewRegistry())
	route := mustRoute(t, RouteOptions{Name: "r", Upstream: up.url(t), Header: "Authorization", Prefix: "Bearer", Tokens: tokens})
	srv := httptest.NewServer(NewReverse(route, up.transport(), m, log))
	t.Cleanup(srv.Close)
	return srv, m
}

func TestInjectionReplacesClientCredential(t *testing.T) {
	log, logs := logtest.New(t)
	up := newUpstream(t, "good-token-1234")
	px, _ := startReverse(t, up, &fakeTokens{tok: exchange.Token{Value: secret.New("good-token-1234")}}, log)

	req, _ := http.NewRequest("GET", px.URL+"/api/v2/source?q=1", nil)
	req.Header.Set("Authorization", "Bearer client-own-token")
	req.Header.Set("Connection", "X-Hop")
	req.Header.Set("X-Hop", "must not pass")
	req.Header.Set("X-Keep", "passes")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "hello /api/v2/source" {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	got := up.seen()[0]
	if got.Auth != "Bearer good-token-1234" || got.Path != "/api/v2/source" || got.Query != "q=1" {
		t.Errorf("upstream saw %+v", got)
	}
	if got.Header.Get("X-Hop") != "" || got.Header.Get("X-Keep") != "passes" {
		t.Errorf("hop-by-hop handling wrong: %v", got.Header)
	}
	if vals := got.Header.Values("Authorization"); len(vals) != 1 {
		t.Errorf("upstream got %d Authorization values", len(vals))
	}
	logtest.AssertNoSecrets(t, "logs", logs.String(), "good-token-1234", "client-own-token")
}

func TestFailClosed(t *testing.T) {
	log, logs := logtest.New(t)
	up := newUpstream(t)
	px, _ := startReverse(t, up, &fakeTokens{err: &tokencache.UnavailableError{Route: "r", Detail: "csp: HTTP 400: invalid_grant"}}, log)
	resp, err := http.Post(px.URL+"/api/v2/event", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body errorBody
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	want := errorBody{Error: "credential_unavailable", Route: "r", Detail: "csp: HTTP 400: invalid_grant"}
	if resp.StatusCode != 503 || !cmp.Equal(body, want) || resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("got %d %+v, want 503 %+v", resp.StatusCode, body, want)
	}
	if n := len(up.seen()); n != 0 {
		t.Errorf("upstream received %d requests without a credential", n)
	}
	if !strings.Contains(logs.String(), "no valid credential") {
		t.Errorf("refusal not logged")
	}
}

// cacheOver starts a real tokencache over a source issuing tok-1, tok-2...
func cacheOver(t *testing.T, prefix string, exchanges *atomic.Int32) *tokencache.Cache {
	t.Helper()
	src := exchange.SourceFunc(func(context.Context) (exchange.Token, error) {
		n := exchanges.Add(1)
		return exchange.Token{Value: secret.New(fmt.Sprintf("%s-%d", prefix, n)), Expiry: time.Now().Add(time.Hour)}, nil
	})
	c := tokencache.New(src, tokencache.Options{Route: "r"})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return c
}

func TestConcurrent401sOneRenewalAllReplayed(t *testing.T) {
	log, logs := logtest.New(t)
	var exchanges atomic.Int32
	cache := cacheOver(t, "tokenvalue", &exchanges)
	if _, err := cache.Token(context.Background()); err != nil {
		t.Fatal(err)
	}
	up := newUpstream(t, "tokenvalue-2") // tok 1 is already revoked upstream
	px, m := startReverse(t, up, cache, log)

	const n = 200
	var wg sync.WaitGroup
	statuses := make(chan int, n)
	for i := range n {
		wg.Go(func() {
			resp, err := http.Post(px.URL+"/report", "text/plain", strings.NewReader(fmt.Sprintf("point %d", i)))
			if err != nil {
				t.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			statuses <- resp.StatusCode
		})
	}
	wg.Wait()
	close(statuses)
	for s := range statuses {
		if s != 200 {
			t.Fatalf("a request ended with %d", s)
		}
	}
	if got := exchanges.Load(); got != 2 {
		t.Errorf("exchanges = %d, want 2 (start + exactly one renewal)", got)
	}
	bodies := map[string]int{}
	rejected := 0
	for _, s := range up.seen() {
		switch s.Auth {
		case "Bearer tokenvalue-2":
			bodies[s.Body]++
		case "Bearer tokenvalue-1":
			rejected++
		}
	}
	if len(bodies) != n {
		t.Errorf("%d distinct bodies sent with the new token, want %d", len(bodies), n)
	}
	// Requests that reached credproxy after the renewal carry the new
	// token at once; every one that got the 401 was replayed.
	if got := counterValue(t, m, "credproxy_upstream_401_total", "outcome", "replayed"); got != float64(rejected) || rejected == 0 {
		t.Errorf("replay metric = %v, want %d (the requests rejected with the old token)", got, rejected)
	}
	logtest.AssertNoSecrets(t, "logs", logs.String(), "tokenvalue-1", "tokenvalue-2")
}

func TestLargeBodyIsNotReplayed(t *testing.T) {
	log, _ := logtest.New(t)
	var exchanges atomic.Int32
	cache := cacheOver(t, "tokenvalue", &exchanges)
	up := newUpstream(t, "tokenvalue-2")
	px, _ := startReverse(t, up, cache, log)

	big := bytes.Repeat([]byte("x"), MaxReplayBody+1)
	resp, err := http.Post(px.URL+"/report", "text/plain", bytes.NewReader(big))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("status = %d, want the upstream's 401", resp.StatusCode)
	}
	if n := len(up.seen()); n != 1 || len(up.seen()[0].Body) != len(big) {
		t.Errorf("upstream saw %d requests, want 1 with the whole body", n)
	}
	// The 401 renewed the token although the request could not be
	// replayed, so that the client's retry carries the new one.
	if got := exchanges.Load(); got != 2 {
		t.Errorf("exchanges = %d, want 2 (start + one renewal on the 401)", got)
	}

	// A body of unknown length under the cap is buffered and replayed.
	resp, err = http.Post(px.URL+"/report", "text/plain", io.MultiReader(strings.NewReader("chunked "), strings.NewReader("body")))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("chunked small body: status = %d, want 200 after replay", resp.StatusCode)
	}
	last := up.seen()[len(up.seen())-1]
	if last.Body != "chunked body" || last.Auth != "Bearer tokenvalue-2" {
		t.Errorf("replayed request = %+v", last)
	}
}

func TestStreamingFlushedAsItComes(t *testing.T) {
	log, _ := logtest.New(t)
	up := newUpstream(t, "tok-stream-0001")
	release := make(chan struct{})
	up.handler = func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-ndjson")
		fmt.Fprintln(w, `{"n":1}`)
		w.(http.Flusher).Flush()
		<-release
		fmt.Fprintln(w, `{"n":2}`)
	}
	px, _ := startReverse(t, up, &fakeTokens{tok: exchange.Token{Value: secret.New("tok-stream-0001")}}, log)
	resp, err := http.Get(px.URL + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	line := make([]byte, len(`{"n":1}`)+1)
	if _, err := io.ReadFull(resp.Body, line); err != nil || string(line) != "{\"n\":1}\n" {
		t.Fatalf("first chunk = %q, %v", line, err)
	}
	close(release) // only now does the upstream finish the body
	rest, _ := io.ReadAll(resp.Body)
	if string(rest) != "{\"n\":2}\n" {
		t.Errorf("rest = %q", rest)
	}
}

func TestRedirectsHandedBack(t *testing.T) {
	log, _ := logtest.New(t)
	up := newUpstream(t, "tok-redirect-01")
	up.handler = func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/same":
			http.Redirect(w, r, "https://"+r.Host+"/api/v2/target?x=1", http.StatusFound)
		case "/other":
			http.Redirect(w, r, "https://elsewhere.example/login", http.StatusFound)
		}
	}
	px, _ := startReverse(t, up, &fakeTokens{tok: exchange.Token{Value: secret.New("tok-redirect-01")}}, log)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for path, want := range map[string]string{"/same": "/api/v2/target?x=1", "/other": "https://elsewhere.example/login"} {
		resp, err := client.Get(px.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 302 || resp.Header.Get("Location") != want {
			t.Errorf("%s: %d Location %q, want 302 %q", path, resp.StatusCode, resp.Header.Get("Location"), want)
		}
	}
	if n := len(up.seen()); n != 2 {
		t.Errorf("upstream saw %d requests: a redirect was followed", n)
	}
}

func TestUpstreamErrors(t *testing.T) {
	log, logs := logtest.New(t)
	tokens := &fakeTokens{tok: exchange.Token{Value: secret.New("tok-errors-0001")}}
	m := NewMetrics(prometheus.NewRegistry())

	// An upstream whose certificate is not trusted.
	untrusted := newUpstream(t, "tok-errors-0001")
	route := mustRoute(t, RouteOptions{Name: "r", Upstream: untrusted.url(t), Header: "Authorization", Prefix: "Bearer", Tokens: tokens})
	px := httptest.NewServer(NewReverse(route, NewTransport(nil), m, log))
	defer px.Close()
	assertError(t, px.URL, 502, "upstream_unavailable", "certificate")
	if n := len(untrusted.seen()); n != 0 {
		t.Errorf("untrusted upstream got %d requests", n)
	}

	// Plain http upstream without AllowInsecure: the credential stays home.
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("plain-http upstream was called with %q", r.Header.Get("Authorization"))
	}))
	defer plain.Close()
	pu, _ := url.Parse(plain.URL)
	route = mustRoute(t, RouteOptions{Name: "r", Upstream: pu, Header: "Authorization", Prefix: "Bearer", Tokens: tokens})
	px2 := httptest.NewServer(NewReverse(route, NewTransport(nil), m, log))
	defer px2.Close()
	assertError(t, px2.URL, 502, "destination_not_allowed", "https")

	// Nothing listening.
	plain.Close()
	route = mustRoute(t, RouteOptions{Name: "r", Upstream: pu, Header: "Authorization", Prefix: "Bearer", Tokens: tokens, AllowInsecure: true})
	px3 := httptest.NewServer(NewReverse(route, NewTransport(nil), m, log))
	defer px3.Close()
	assertError(t, px3.URL, 502, "upstream_unavailable", "connect")
	logtest.AssertNoSecrets(t, "logs", logs.String(), "tok-errors-0001")
}

func assertError(t *testing.T, u string, status int, code, detail string) {
	t.Helper()
	resp, err := http.Get(u + "/x")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body errorBody
	_ = json.NewDecoder(resp.Body).Decode(&body)
	if resp.StatusCode != status || body.Error != code || !strings.Contains(body.Detail, detail) {
		t.Errorf("got %d %+v, want %d %s with %q", resp.StatusCode, body, status, code, detail)
	}
}

func TestServerLimits(t *testing.T) {
	log, _ := logtest.New(t)
	srv := httptest.NewUnstartedServer(http.NotFoundHandler())
	srv.Config = NewServer(http.NotFoundHandler(), log)
	srv.Start()
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL, nil)
	req.Header.Set("X-Big", strings.Repeat("a", MaxHeaderBytes+4096))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("oversized headers: %d, want 431", resp.StatusCode)
	}
}

func counterValue(t *testing.T, m *Metrics, name, label, value string) float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(m.requests, m.upstreamDuration, m.replayCount, m.connects, m.leafSigned)
	return promtest.CounterSum(t, reg, name, label, value)
}

func TestAuthority(t *testing.T) {
	tcs := []struct{ scheme, in, want string }{
		{"https", "API.Example.com", "api.example.com:443"},
		{"https", "api.example.com:443", "api.example.com:443"},
		{"https", "api.example.com.", "api.example.com:443"},
		{"http", "api.example.com", "api.example.com:80"},
		{"https", "[::1]:8443", "[::1]:8443"},
	}
	for _, tc := range tcs {
		if got := Authority(tc.scheme, tc.in); got != tc.want {
			t.Errorf("Authority(%q, %q) = %q, want %q", tc.scheme, tc.in, got, tc.want)
		}
	}
}
