package integration

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/credproxy/credproxy/admin"
	"github.com/credproxy/credproxy/credexpiry"
	"github.com/credproxy/credproxy/edge"
	"github.com/credproxy/credproxy/exchange"
	"github.com/credproxy/credproxy/internal/logtest"
	"github.com/credproxy/credproxy/internal/promtest"
	"github.com/credproxy/credproxy/internal/secret"
	"github.com/credproxy/credproxy/internal/testwait"
	"github.com/credproxy/credproxy/mitm"
	"github.com/credproxy/credproxy/proxy"
	"github.com/credproxy/credproxy/tokenapi"
	"github.com/credproxy/credproxy/tokencache"
	"github.com/credproxy/credproxy/tokensink"
)

// documentedMetric is one row of the metrics table of
// docs/operators/monitoring.md.
type documentedMetric struct {
	name, typ string
	labels    []string
}

// readmeMetrics parses the "## Metrics" table of docs/operators/monitoring.md.
func readmeMetrics(t *testing.T) []documentedMetric {
	t.Helper()
	b, err := os.ReadFile("../../docs/operators/monitoring.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "\n## Metrics\n")
	if !ok {
		t.Fatal(`docs/operators/monitoring.md has no "## Metrics" section`)
	}
	row := regexp.MustCompile("(?m)^\\| `(credproxy_[a-z0-9_]+)` \\| (counter|gauge|histogram) \\| ([^|]+) \\|")
	label := regexp.MustCompile("`([a-z_]+)`")
	var out []documentedMetric
	for _, m := range row.FindAllStringSubmatch(section, -1) {
		d := documentedMetric{name: m[1], typ: m[2]}
		for _, l := range label.FindAllStringSubmatch(m[3], -1) {
			d.labels = append(d.labels, l[1])
		}
		out = append(out, d)
	}
	if len(out) < 10 {
		t.Fatalf("the metrics table of docs/operators/monitoring.md has %d rows", len(out))
	}
	return out
}

// TestDocumentedMetricsExistAfterTraffic drives every kind of traffic
// through the metrics of every package that has some, registered on one
// registry as credproxy does (exchanges, a failed renewal, a 401 replay,
// reverse and forward requests, an intercepted and a tunnelled CONNECT, a
// token API call, a local OAuth 2.0 token request, a token sink write, a
// known credential expiry) and checks that each metric of the documented
// table then exists with its documented type and labels, and that every
// credproxy metric is documented. It lives here because /metrics is
// where they are all served.
func TestDocumentedMetricsExistAfterTraffic(t *testing.T) {
	log, logs := logtest.New(t)
	reg := prometheus.NewRegistry()
	m := proxy.NewMetrics(reg)

	// A source issuing met-1, met-2, ...; the third exchange fails.
	var n atomic.Int32
	src := exchange.SourceFunc(func(context.Context) (exchange.Token, error) {
		i := n.Add(1)
		if i == 3 {
			return exchange.Token{}, &exchange.Error{Status: 503, Message: "identity service down"}
		}
		return exchange.Token{Value: secret.New(fmt.Sprintf("met-SECRET-%d", i)), Expiry: time.Now().Add(time.Hour)}, nil
	})
	cache := tokencache.New(src, tokencache.Options{Route: "r", Kind: "oauth2-client-credentials", Metrics: tokencache.NewMetrics(reg)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); cache.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	// The upstream accepts only met-SECRET-2: the first request gets a
	// 401, a renewal and a replay.
	up := newUpstream(t, "Bearer met-SECRET-2")
	route, err := proxy.NewRoute(proxy.RouteOptions{Name: "r", Upstream: up.url, Header: "Authorization", Prefix: "Bearer", Tokens: cache})
	if err != nil {
		t.Fatal(err)
	}
	rev := httptest.NewServer(proxy.NewReverse(route, up.transport(), m, log))
	defer rev.Close()
	resp, err := http.Get(rev.URL + "/api/v2/x")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("reverse request after a replay: %d", resp.StatusCode)
	}

	// Forward mode: an intercepted CONNECT (a leaf certificate signed)
	// and a tunnelled one.
	ca, err := mitm.NewCA("credproxy metrics test CA")
	if err != nil {
		t.Fatal(err)
	}
	fwd := proxy.NewForward([]*proxy.Route{route}, up.transport(), m, proxy.ForwardOptions{CA: ca}, log)
	fln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = fwd.Serve(fln) }()
	t.Cleanup(func() { fwd.Close(); fwd.Wait() })
	pu, _ := url.Parse("http://" + fln.Addr().String())
	pool := x509.NewCertPool()
	pool.AddCert(ca.Certificate())
	other := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "other") }))
	defer other.Close()
	pool.AddCert(other.Certificate())
	client := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(pu), TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer client.CloseIdleConnections()
	for _, u := range []string{up.srv.URL + "/api/v2/y", other.URL + "/z"} {
		resp, err := client.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("forward %s: %d", u, resp.StatusCode)
		}
	}

	// The token API and the local OAuth 2.0 token endpoint.
	apiOpts := tokenapi.Options{Routes: []tokenapi.Route{{Name: "r", TokenType: "Bearer", Tokens: cache}}, Metrics: tokenapi.NewMetrics(reg), Logger: log}
	adm := admin.New(admin.Options{Registry: reg, Routes: []admin.Route{{Name: "r", Status: cache.Status}},
		TokenAPI: tokenapi.NewTokenHandler(apiOpts), OAuth2: tokenapi.NewOAuth2Handler(apiOpts)})
	asrv := httptest.NewServer(adm)
	defer asrv.Close()
	req, _ := http.NewRequest("GET", asrv.URL+"/v1/token/r", nil)
	req.Header.Set("Metadata", "true")
	if resp, err := http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	} else {
		resp.Body.Close()
	}

	// The local OAuth 2.0 token endpoint (no local client secret set).
	if resp, err := http.PostForm(asrv.URL+tokenapi.OAuth2TokenPath, url.Values{"grant_type": {"client_credentials"}, "client_id": {"r"}}); err != nil {
		t.Fatal(err)
	} else {
		resp.Body.Close()
	}

	// A request the browser guard refuses, as the listeners count it.
	edge.NewMetrics(reg).Denied("r", "browser_request_refused")

	// A token sink write and a known credential expiry.
	sinkWrite(t, reg, log, cache)
	credexpiry.New(credexpiry.Options{Route: "r", Configured: time.Now().Add(30 * 24 * time.Hour), Metrics: credexpiry.NewMetrics(reg)})

	// A scheduled renewal that fails: wait for the loop to reach the
	// third exchange by invalidating the current token (met-SECRET-2).
	tok, err := cache.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cache.Invalidate(ctx, tok); err == nil {
		t.Fatal("the third exchange was meant to fail")
	}
	// Invalidate returns once the exchange is recorded; the metrics hook
	// runs just after, on the loop's goroutine.
	testwait.Eventually(t, 10*time.Second, func() (bool, string) {
		return promtest.CounterSum(t, reg, "credproxy_exchanges_total", "result", "unavailable") > 0, "the failed exchange is not counted"
	})

	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]int{}
	for i, mf := range mfs {
		byName[mf.GetName()] = i
	}
	documented := map[string]bool{}
	for _, d := range readmeMetrics(t) {
		documented[d.name] = true
		i, ok := byName[d.name]
		if !ok || len(mfs[i].GetMetric()) == 0 {
			t.Errorf("%s is documented but absent after traffic", d.name)
			continue
		}
		mf := mfs[i]
		if mf.GetType().String() != strings.ToUpper(d.typ) {
			t.Errorf("%s is a %v, documented as a %s", d.name, mf.GetType(), d.typ)
		}
		var got []string
		for _, lp := range mf.GetMetric()[0].GetLabel() {
			got = append(got, lp.GetName())
		}
		slices.Sort(got)
		want := slices.Sorted(slices.Values(d.labels))
		if !slices.Equal(got, want) {
			t.Errorf("%s has labels %v, documented %v", d.name, got, want)
		}
	}
	for name := range byName {
		if strings.HasPrefix(name, "credproxy_") && !documented[name] {
			t.Errorf("%s is not in the metrics table of docs/operators/monitoring.md", name)
		}
	}

	// The values say what happened.
	for _, c := range []struct {
		name, label, value string
		want               float64
	}{
		{"credproxy_exchanges_total", "result", "ok", 2},
		{"credproxy_exchanges_total", "result", "unavailable", 1},
		{"credproxy_token_renewals_total", "trigger", "upstream_401", 2},
		{"credproxy_upstream_401_total", "outcome", "replayed", 1},
		{"credproxy_forward_connects_total", "decision", "intercept", 1},
		{"credproxy_forward_connects_total", "decision", "tunnel", 1},
		{"credproxy_requests_total", "mode", "reverse", 1},
		{"credproxy_requests_total", "mode", "forward", 1},
		{"credproxy_token_api_requests_total", "status", "200", 1},
		{"credproxy_oauth2_token_requests_total", "result", "ok", 1},
		{"credproxy_token_sink_writes_total", "result", "ok", 1},
		{"credproxy_token_sink_writes_total", "result", "error", 0},
	} {
		if got := promtest.CounterSum(t, reg, c.name, c.label, c.value); got != c.want {
			t.Errorf("%s{%s=%q} = %v, want %v", c.name, c.label, c.value, got, c.want)
		}
	}
	if got := mfs[byName["credproxy_leaf_certificates_signed_total"]].GetMetric()[0].GetCounter().GetValue(); got != 1 {
		t.Errorf("leaf certificates signed = %v, want 1", got)
	}
	if got := mfs[byName["credproxy_exchange_consecutive_failures"]].GetMetric()[0].GetGauge().GetValue(); got != 1 {
		t.Errorf("consecutive failures = %v, want 1", got)
	}

	// No token in any metric.
	var text strings.Builder
	for _, mf := range mfs {
		fmt.Fprintln(&text, mf.String())
	}
	logtest.AssertNoSecrets(t, "metrics", text.String(), "met-SECRET-1", "met-SECRET-2")
	logtest.AssertNoSecrets(t, "logs", logs.String(), "met-SECRET-1", "met-SECRET-2")
}

