package edge

import (
	"net/http"
	"net/http/httptest"
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
