package admin

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credproxy/credproxy/internal/chromiumtest"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/credproxy/credproxy/credexpiry"
	"github.com/credproxy/credproxy/tokencache"
)

// demoCredentials gives demoStatusRoutes their credential expiries: one
// with weeks left, one under the 7-day warning, one expired, and the
// others unknown.
func demoCredentials(routes []Route) []Route {
	now := time.Now()
	fixed := func(st credexpiry.Status) func() credexpiry.Status { return func() credexpiry.Status { return st } }
	known := map[string]credexpiry.Status{
		"wavefront": {ExpiresAt: now.Add(20*24*time.Hour + 3*time.Hour), Source: credexpiry.SourceLookup},
		"splunk":    {ExpiresAt: now.Add(3*24*time.Hour + 5*time.Hour), Source: credexpiry.SourceConfig},
		"billing":   {ExpiresAt: now.Add(-2 * time.Hour), Source: credexpiry.SourceExchange},
	}
	for i, r := range routes {
		if st, ok := known[r.Name]; ok {
			routes[i].Credential = fixed(st)
		}
	}
	return routes
}

// longUpstream and longError are what pushed the last error off-screen
// at 1400 px: a long URL without a space to break at.
const (
	longUpstream = "https://billing-gateway.eu-central-1.internal.example-corporation.com/api/v3/tenants/7f3c1e9a-2b44-4d1b-9a57-0c6e1f2d8b90/invoices"
	longError    = "oauth2: token endpoint https://login.eu-central-1.internal.example-corporation.com/oauth2/v2.0/tenants/7f3c1e9a-2b44-4d1b-9a57-0c6e1f2d8b90/token?api-version=2024-11-01&resource=urn:billing-gateway:invoices: " +
		"HTTP 401: invalid_client: AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '0c6e1f2d-8b90-4d1b-9a57-7f3c1e9a2b44'."
)

// demoStatusRoutes are six routes, one in each state an on-call person
// meets. Each call of billing's Status counts in calls, when set, and
// shows one more failure: a page refreshed by its script shows more.
func demoStatusRoutes(calls *atomic.Int32) []Route {
	now := time.Now()
	fixed := func(st tokencache.Status) func() tokencache.Status {
		return func() tokencache.Status {
			if !st.ExpiresAt.IsZero() {
				st.ExpiresIn = time.Until(st.ExpiresAt).Seconds()
			}
			return st
		}
	}
	billing := tokencache.Status{Route: "billing", Kind: "oauth2-client-credentials", State: tokencache.StateFailing, ConsecutiveFailures: 4,
		LastAttempt: now.Add(-12 * time.Second), NextExchange: now.Add(48 * time.Second), LastError: longError}
	return []Route{
		{Name: "wavefront", Upstream: "https://example.wavefront.com", Listen: "127.0.0.1:8080", Status: fixed(tokencache.Status{
			Route: "wavefront", Kind: "csp-oauth-app", State: tokencache.StateValid, Ready: true,
			ExpiresAt: now.Add(27*time.Minute + 41*time.Second), LastAttempt: now.Add(-2*time.Minute - 19*time.Second),
			LastSuccess: now.Add(-2*time.Minute - 19*time.Second), NextExchange: now.Add(17*time.Minute + 3*time.Second)})},
		{Name: "splunk", Upstream: "https://api.us1.signalfx.com", Listen: "127.0.0.1:8081", Edge: RouteEdge{Keys: true, Policy: true, Peers: true,
			Denied: func() map[string]uint64 {
				return map[string]uint64{"denied_by_policy": 1234, "client_key_required": 56, "browser_request_refused": 7, "caller_not_allowed": 3}
			}}, Status: fixed(tokencache.Status{
			Route: "splunk", Kind: "splunk-session", State: tokencache.StateRenewing, Ready: true, ConsecutiveFailures: 3,
			ExpiresAt: now.Add(9*24*time.Hour + 5*time.Hour), LastAttempt: now.Add(-41 * time.Second), LastSuccess: now.Add(-20*24*time.Hour - 19*time.Hour),
			NextExchange: now.Add(19 * time.Second), LastError: "splunk: POST https://api.us1.signalfx.com/v2/session: HTTP 503: service unavailable"})},
		{Name: "ingest", Upstream: "https://ingest.us1.signalfx.com", Listen: "127.0.0.1:8082", Status: fixed(tokencache.Status{
			Route: "ingest", Kind: "static", State: tokencache.StateValid, Ready: true, LastAttempt: now.Add(-3 * time.Minute),
			LastSuccess: now.Add(-3 * time.Minute), NextExchange: now.Add(2 * time.Minute)})},
		{Name: "billing", Upstream: longUpstream, Edge: RouteEdge{Policy: true}, Status: func() tokencache.Status {
			st := billing
			if calls != nil {
				st.ConsecutiveFailures += int(calls.Add(1))
			}
			return st
		}},
		{Name: "audit", Upstream: "https://audit.example.com", Listen: "127.0.0.1:8083", Status: fixed(tokencache.Status{
			Route: "audit", Kind: "csp-api-token", State: tokencache.StateExpired, ExpiresAt: now.Add(-4 * time.Second),
			LastAttempt: now.Add(-25 * time.Second), LastSuccess: now.Add(-18*time.Minute - 25*time.Second), NextExchange: now.Add(-25 * time.Second)})},
		{Name: "metrics", Upstream: "https://metrics.example.com", Listen: "127.0.0.1:8084", Status: fixed(tokencache.Status{
			Route: "metrics", Kind: "oauth2-token-exchange", State: tokencache.StatePending, LastAttempt: now.Add(-time.Second)})},
	}
}