// sinkWrite writes cache's token once through a token sink counted on
// reg, and returns once the write is counted; the sink stops (and removes
// its file) when the test ends.
func sinkWrite(t *testing.T, reg *prometheus.Registry, log *zap.Logger, cache *tokencache.Cache) {
	t.Helper()
	sink := tokensink.New(tokensink.Options{Path: filepath.Join(t.TempDir(), "token"), Route: "r", Logger: log, Metrics: tokensink.NewMetrics(reg)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); sink.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	tok, err := cache.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sink.Offer(tok)
	for deadline := time.Now().Add(10 * time.Second); promtest.CounterSum(t, reg, "credproxy_token_sink_writes_total", "result", "ok") == 0; {
		if time.Now().After(deadline) {
			t.Fatal("the sink write was never counted")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// apiUpstream is a TLS test API that answers 200 to one Authorization
// value and 401 to any other.
type apiUpstream struct {
	srv *httptest.Server
	url *url.URL
}

func newUpstream(t *testing.T, valid string) *apiUpstream {
	t.Helper()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != valid {
			http.Error(w, `{"error":"invalid_token"}`, http.StatusUnauthorized)
			return
		}
		fmt.Fprint(w, "ok")
	}))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	return &apiUpstream{srv: srv, url: u}
}

// transport is credproxy's upstream transport trusting the test API.
func (u *apiUpstream) transport() *proxy.Transport {
	pool := x509.NewCertPool()
	pool.AddCert(u.srv.Certificate())
	return proxy.NewTransport(pool)
}
