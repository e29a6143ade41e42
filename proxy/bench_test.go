package proxy

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"go.uber.org/zap"

	"github.com/credproxy/credproxy/exchange"
	"github.com/credproxy/credproxy/internal/secret"
	"github.com/credproxy/credproxy/mitm"
)

// benchPath measures GET url through client: requests/s on one
// connection, the p50 latency, and allocations per request in this
// process (client, proxy and upstream together: compare the Direct and
// proxied variants).
func benchPath(b *testing.B, client *http.Client, url, auth string) {
	b.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		b.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	get := func() {
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
	get() // warm the connections
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		get()
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-us")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-us")
}

func benchUpstream(b *testing.B) *upstream {
	u := &upstream{valid: map[string]bool{"bench-token": true}}
	u.srv = newBenchTLSServer(b, u)
	return u
}

// BenchmarkDirect calls the TLS upstream directly: the baseline.
func BenchmarkDirect(b *testing.B) {
	up := benchUpstream(b)
	client := &http.Client{Transport: up.transport()}
	benchPath(b, client, up.srv.URL+"/api/v2/x", "Bearer bench-token")
}

// BenchmarkReverse goes through the reverse proxy: the per-request work of
// reverse mode (token load, injection, ReverseProxy, upstream TLS), with
// the scan of the answer's body for the credential and without it.
func BenchmarkReverse(b *testing.B) {
	for _, scan := range []bool{true, false} {
		b.Run(fmt.Sprintf("scan=%v", scan), func(b *testing.B) {
			up := benchUpstream(b)
			route := mustRoute(b, RouteOptions{Name: "bench", Upstream: up.url(b), Header: "Authorization", Prefix: "Bearer",
				Tokens: &fakeTokens{tok: exchange.Token{Value: secret.New("bench-token")}}})
			route.noBodyScan = !scan
			px := newBenchServer(b, NewReverse(route, up.transport(), NewMetrics(prometheus.NewRegistry()), zap.NewNop()))
			benchPath(b, &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 4}}, px.URL+"/api/v2/x", "")
		})
	}
}

// BenchmarkForwardIntercept goes through the forward proxy with TLS
// interception: the per-request work of forward mode.
func BenchmarkForwardIntercept(b *testing.B) {
	s := forwardBench(b)
	benchPath(b, s.client(), s.up.srv.URL+"/api/v2/x", "")
}

func newBenchTLSServer(b *testing.B, u *upstream) *httptest.Server {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(u.serve))
	srv.StartTLS()
	b.Cleanup(srv.Close)
	return srv
}

func newBenchServer(b *testing.B, h http.Handler) *httptest.Server {
	srv := httptest.NewUnstartedServer(h)
	srv.Config = NewServer(h, zap.NewNop())
	srv.Start()
	b.Cleanup(srv.Close)
	return srv
}

func mustParse(b *testing.B, s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		b.Fatal(err)
	}
	return u
}

// forwardBench starts a forward proxy for one route over a fresh upstream.
func forwardBench(b *testing.B) *forwardSetup {
	up := benchUpstream(b)
	ca, err := mitm.NewCA("bench")
	if err != nil {
		b.Fatal(err)
	}
	route := mustRoute(b, RouteOptions{Name: "bench", Upstream: up.url(b), Header: "Authorization", Prefix: "Bearer",
		Tokens: &fakeTokens{tok: exchange.Token{Value: secret.New("bench-token")}}})
	fwd := NewForward([]*Route{route}, up.transport(), NewMetrics(prometheus.NewRegistry()), ForwardOptions{CA: ca}, zap.NewNop())
	px := serveForward(b, fwd)
	return &forwardSetup{up: up, fwd: fwd, ca: ca, proxy: mustParse(b, px.URL)}
}

// BenchmarkForwardTunnel is the blind-tunnel baseline: CONNECT to a host
// of no route, TLS end to end between client and upstream.
func BenchmarkForwardTunnel(b *testing.B) {
	s := forwardBench(b)
	other := benchUpstream(b)
	benchPath(b, s.client(other.srv.Certificate()), other.srv.URL+"/api/v2/x", "Bearer bench-token")
}

// BenchmarkForwardInterceptNewConn opens a new client connection (CONNECT
// and TLS handshake with the leaf) for every request: the cost a
// single-shot script pays.
func BenchmarkForwardInterceptNewConn(b *testing.B) {
	s := forwardBench(b)
	c := s.client()
	c.Transport.(*http.Transport).DisableKeepAlives = true
	benchPath(b, c, s.up.srv.URL+"/api/v2/x", "")
}

// BenchmarkReverseParallel is reverse mode with 32 concurrent keep-alive
// clients: the per-request work when the proxy is busy (the upstream
// pool, the metrics and the token cache shared by every request).
func BenchmarkReverseParallel(b *testing.B) {
	up := benchUpstream(b)
	route := mustRoute(b, RouteOptions{Name: "bench", Upstream: up.url(b), Header: "Authorization", Prefix: "Bearer",
		Tokens: &fakeTokens{tok: exchange.Token{Value: secret.New("bench-token")}}})
	px := newBenchServer(b, NewReverse(route, up.transport(), NewMetrics(prometheus.NewRegistry()), zap.NewNop()))
	client := &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 64}}
	b.SetParallelism(max(1, 32/runtime.GOMAXPROCS(0)))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := client.Get(px.URL + "/api/v2/x")
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
}

// okTransport answers every request with an empty 200 without any I/O.
type okTransport struct{}

func (okTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: 200, Header: http.Header{}, Body: http.NoBody, Request: req}, nil
}

// BenchmarkInjectorRoundTrip is credproxy's own work on a request, without
// net/http's: the destination check, the token load and the header
// injection (the request is reused, as the reverse proxy's outbound copy
// would be fresh each time).
func BenchmarkInjectorRoundTrip(b *testing.B) {
	route := mustRoute(b, RouteOptions{Name: "bench", Upstream: mustParse(b, "https://api.example.com:443"), Header: "Authorization", Prefix: "Bearer",
		Tokens: &fakeTokens{tok: exchange.Token{Value: secret.New("bench-token")}}})
	in := &injector{route: route, next: okTransport{}, metrics: NewMetrics(prometheus.NewRegistry()).forRoute("bench", "reverse"), log: zap.NewNop()}
	req := httptest.NewRequest("GET", "https://api.example.com:443/api/v2/x", nil)
	req.Body = nil
	b.ReportAllocs()
	for b.Loop() {
		resp, err := in.RoundTrip(req)
		if err != nil || resp.StatusCode != 200 {
			b.Fatal(err)
		}
	}
}
