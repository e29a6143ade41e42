package admin

import (
	"bytes"
	"embed"
	"encoding/json"
	"net/http"
	"time"

	"github.com/credproxy/credproxy/tokencache"
)

// static holds the status page: one HTML template with its script and
// style sheet, served from the binary (no external assets, nothing
// fetched from elsewhere).
//
//go:embed static/status.html static/status.js static/status.css
var static embed.FS

// statusPageCSP allows the page its own script, style sheet and JSON and
// nothing else: no inline code, no other origin, no framing.
const statusPageCSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// routeView is one route in /status.json: the token state (never a token)
// with where the route goes.
type routeView struct {
	tokencache.Status
	credentialView
	Upstream string   `json:"upstream"`
	Listen   string   `json:"listen,omitempty"`
	Edge     edgeView `json:"edge"`
}

// statusView is the /status.json body.
type statusView struct {
	Ready        bool        `json:"ready"`
	ShuttingDown bool        `json:"shutting_down,omitempty"`
	AuditLog     string      `json:"audit_log"`
	Now          time.Time   `json:"now"`
	Routes       []routeView `json:"routes"`
}

// serveStatusPage serves the status page for the person on call at GET /
// (with /status.js and /status.css) and its data at GET /status.json.
// The page is rendered here, complete: it reads without JavaScript. Its
// script only refreshes it, fetching the page again every 5 s, and
// counts its times on in between.
func (a *Admin) serveStatusPage() {
	a.mux.HandleFunc("GET /{$}", a.statusPage)
	a.mux.HandleFunc("GET /status.js", serveStatic("static/status.js", "text/javascript; charset=utf-8"))
	a.mux.HandleFunc("GET /status.css", serveStatic("static/status.css", "text/css; charset=utf-8"))
	a.mux.HandleFunc("GET /status.json", func(w http.ResponseWriter, _ *http.Request) {
		body := statusView{Ready: true, AuditLog: a.auditLog, Now: time.Now().UTC(), Routes: make([]routeView, 0, len(a.routes))}
		for _, r := range a.routes {
			st := r.Status()
			body.Routes = append(body.Routes, routeView{Status: st, credentialView: r.credential(), Upstream: r.Upstream, Listen: r.Listen,
				Edge: r.Edge.view()})
			body.Ready = body.Ready && st.Ready
		}
		if a.stopping.Load() {
			body.Ready, body.ShuttingDown = false, true
		}
		securityHeaders(w)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(body)
	})
}

// statusPage renders the status page.
func (a *Admin) statusPage(w http.ResponseWriter, _ *http.Request) {
	var b bytes.Buffer
	if err := pageTemplate.Execute(&b, newPageView(a.routes, a.auditLog, a.stopping.Load(), time.Now())); err != nil {
		http.Error(w, "status page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	securityHeaders(w)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(b.Bytes())
}

func serveStatic(name, contentType string) http.HandlerFunc {
	b, err := static.ReadFile(name)
	if err != nil {
		panic("admin: embedded " + name + " missing: " + err.Error()) // a build error, caught by every test
	}
	return func(w http.ResponseWriter, _ *http.Request) {
		securityHeaders(w)
		w.Header().Set("Content-Type", contentType)
		_, _ = w.Write(b)
	}
}

func securityHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", statusPageCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
}
