package main

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/credproxy/credproxy/edge"
)

// discardWriter is a ResponseWriter that keeps nothing, so that the
// benchmark measures the guard and not a recorder.
type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardWriter) WriteHeader(int)             {}

// BenchmarkBrowserGuard is the price of the browser guard (edge.Browser)
// on one request to a loopback reverse listener, off (the bare handler)
// and on: a request as a program sends it (no Origin), one from an
// allowed origin (CREDPROXY_ALLOWED_ORIGINS), and one a browser sends to
// its own origin (Sec-Fetch-Site: same-origin). In-process, so neither
// the machine's load nor net/http's cost blurs it; compare with the CPU
// per request of reverse mode (tens of µs).
//
//	go test -run '^$' -bench BrowserGuard -benchmem ./bench/
func BenchmarkBrowserGuard(b *testing.B) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(200) })
	guard := edge.NewBrowser(edge.BrowserOptions{Listener: "route default", Route: "default", Loopback: true,
		AllowedOrigins: []string{"https://grafana.example.com"}})
	for _, c := range []struct {
		name    string
		h       http.Handler
		headers map[string]string
	}{
		{"off", ok, nil},
		{"on/no-origin", guard.Wrap(ok), nil},
		{"on/allowed-origin", guard.Wrap(ok), map[string]string{"Origin": "https://grafana.example.com", "Sec-Fetch-Site": "cross-site"}},
		{"on/same-origin", guard.Wrap(ok), map[string]string{"Origin": "http://127.0.0.1:8080", "Sec-Fetch-Site": "same-origin"}},
	} {
		b.Run(c.name, func(b *testing.B) {
			req := httptest.NewRequest("GET", "http://127.0.0.1:8080/api/v2/query", nil)
			for k, v := range c.headers {
				req.Header.Set(k, v)
			}
			w := &discardWriter{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				c.h.ServeHTTP(w, req)
			}
		})
	}
}
