package edge

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
)

// BenchmarkBrowser measures the guard's own cost per request, around a
// handler that does nothing: off (the handler alone), on for a caller
// that is not a browser (the common case: SDKs, scripts), and on for a
// browser page on the listener's own origin (the status page).
func BenchmarkBrowser(b *testing.B) {
	noop := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	guard := NewBrowser(BrowserOptions{Loopback: true, AllowedHosts: []string{"credproxy.internal"}, AllowedOrigins: []string{"https://grafana.example.com"}})
	for _, bc := range []struct {
		name   string
		h      http.Handler
		header map[string]string
	}{
		{"off", noop, nil},
		{"on/no-browser", guard.Wrap(noop), nil},
		{"on/own-origin", guard.Wrap(noop), map[string]string{"Origin": "http://127.0.0.1:8080", "Sec-Fetch-Site": "same-origin"}},
		{"on/allowed-origin", guard.Wrap(noop), map[string]string{"Origin": "https://grafana.example.com", "Sec-Fetch-Site": "cross-site"}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			r := httptest.NewRequest("GET", "/api/v2/source", nil)
			r.Host = "127.0.0.1:8080"
			for k, v := range bc.header {
				r.Header.Set(k, v)
			}
			w := httptest.NewRecorder()
			b.ReportAllocs()
			for b.Loop() {
				bc.h.ServeHTTP(w, r)
			}
		})
	}
}

// BenchmarkGate measures the gate's own cost per allowed request, around
// a handler that does nothing: off (the handler alone, as a route without
// keys, policy or audit log is served), client keys (100 keys in the
// file, the caller's key sent), a request policy of three rules, and the
// audit log to a file. For the audit log the timed part includes writing
// every line: the loop yields to the writer goroutine every 1024 requests
// (less than its queue holds, so that none is dropped: lost/op says if
// any was), and the auditor is closed, which drains the rest to the
// file, before the timer stops. Run it with -cpu 1, a sidecar's single
// P: the writer's work then adds to the wall time instead of running
// beside it.
func BenchmarkGate(b *testing.B) {
	const key = "bench-client-key-0123456789abcdef"
	for _, name := range []string{"off", "keys", "policy", "audit"} {
		b.Run(name, func(b *testing.B) {
			// served counts the requests the gate let through: every
			// one must be, or the figure is of refusals.
			served := 0
			noop := http.HandlerFunc(func(http.ResponseWriter, *http.Request) { served++ })
			r := httptest.NewRequest("GET", "/api/v2/query", nil)
			opts := GateOptions{Route: "bench", Via: ViaReverse, Header: "Authorization", Prefix: "Bearer"}
			// auth is the client key's header, put back before each
			// request: the gate takes it out of the request it lets
			// through (the server gives each request a fresh one).
			var auth []string
			var auditor *Auditor
			var lost atomic.Int64
			switch name {
			case "keys":
				opts.Keys = gateKeys(b, key)
				auth = []string{"Bearer " + key}
			case "policy":
				p, err := ParsePolicy("GET /api/v2/**, POST /api/v2/datapoint, GET /api/v1/*/status")
				if err != nil {
					b.Fatal(err)
				}
				opts.Policy = p
			case "audit":
				a, err := NewAuditor(AuditOptions{Target: AuditTarget{Kind: AuditFile, Path: filepath.Join(b.TempDir(), "audit.log")},
					OnLost: func(string) { lost.Add(1) }})
				if err != nil {
					b.Fatal(err)
				}
				a.Start()
				auditor, opts.Auditor = a, a
			}
			h := http.Handler(noop)
			if g := NewGate(opts); g.Enabled() {
				h = g.Wrap(noop)
			}
			w := httptest.NewRecorder()
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				if auth != nil {
					r.Header["Authorization"] = auth
				}
				h.ServeHTTP(w, r)
				if auditor != nil && i%1024 == 1023 {
					runtime.Gosched()
				}
			}
			if auditor != nil {
				if err := auditor.Close(); err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(lost.Load())/float64(b.N), "lost/op")
			}
			b.StopTimer()
			if served != b.N {
				b.Fatalf("the gate let %d of %d requests through (status %d): the figure would be of refusals", served, b.N, w.Code)
			}
		})
	}
}

// gateKeys writes a keys file of 100 keys, key among them, and loads it.
func gateKeys(b *testing.B, key string) *Keys {
	var sb strings.Builder
	for i := range 99 {
		fmt.Fprintf(&sb, "client-%02d:bench-other-key-%02d-0123456789abcdef\n", i, i)
	}
	sb.WriteString("bench:" + key + "\n")
	file := filepath.Join(b.TempDir(), "keys")
	if err := os.WriteFile(file, []byte(sb.String()), 0o600); err != nil {
		b.Fatal(err)
	}
	k, err := NewKeys(KeysOptions{File: file})
	if err != nil {
		b.Fatal(err)
	}
	return k
}
