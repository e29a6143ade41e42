package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// wrkOutput is wrk 4.1's report with --latency.
const wrkOutput = `Running 5s test @ http://127.0.0.1:8080/api/v2/query
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.65ms    2.23ms  47.27ms   91.99%
    Req/Sec     6.46k   640.12     7.70k    70.00%
  Latency Distribution
     50%  812.00us
     75%    2.94ms
     90%    4.72ms
     99%    1.20s
  64312 requests in 5.00s, 15.03MB read
  Socket errors: connect 0, read 1, write 0, timeout 2
  Non-2xx or 3xx responses: 4
Requests/sec:  12852.68
Transfer/sec:      3.01MB
`

func TestParseWrk(t *testing.T) {
	got, err := parseWrk(wrkOutput)
	if err != nil {
		t.Fatal(err)
	}
	want := result{RPS: 12852.68, P50: 812 * time.Microsecond, P99: 1200 * time.Millisecond, Requests: 64312, Errors: 7}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("parseWrk (-want +got):\n%s", d)
	}
	if _, err := parseWrk("unable to connect to 127.0.0.1:8080 Connection refused"); err == nil {
		t.Error("parseWrk accepted output without a result")
	}
}

func TestMedian(t *testing.T) {
	rs := []result{
		{RPS: 300, P50: 3 * time.Millisecond, P99: 9 * time.Millisecond, Requests: 10, CPU: 30 * time.Microsecond},
		{RPS: 100, P50: 1 * time.Millisecond, P99: 7 * time.Millisecond, Requests: 20, CPU: 50 * time.Microsecond},
		{RPS: 200, P50: 2 * time.Millisecond, P99: 8 * time.Millisecond, Requests: 30, CPU: 40 * time.Microsecond},
	}
	want := result{RPS: 200, P50: 2 * time.Millisecond, P99: 8 * time.Millisecond, Requests: 60, CPU: 40 * time.Microsecond}
	if d := cmp.Diff(want, median(rs)); d != "" {
		t.Errorf("median (-want +got):\n%s", d)
	}
	if got := median(rs[:2]).RPS; got != 200 {
		t.Errorf("median of two = %v, want their mean 200", got)
	}
}

// TestReportRenders: a report with every part renders a targets table and
// an SVG document.
func TestReportRenders(t *testing.T) {
	r := &report{Rounds: 1, Duration: time.Second, Machine: "test", Load: "0 0 0", RSSIdle: 1024, RSS256: 2048, RSSMillion: 1024, Served: 1e6,
		Hot: []hotResult{{Name: "BenchmarkTokenHot", NsOp: 2.5}}}
	for _, n := range []int{1, 32} {
		r.Reverse = append(r.Reverse, reverseRow{Conns: n, By: map[string]result{
			"direct": {RPS: 4}, "credproxy": {RPS: 3, CPU: 5 * time.Microsecond}, "nginx": {RPS: 2, CPU: 2 * time.Microsecond}, "haproxy": {RPS: 1, CPU: time.Microsecond},
			"gofloor": {RPS: 2, CPU: time.Microsecond}, "gofloor-h1": {RPS: 2.5, CPU: time.Microsecond},
		}})
	}
	r.Forward = []forwardRow{{Conns: 1, By: map[string]result{"direct": {RPS: 30}, "credproxy": {RPS: 20, CPU: 1}, "mitmproxy": {RPS: 1, CPU: 20}}}}
	r.RTT = 60 * time.Millisecond
	for _, client := range wanClients {
		for i, path := range wanPaths {
			r.WAN = append(r.WAN, wanRow{Client: client, Path: path, Calls: 10, P50: time.Duration(240/(i+1)) * time.Millisecond, P90: 250 * time.Millisecond})
		}
	}
	md := r.markdown()
	for _, want := range []string{"| reverse, 32 connections: requests/s vs nginx | >= 0.90x | 1.50x", "| met |", "results.svg",
		"## Wide area", "**A curl loop: 240.0 ms per call direct, 120.0 ms through credproxy, 2.0x faster.**",
		"| curl loop | nginx, upstream keep-alive | 60.0 ms | 250.0 ms | 4.00x |",
		"| reverse, 32 connections: CPU/request vs nginx (one worker) | <= 2.0x | 2.50x (5 µs vs 2 µs) | **not met** |",
		"| reverse, 1 connection: CPU/request vs nginx (one worker) | <= 2.2x | 2.50x (5 µs vs 2 µs) | **not met** |",
		"| reverse, 32 connections: requests/s vs the Go floor (gofloor, HTTP/2 upstream) | >= 1.4x | 1.50x (3 vs 2); vs gofloor-h1 (HTTP/1.1) 1.20x (2) | met |"} {
		if !strings.Contains(md, want) {
			t.Errorf("results.md lacks %q", want)
		}
	}
	svg := r.svg()
	if !strings.HasPrefix(svg, "<svg ") || !strings.HasSuffix(svg, "</svg>\n") || strings.Contains(svg, "NaN") {
		t.Errorf("svg is not a whole document:\n%s", svg)
	}
}