// demoWant is what the page shows of demoStatusRoutes.
var demoWant = []struct {
	route, kind, state, expires, success, errorPart, upstreamPart string
	// credHTML is how the credential cell holds its text (the warning
	// colour is a pill class).
	credHTML string
}{
	{"wavefront", "csp-oauth-app", "valid", "27m ", "ago", "", "example.wavefront.com", "<span>20 days</span>"},
	{"splunk", "splunk-session", "renewing", "9d 0", "ago", "HTTP 503", "signalfx", `<span class="pill soon">3 days</span>`},
	{"ingest", "static", "valid", "never", "ago", "", "ingest", "-"},
	{"billing", "oauth2-client-credentials", "failing", "-", "never", "AADSTS7000215", "billing-gateway", `<span class="pill expired">expired</span>`},
	{"audit", "csp-api-token", "expired", "expired", "ago", "", "audit", "-"},
	{"metrics", "oauth2-token-exchange", "pending", "-", "never", "", "metrics", "-"},
}

// measureJS is added to the page by the test only: after the page's
// script has refreshed it, it writes where the route cells lie into the
// DOM, for --dump-dom to show.
const measureJS = `'use strict';
setTimeout(() => {
  const cells = [];
  for (const td of document.querySelectorAll('#routes tbody td')) {
    const b = td.getBoundingClientRect();
    cells.push({route: td.parentElement.dataset.route, cls: td.className, left: b.left, right: b.right,
      scrollWidth: td.scrollWidth, clientWidth: td.clientWidth});
  }
  const out = document.createElement('pre');
  out.id = 'measure';
  out.hidden = true;
  out.textContent = JSON.stringify({innerWidth: window.innerWidth, scrollWidth: document.documentElement.scrollWidth, cells});
  document.body.appendChild(out);
}, 6500);
`

// measured is what measureJS writes.
type measured struct {
	InnerWidth  float64 `json:"innerWidth"`
	ScrollWidth float64 `json:"scrollWidth"`
	Cells       []struct {
		Route, Cls                            string
		Left, Right, ScrollWidth, ClientWidth float64
	} `json:"cells"`
}

// withMeasure serves h, adding measureJS to its status page. With
// noScript it serves the page with script-src 'none' in its
// Content-Security-Policy instead: the browser runs none of its scripts,
// as with JavaScript off. (Headless Chromium's
// --blink-settings=scriptEnabled=false also stops --dump-dom and
// --screenshot, which use script, so it cannot be tested that way.)
func withMeasure(h http.Handler, noScript *atomic.Bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/measure.js" {
			w.Header().Set("Content-Type", "text/javascript")
			_, _ = io.WriteString(w, measureJS)
			return
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		body := rec.Body.String()
		if r.URL.Path == "/" {
			body = strings.Replace(body, "</head>", `<script src="measure.js" defer></script></head>`, 1)
			if noScript.Load() {
				csp := w.Header().Get("Content-Security-Policy")
				w.Header().Set("Content-Security-Policy", strings.Replace(csp, "script-src 'self'", "script-src 'none'", 1))
			}
		}
		w.WriteHeader(rec.Code)
		_, _ = io.WriteString(w, body)
	})
}

// runChromium loads url in headless Chromium in a window of width x
// height and returns the DOM after 8 s of virtual time. With shot set it
// writes a screenshot there instead.
func runChromium(t *testing.T, url string, width, height int, shot string) string {
	t.Helper()
	return chromiumtest.Run(t, url, chromiumtest.Options{Width: width, Height: height, Screenshot: shot, VirtualTime: 8 * time.Second})
}

var failuresRE = regexp.MustCompile(`(\d+) failed in a row`)

// billingFailures is the failure count the page shows for billing.
func billingFailures(t *testing.T, dom string) int {
	t.Helper()
	for _, r := range pageRows(dom) {
		if r.route == "billing" {
			if m := failuresRE.FindStringSubmatch(r.cells["state"]); m != nil {
				n, _ := strconv.Atoi(m[1])
				return n
			}
		}
	}
	t.Fatalf("billing shows no failure count:\n%s", dom)
	return 0
}

