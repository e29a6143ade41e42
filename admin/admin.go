package admin

import (
	"encoding/json"
	"net/http"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/credproxy/credproxy/tokencache"
)

// Admin serves the admin listener: /healthz, /readyz and /metrics, and
// once enabled the status page (EnableStatusPage), the token APIs
// (EnableTokenAPI) and the forward proxy's CA (ServeCA).
type Admin struct {
	mux      *http.ServeMux
	statuses []func() tokencache.Status
	stopping atomic.Bool
	// tokenRequests counts token API requests by route and status.
	tokenRequests *prometheus.CounterVec
}

// New returns the admin handler reporting on the routes whose statuses
// are given. Its own metrics are registered on reg, and /metrics serves
// everything reg holds.
func New(reg *prometheus.Registry, statuses []func() tokencache.Status) *Admin {
	a := &Admin{mux: http.NewServeMux(), statuses: statuses,
		tokenRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "credproxy_token_api_requests_total",
			Help: "Requests to the token API (GET /v1/token/<route>) by route (empty for an unknown route) and status code.",
		}, []string{"route", "status"}),
	}
	reg.MustRegister(a.tokenRequests)
	a.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	a.mux.HandleFunc("GET /readyz", a.readyz)
	a.mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		Registry:            reg,
		MaxRequestsInFlight: 4,
	}))
	return a
}

// ServeCA serves the forward proxy's CA certificate at GET /ca.pem, for
// clients to trust: the PEM that certPEM returns at each request, so that
// a CA reloaded on SIGHUP is the one served.
func (a *Admin) ServeCA(certPEM func() []byte) {
	a.mux.HandleFunc("GET /ca.pem", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/x-pem-file")
		_, _ = w.Write(certPEM())
	})
}

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

// errorBody is the JSON body of the admin listener's errors, the same
// shape as the proxy's own.
type errorBody struct {
	Error  string `json:"error"`
	Route  string `json:"route"`
	Detail string `json:"detail"`
}

func writeError(w http.ResponseWriter, status int, body errorBody) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}