// TestRunLoad: the load generator, keep-alive and with a new connection
// per request, against an in-process TLS server that wants the header.
func TestRunLoad(t *testing.T) {
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer t" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		_, _ = w.Write(upstreamBody)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.StartTLS()
	defer srv.Close()
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	for _, newConn := range []bool{false, true} {
		conns.Store(0)
		r, err := runLoad(context.Background(), loadOptions{URL: srv.URL, TLS: &tls.Config{RootCAs: pool}, Conns: 2,
			Duration: 200 * time.Millisecond, NewConn: newConn, Header: "Authorization: Bearer t", WarmUp: 50 * time.Millisecond})
		if err != nil {
			t.Fatalf("new connection per request %v: %v", newConn, err)
		}
		if r.Requests < 2 || r.Errors != 0 || r.RPS <= 0 || r.P50 <= 0 || r.P99 < r.P50 {
			t.Errorf("new connection per request %v: %+v", newConn, r)
		}
		if n := conns.Load(); newConn && n < r.Requests || !newConn && n != 2 {
			t.Errorf("new connection per request %v: %d connections for %d requests", newConn, n, r.Requests)
		}
	}
	if _, err := runLoad(context.Background(), loadOptions{URL: srv.URL, TLS: &tls.Config{RootCAs: pool}, Conns: 1,
		Duration: 100 * time.Millisecond, WarmUp: 10 * time.Millisecond}); err == nil || !strings.Contains(err.Error(), "status 401") {
		t.Errorf("without the header: err = %v, want the warm-up's 401", err)
	}
}

func TestPercentiles(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		var ds []time.Duration
		for _, x := range v {
			ds = append(ds, time.Duration(x)*time.Millisecond)
		}
		return ds
	}
	for _, tc := range []struct {
		desc     string
		in       []time.Duration
		p50, p90 time.Duration
	}{
		{"ten calls, the slowest first", ms(200, 1, 2, 3, 4, 5, 6, 7, 8, 9), 5500 * time.Microsecond, 9 * time.Millisecond},
		{"odd count", ms(3, 1, 2), 2 * time.Millisecond, 3 * time.Millisecond},
		{"one", ms(7), 7 * time.Millisecond, 7 * time.Millisecond},
	} {
		p50, p90 := percentiles(tc.in)
		if p50 != tc.p50 || p90 != tc.p90 {
			t.Errorf("%s: p50 %v p90 %v, want %v %v", tc.desc, p50, p90, tc.p50, tc.p90)
		}
	}
}

func TestSpliceSection(t *testing.T) {
	sec := "## Fleet\n\nnew\n\n### Sub\n\nmore\n"
	for _, tc := range []struct{ desc, doc, want string }{
		{"replaced", "# R\n\n## A\n\na\n\n## Fleet\n\nold\n\n### Sub\n\nold\n\n## Versions\n\nv\n", "# R\n\n## A\n\na\n\n" + sec + "\n## Versions\n\nv\n"},
		{"added before Versions", "# R\n\n## A\n\na\n\n## Versions\n\nv\n", "# R\n\n## A\n\na\n\n" + sec + "\n## Versions\n\nv\n"},
		{"last section", "# R\n\n## Fleet\n\nold\n", "# R\n\n" + sec},
		{"no Versions", "# R\n", "# R\n\n" + sec},
	} {
		if got := spliceSection(tc.doc, "## Fleet", sec); got != tc.want {
			t.Errorf("%s:\n got %q\nwant %q", tc.desc, got, tc.want)
		}
	}
}

func TestExtractSection(t *testing.T) {
	doc := "# t\n\nintro\n\n## A\n\na1\n\n## B\n\nb1\n\n## Versions\n\nv\n"
	if got := extractSection(doc, "## B"); got != "## B\n\nb1\n" {
		t.Errorf("extractSection B = %q", got)
	}
	if got := extractSection(doc, "## Versions"); got != "## Versions\n\nv\n" {
		t.Errorf("extractSection Versions = %q", got)
	}
	if got := extractSection(doc, "## C"); got != "" {
		t.Errorf("extractSection C = %q", got)
	}
	// Carried into a fresh document without it: before Versions.
	fresh := "# t\n\n## A\n\na2\n\n## Versions\n\nv2\n"
	if got, want := spliceSection(fresh, "## B", extractSection(doc, "## B")), "# t\n\n## A\n\na2\n\n## B\n\nb1\n\n## Versions\n\nv2\n"; got != want {
		t.Errorf("carried:\n%q\nwant\n%q", got, want)
	}
}

func TestGoDefaultGOMAXPROCS(t *testing.T) {
	for _, c := range []struct{ ncpu, milli, want int }{
		{2, 0, 2}, {2, 100, 2}, {2, 500, 2}, {16, 100, 2}, {16, 500, 2}, {16, 1000, 2},
		{16, 1500, 2}, {16, 2500, 3}, {16, 4000, 4}, {16, 40000, 16}, {1, 500, 1}, {4, 3001, 4},
	} {
		if got := goDefaultGOMAXPROCS(c.ncpu, c.milli); got != c.want {
			t.Errorf("goDefaultGOMAXPROCS(%d CPUs, %dm) = %d, want %d", c.ncpu, c.milli, got, c.want)
		}
	}
	if got, err := parseMillicores("1.5"); err != nil || got != 1500 {
		t.Errorf("parseMillicores(1.5) = %d, %v", got, err)
	}
}
