package proxy

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/credproxy/credproxy/edge"
	"github.com/credproxy/credproxy/exchange"
	"github.com/credproxy/credproxy/internal/secret"
)

// BenchmarkReverseEdge is BenchmarkReverse (scan on) behind the edge's
// gate: off (no wrapper, as credproxy serves a route without edge
// features), client keys, a policy, the audit log, and all three. Compare
// with off for each feature's cost (the budget: keys and policy ≤ 5%
// CPU each, audit ≤ 10%).
func BenchmarkReverseEdge(b *testing.B) {
	const key = "bench-client-key-0123456789"
	for _, c := range []struct {
		name                string
		keys, policy, audit bool
	}{{"off", false, false, false}, {"keys", true, false, false}, {"policy", false, true, false}, {"audit", false, false, true}, {"all", true, true, true}} {
		b.Run(c.name, func(b *testing.B) {
			up := benchUpstream(b)
			route := mustRoute(b, RouteOptions{Name: "bench", Upstream: up.url(b), Header: "Authorization", Prefix: "Bearer",
				Tokens: &fakeTokens{tok: exchange.Token{Value: secret.New("bench-token")}}})
			var h http.Handler = NewReverse(route, up.transport(), NewMetrics(prometheus.NewRegistry()), zap.NewNop())
			opts := edge.GateOptions{Route: "bench", Via: edge.ViaReverse, Header: "Authorization", Prefix: "Bearer"}
			auth := ""
			if c.keys {
				file := filepath.Join(b.TempDir(), "keys")
				if err := os.WriteFile(file, []byte("bench:"+key+"\n"), 0o600); err != nil {
					b.Fatal(err)
				}
				k, err := edge.NewKeys(edge.KeysOptions{File: file})
				if err != nil {
					b.Fatal(err)
				}
				opts.Keys, auth = k, "Bearer "+key
			}
			if c.policy {
				p, err := edge.ParsePolicy("GET /api/v1/**, GET /api/v2/*, POST /api/v2/datapoint")
				if err != nil {
					b.Fatal(err)
				}
				opts.Policy = p
			}
			if c.audit {
				a, err := edge.NewAuditor(edge.AuditOptions{Target: edge.AuditTarget{Kind: edge.AuditFile, Path: filepath.Join(b.TempDir(), "audit.log")}})
				if err != nil {
					b.Fatal(err)
				}
				a.Start()
				b.Cleanup(func() { _ = a.Close() })
				opts.Auditor = a
			}
			if g := edge.NewGate(opts); g.Enabled() {
				h = g.Wrap(h)
			}
			px := newBenchServer(b, h)
			benchPath(b, &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 4}}, px.URL+"/api/v2/x", auth)
		})
	}
}