// TestStatusPageInChromium: at 800 and 1400 px, the page shows every
// route in its state, and its script refreshes it; every cell lies
// within the window and no text overflows its cell (the long upstream
// URL and error wrap). With JavaScript off the page is complete all the
// same. CREDPROXY_STATUS_SHOTS=/dir keeps the screenshots there to look
// at; CREDPROXY_STATUS_SCREENSHOT=/abs/docs/status.png writes the docs'
// screenshot at 1400 px.
func TestStatusPageInChromium(t *testing.T) {
	chromiumtest.Need(t)
	for _, width := range []int{800, 1400} {
		t.Run(fmt.Sprintf("%dpx", width), func(t *testing.T) {
			var calls atomic.Int32
			var noScript atomic.Bool
			srv := httptest.NewServer(withMeasure(New(Options{Registry: prometheus.NewRegistry(), Routes: demoCredentials(demoStatusRoutes(&calls))}), &noScript))
			defer srv.Close()

			dom := runChromium(t, srv.URL+"/", width, 900, "")
			checkPage(t, dom)
			// The page was rendered with billing at 5 failures; each
			// refresh by the script asks again and shows one more.
			if n := billingFailures(t, dom); n < 6 || int(calls.Load()) < 2 {
				t.Errorf("the script did not refresh the page: billing shows %d failures after %d renders", n, calls.Load())
			}
			checkLayout(t, dom, width)
			shot(t, srv.URL, width, "")

			calls.Store(0)
			noScript.Store(true)
			dom = runChromium(t, srv.URL+"/", width, 900, "")
			checkPage(t, dom)
			if n := billingFailures(t, dom); n != 5 || calls.Load() != 1 {
				t.Errorf("without JavaScript: billing shows %d failures after %d renders, want the server's 5 after 1", n, calls.Load())
			}
			if strings.Contains(dom, `id="measure"`) {
				t.Error("JavaScript ran although the page's policy forbade it")
			}
			shot(t, srv.URL, width, "-noscript")
			noScript.Store(false)

			if docs := os.Getenv("CREDPROXY_STATUS_SCREENSHOT"); docs != "" && width == 1400 {
				runChromium(t, srv.URL+"/", width, 720, docs)
				t.Logf("wrote %s", docs)
			}
		})
	}
}

// shot screenshots the page at width into CREDPROXY_STATUS_SHOTS (or a
// temporary directory), as status-<width><suffix>.png.
func shot(t *testing.T, url string, width int, suffix string) {
	t.Helper()
	dir := os.Getenv("CREDPROXY_STATUS_SHOTS")
	if dir == "" {
		dir = t.TempDir()
	}
	file := filepath.Join(dir, fmt.Sprintf("status-%d%s.png", width, suffix))
	runChromium(t, url+"/", width, 900, file)
	if fi, err := os.Stat(file); err != nil || fi.Size() == 0 {
		t.Fatalf("screenshot %s not written: %v", file, err)
	}
}

// checkLayout reads measureJS's numbers from dom: at width, nothing is
// wider than the window, every cell lies within it, and no cell's text
// overflows it.
func checkLayout(t *testing.T, dom string, width int) {
	t.Helper()
	m := regexp.MustCompile(`(?s)<pre id="measure"[^>]*>(.*?)</pre>`).FindStringSubmatch(dom)
	if m == nil {
		t.Fatalf("no measurements in the DOM:\n%s", dom)
	}
	var got measured
	if err := json.Unmarshal([]byte(strings.ReplaceAll(m[1], "&quot;", `"`)), &got); err != nil {
		t.Fatalf("measurements %q: %v", m[1], err)
	}
	if got.InnerWidth != float64(width) {
		t.Fatalf("window %v px wide, want %d", got.InnerWidth, width)
	}
	if got.ScrollWidth > got.InnerWidth {
		t.Errorf("the page is %v px wide in a %v px window: it scrolls sideways", got.ScrollWidth, got.InnerWidth)
	}
	var errorCells int
	for _, c := range got.Cells {
		if c.Left < 0 || c.Right > got.InnerWidth {
			t.Errorf("%s %s: cell from %v to %v px, outside the %v px window", c.Route, c.Cls, c.Left, c.Right, got.InnerWidth)
		}
		if c.ScrollWidth > c.ClientWidth {
			t.Errorf("%s %s: text %v px wide in a %v px cell", c.Route, c.Cls, c.ScrollWidth, c.ClientWidth)
		}
		if c.Cls == "error" {
			errorCells++
		}
	}
	if errorCells != len(demoWant) {
		t.Errorf("measured %d error cells, want %d", errorCells, len(demoWant))
	}
}
