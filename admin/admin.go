package admin

import (
	"encoding/json"
	"net/http"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/credproxy/credproxy/credexpiry"
	"github.com/credproxy/credproxy/internal/jsonerror"
	"github.com/credproxy/credproxy/tokencache"
)

// Admin serves the admin listener: /healthz, /readyz and /metrics, and
// once enabled the status page (EnableStatusPage), the token APIs
// (EnableTokenAPI, EnableOAuth2) and the forward proxy's CA (ServeCA).
type Admin struct {
	mux      *http.ServeMux
	statuses []func() tokencache.Status
	stopping atomic.Bool
	// tokenRequests counts token API requests by route and status.
	tokenRequests *prometheus.CounterVec
	// oauth2Requests counts local OAuth 2.0 token requests by route and
	// result.
	oauth2Requests *prometheus.CounterVec
	// credentials report each route's credential expiry, by route name;
	// set before serving, read-only after.
	credentials map[string]func() credexpiry.Status
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
		oauth2Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "credproxy_oauth2_token_requests_total",
			Help: "Requests to the local OAuth 2.0 token endpoint (POST /oauth2/token) by route (empty for an unknown client) and result: ok, forbidden (a caller guard refused it), or the RFC 6749 error answered (invalid_request, invalid_client, unsupported_grant_type, temporarily_unavailable).",
		}, []string{"route", "result"}),
	}
	reg.MustRegister(a.tokenRequests, a.oauth2Requests)
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
	Ready        bool             `json:"ready"`
	ShuttingDown bool             `json:"shutting_down,omitempty"`
	Routes       []routeReadiness `json:"routes"`
}

// routeReadiness is one route in /readyz: its token state and what is
// known of its credential's expiry, which readiness does not depend on.
type routeReadiness struct {
	tokencache.Status
	credentialView
}

func (a *Admin) readyz(w http.ResponseWriter, _ *http.Request) {
	body := readiness{Ready: true, Routes: make([]routeReadiness, 0, len(a.statuses))}
	for _, st := range a.statuses {
		s := st()
		body.Routes = append(body.Routes, routeReadiness{Status: s, credentialView: a.credential(s.Route)})
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

// errorBody is the JSON body of every error credproxy itself answers.
type errorBody = jsonerror.Body

func writeError(w http.ResponseWriter, status int, body errorBody) { jsonerror.Write(w, status, body) }
