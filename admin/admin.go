package admin

import (
	"encoding/json"
	"net/http"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/credproxy/credproxy/credexpiry"
	"github.com/credproxy/credproxy/internal/jsonerror"
	"github.com/credproxy/credproxy/tokenapi"
	"github.com/credproxy/credproxy/tokencache"
)

// Route is a route as the admin listener reports it: in /readyz, on the
// status page and in /status.json.
type Route struct {
	// Name is the route's name.
	Name string
	// Upstream is the route's upstream base URL, shown as it is: the
	// caller redacts it.
	Upstream string
	// Listen is the route's reverse-proxy address, empty when it has none.
	Listen string
	// Status reports the route's token state (tokencache.Cache.Status).
	// It is called at every request, concurrently.
	Status func() tokencache.Status
	// Credential reports what is known of the route's long-lived
	// credential's expiry (credexpiry.Watcher.Status); nil shows none.
	// It never affects readiness.
	Credential func() credexpiry.Status
	// Edge is what guards the route's callers, and how many it refused.
	Edge RouteEdge
}

// Options is everything the admin listener serves. It is complete at New:
// nothing is added afterwards.
type Options struct {
	// Registry is what GET /metrics serves, all of it: each package
	// registers its own metrics there (proxy, tokencache, tokensink,
	// credexpiry, tokenapi). Nil serves no /metrics.
	Registry *prometheus.Registry
	// Routes are reported by /readyz, the status page (GET /, with
	// /status.js and /status.css) and GET /status.json, in this order.
	Routes []Route
	// TokenAPI, when set, is mounted at tokenapi.TokenPath
	// (tokenapi.NewTokenHandler); nil leaves it off, answering
	// tokenapi.SwitchedOff there.
	TokenAPI http.Handler
	// OAuth2, when set, is mounted at tokenapi.OAuth2TokenPath
	// (tokenapi.NewOAuth2Handler); nil leaves it off, answering
	// tokenapi.SwitchedOff there.
	OAuth2 http.Handler
	// CA, when set, serves the forward proxy's CA certificate at GET
	// /ca.pem, for clients to trust: the PEM it returns at each request,
	// so that a CA reloaded on SIGHUP is the one served. Nil leaves it
	// off: /ca.pem answers 404 naming CREDPROXY_FORWARD_ADDR.
	CA func() []byte
	// AuditLog is where the audit log goes, as CREDPROXY_AUDIT_LOG says
	// it (edge.AuditTarget's String): "off" (also when empty), "stdout"
	// or the file's path. Shown in /readyz, status.json and the page.
	AuditLog string
}

// Admin serves the admin listener: /healthz, /readyz, the status page and
// what its Options give it.
type Admin struct {
	mux      *http.ServeMux
	routes   []Route
	auditLog string
	stopping atomic.Bool
}

// New returns the admin handler serving opts.
func New(opts Options) *Admin {
	a := &Admin{mux: http.NewServeMux(), routes: opts.Routes, auditLog: opts.AuditLog}
	if a.auditLog == "" {
		a.auditLog = "off"
	}
	a.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	a.mux.HandleFunc("GET /readyz", a.readyz)
	a.serveStatusPage()
	if opts.Registry != nil {
		a.mux.Handle("GET /metrics", promhttp.HandlerFor(opts.Registry, promhttp.HandlerOpts{
			Registry:            opts.Registry,
			MaxRequestsInFlight: 4,
		}))
	}
	// An endpoint that is switched off says which variable turns it on
	// (docs/design.md, "Admin listener").
	a.mux.Handle(tokenapi.TokenPath, orElse(opts.TokenAPI, tokenapi.SwitchedOff()))
	a.mux.Handle(tokenapi.OAuth2TokenPath, orElse(opts.OAuth2, tokenapi.SwitchedOff()))
	if opts.CA != nil {
		a.mux.HandleFunc("GET /ca.pem", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/x-pem-file")
			_, _ = w.Write(opts.CA())
		})
	} else {
		a.mux.HandleFunc("/ca.pem", func(w http.ResponseWriter, _ *http.Request) {
			jsonerror.Write(w, http.StatusNotFound, jsonerror.Body{Error: "endpoint_off",
				Detail: "the forward proxy is off, so it has no CA to trust: set CREDPROXY_FORWARD_ADDR to turn it on"})
		})
	}
	return a
}

// orElse is h, or off when h is nil.
func orElse(h, off http.Handler) http.Handler {
	if h == nil {
		return off
	}
	return h
}

// ShuttingDown makes /readyz fail from now on; it is the first step of a
// graceful shutdown.
func (a *Admin) ShuttingDown() { a.stopping.Store(true) }

func (a *Admin) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.mux.ServeHTTP(w, r) }

// readiness is the /readyz body.
type readiness struct {
	Ready        bool             `json:"ready"`
	ShuttingDown bool             `json:"shutting_down,omitempty"`
	AuditLog     string           `json:"audit_log"`
	Routes       []routeReadiness `json:"routes"`
}

// routeReadiness is one route in /readyz: its token state and what is
// known of its credential's expiry, which readiness does not depend on.
type routeReadiness struct {
	tokencache.Status
	credentialView
	Edge edgeView `json:"edge"`
}

func (a *Admin) readyz(w http.ResponseWriter, _ *http.Request) {
	body := readiness{Ready: true, AuditLog: a.auditLog, Routes: make([]routeReadiness, 0, len(a.routes))}
	for _, r := range a.routes {
		s := r.Status()
		body.Routes = append(body.Routes, routeReadiness{Status: s, credentialView: r.credential(), Edge: r.Edge.view()})
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
