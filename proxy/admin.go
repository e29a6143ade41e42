package proxy

import (
	"encoding/json"
	"net/http"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/credproxy/credproxy/tokencache"
)

// Admin serves the admin listener: /healthz, /readyz and /metrics, and
// once enabled the status page (EnableStatusPage) and the token API
// (EnableTokenAPI).
type Admin struct {
	mux      *http.ServeMux
	metrics  *Metrics
	statuses []func() tokencache.Status
	stopping atomic.Bool
}

// NewAdmin returns the admin handler reporting on the given routes.
func NewAdmin(metrics *Metrics, statuses []func() tokencache.Status) *Admin {
	a := &Admin{mux: http.NewServeMux(), metrics: metrics, statuses: statuses}
	a.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	a.mux.HandleFunc("GET /readyz", a.readyz)
	a.mux.Handle("GET /metrics", promhttp.HandlerFor(metrics.Registry(), promhttp.HandlerOpts{
		Registry:            metrics.Registry(),
		MaxRequestsInFlight: 4,
	}))
	return a
}

// Handle adds a handler to the admin listener (the forward proxy's
// /ca.pem, the token API).
func (a *Admin) Handle(pattern string, h http.Handler) { a.mux.Handle(pattern, h) }

// ShuttingDown makes /readyz fail from now on; it is the first step of a
// graceful shutdown.
func (a *Admin) ShuttingDown() { a.stopping.Store(true) }

func (a *Admin) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.mux.ServeHTTP(w, r) }

// readiness is the /readyz body.
type readiness struct {
	Ready        bool                `json:"ready"`
	ShuttingDown bool                `json:"shutting_down,omitempty"`
	Routes       []tokencache.Status `json:"routes"`
}

func (a *Admin) readyz(w http.ResponseWriter, _ *http.Request) {
	body := readiness{Ready: true, Routes: make([]tokencache.Status, 0, len(a.statuses))}
	for _, st := range a.statuses {
		s := st()
		body.Routes = append(body.Routes, s)
		body.Ready = body.Ready && s.Ready
	}
	if a.stopping.Load() {
		body.Ready, body.ShuttingDown = false, true
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if !body.Ready {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(body)
}
