package admin

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credproxy/credproxy/exchange"
	"github.com/credproxy/credproxy/internal/secret"
	"github.com/credproxy/credproxy/tokencache"
	"github.com/prometheus/client_golang/prometheus"
)

const statusTestToken = "status-SECRET-b81e44"

func get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func TestStatusJSONShowsRoutesNeverTokens(t *testing.T) {
	var n atomic.Int32
	src := exchange.SourceFunc(func(context.Context) (exchange.Token, error) {
		n.Add(1)
		return exchange.Token{Value: secret.New(statusTestToken), Expiry: time.Now().Add(30 * time.Minute)}, nil
	})
	cache := tokencache.New(src, tokencache.Options{Route: "wavefront", Kind: "csp-oauth-app"})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); cache.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	if _, err := cache.Token(ctx); err != nil {
		t.Fatal(err)
	}

	admin := New(Options{Registry: prometheus.NewRegistry(), Routes: []Route{{Name: "wavefront", Upstream: "https://example.wavefront.com", Listen: "127.0.0.1:8080", Status: cache.Status}}})
	srv := httptest.NewServer(admin)
	defer srv.Close()

	resp, body := get(t, srv.URL+"/status.json")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("status.json: %d %v", resp.StatusCode, resp.Header)
	}
	if strings.Contains(body, statusTestToken) {
		t.Fatalf("status.json carries the token: %s", body)
	}
	var got struct {
		Ready  bool
		Now    time.Time
		Routes []map[string]any
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	if !got.Ready || got.Now.IsZero() || len(got.Routes) != 1 {
		t.Fatalf("status.json: %s", body)
	}
	r := got.Routes[0]
	for k, want := range map[string]any{"route": "wavefront", "kind": "csp-oauth-app", "state": "valid", "upstream": "https://example.wavefront.com", "listen": "127.0.0.1:8080"} {
		if r[k] != want {
			t.Errorf("%s = %v, want %v", k, r[k], want)
		}
	}
	for _, k := range []string{"expires_at", "expires_in", "last_attempt", "next_exchange"} {
		if _, ok := r[k]; !ok {
			t.Errorf("status.json lacks %s: %s", k, body)
		}
	}
	admin.ShuttingDown()
	if _, body := get(t, srv.URL+"/status.json"); !strings.Contains(body, `"shutting_down":true`) || !strings.Contains(body, `"ready":false`) {
		t.Errorf("status.json while shutting down: %s", body)
	}
}

// externalRef finds a reference to another origin or inline code.
var externalRef = regexp.MustCompile(`(?i)(src|href|action)\s*=\s*["']?(https?:)?//|url\(|@import|<script>|<style|\sstyle=|\son[a-z]+=|innerHTML|eval\(`)

func TestStatusPageSelfContained(t *testing.T) {
	admin := New(Options{Registry: prometheus.NewRegistry()})
	srv := httptest.NewServer(admin)
	defer srv.Close()
	for path, ctype := range map[string]string{"/": "text/html", "/status.js": "text/javascript", "/status.css": "text/css", "/status.json": "application/json"} {
		resp, body := get(t, srv.URL+path)
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), ctype) {
			t.Errorf("%s: %d %s", path, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.HasPrefix(csp, "default-src 'none'") || strings.Contains(csp, "unsafe") {
			t.Errorf("%s: Content-Security-Policy %q", path, csp)
		}
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" || resp.Header.Get("X-Frame-Options") != "DENY" {
			t.Errorf("%s: headers %v", path, resp.Header)
		}
		if m := externalRef.FindString(body); m != "" && path != "/status.json" {
			t.Errorf("%s refers to another origin or has inline code: %q", path, m)
		}
	}
	if resp, _ := get(t, srv.URL+"/nothing-here"); resp.StatusCode != 404 {
		t.Errorf("unknown admin path: %d, want 404", resp.StatusCode)
	}
}

// TestStateSameEverywhere: a route whose first exchange was rejected is
// failing, and says so with the same word in /readyz, /status.json, the
// page (in red: the class failing) and credproxy_route_state; /readyz and
// /status.json name the attempt and success times as documented.
func TestStateSameEverywhere(t *testing.T) {
	src := exchange.SourceFunc(func(context.Context) (exchange.Token, error) {
		return exchange.Token{}, &exchange.Error{Op: "oauth2", Status: 401, Message: "invalid_client"}
	})
	reg := prometheus.NewRegistry()
	cache := tokencache.New(src, tokencache.Options{Route: "billing", Kind: "oauth2-client-credentials", Metrics: tokencache.NewMetrics(reg)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); cache.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	if _, err := cache.Token(ctx); err == nil {
		t.Fatal("the exchange was meant to fail")
	}
	srv := httptest.NewServer(New(Options{Registry: reg, Routes: []Route{{Name: "billing", Upstream: "https://billing.example.com", Status: cache.Status}}}))
	defer srv.Close()

	for _, path := range []string{"/readyz", "/status.json"} {
		_, body := get(t, srv.URL+path)
		var got struct{ Routes []map[string]any }
		if err := json.Unmarshal([]byte(body), &got); err != nil || len(got.Routes) != 1 {
			t.Fatalf("%s: %v %s", path, err, body)
		}
		r := got.Routes[0]
		if r["state"] != "failing" || r["ready"] != false {
			t.Errorf("%s: state %v ready %v, want failing, false", path, r["state"], r["ready"])
		}
		for _, k := range []string{"last_attempt", "next_exchange", "last_error", "consecutive_failures"} {
			if _, ok := r[k]; !ok {
				t.Errorf("%s lacks %s: %s", path, k, body)
			}
		}
		for _, k := range []string{"last_success", "last_exchange", "expires_at"} {
			if _, ok := r[k]; ok {
				t.Errorf("%s has %s with no token ever obtained: %s", path, k, body)
			}
		}
	}
	_, page := get(t, srv.URL+"/")
	if !strings.Contains(page, `<span class="pill failing">failing</span>`) {
		t.Errorf("the page does not show the route failing:\n%s", page)
	}
	_, metrics := get(t, srv.URL+"/metrics")
	if !strings.Contains(metrics, `credproxy_route_state{route="billing",state="failing"} 1`) ||
		!strings.Contains(metrics, `credproxy_route_state{route="billing",state="pending"} 0`) {
		t.Errorf("/metrics lacks the route's state")
	}
}

// pageRow is one route's row of the status page as the test reads it:
// each cell's text by class, and the state pill's class.
type pageRow struct {
	route     string
	cells     map[string]string
	stateHTML string
	credHTML  string
}

var (
	rowRE  = regexp.MustCompile(`(?s)<tr data-route="([^"]+)">(.*?)</tr>`)
	cellRE = regexp.MustCompile(`(?s)<td class="([a-z]+)[^"]*"[^>]*>(.*?)</td>`)
	tagRE  = regexp.MustCompile(`<[^>]+>`)
	spaces = regexp.MustCompile(`\s+`)
)

// pageRows reads the route rows of a status page (as served, or as a
// browser's DOM).
func pageRows(page string) []pageRow {
	var out []pageRow
	for _, m := range rowRE.FindAllStringSubmatch(page, -1) {
		r := pageRow{route: m[1], cells: map[string]string{}}
		for _, c := range cellRE.FindAllStringSubmatch(m[2], -1) {
			text := strings.ReplaceAll(c[2], "<wbr>", "")
			r.cells[c[1]] = strings.TrimSpace(spaces.ReplaceAllString(tagRE.ReplaceAllString(text, " "), " "))
			switch c[1] {
			case "state":
				r.stateHTML = c[2]
			case "credential":
				r.credHTML = strings.TrimSpace(c[2])
			}
		}
		out = append(out, r)
	}
	return out
}

// checkPage asserts what the status page says of demoStatusRoutes: in
// the served HTML and in a browser's DOM, with or without its script.
func checkPage(t *testing.T, page string) {
	t.Helper()
	rows := pageRows(page)
	if len(rows) != len(demoWant) {
		t.Fatalf("the page shows %d routes, want %d:\n%s", len(rows), len(demoWant), page)
	}
	ago := regexp.MustCompile(`^(\d+d \d{2}h \d{2}m|\d+h \d{2}m \d{2}s|\d+m \d{2}s|\d+s) ago$`)
	for i, w := range demoWant {
		r := rows[i]
		if r.route != w.route {
			t.Errorf("row %d is %q, want %q", i, r.route, w.route)
			continue
		}
		if got := r.cells["route"]; got != w.route+" "+w.kind {
			t.Errorf("%s: route cell %q, want name and kind", w.route, got)
		}
		if want := `<span class="pill ` + w.state + `">` + w.state + `</span>`; !strings.HasPrefix(strings.TrimSpace(r.stateHTML), want) {
			t.Errorf("%s: state cell %q, want it to start %s", w.route, r.stateHTML, want)
		}
		if !strings.HasPrefix(r.cells["expires"], w.expires) {
			t.Errorf("%s: expires in %q, want %q...", w.route, r.cells["expires"], w.expires)
		}
		if got := r.cells["success"]; (w.success == "never") != (got == "never") || (got != "never" && !ago.MatchString(got)) {
			t.Errorf("%s: last success %q, want %s", w.route, got, w.success)
		}
		if got := r.cells["attempt"]; !ago.MatchString(got) {
			t.Errorf("%s: last attempt %q, want a time ago", w.route, got)
		}
		if r.credHTML != w.credHTML {
			t.Errorf("%s: credential cell %q, want %s", w.route, r.credHTML, w.credHTML)
		}
		if got := r.cells["error"]; !strings.Contains(got, w.errorPart) || (w.errorPart == "" && got != "") {
			t.Errorf("%s: last error %q, want it to mention %q", w.route, got, w.errorPart)
		}
		if !strings.Contains(r.cells["upstream"], w.upstreamPart) {
			t.Errorf("%s: upstream %q", w.route, r.cells["upstream"])
		}
	}
	if !strings.Contains(page, `id="overall" class="pill notready">not ready<`) {
		t.Errorf("a failing route must make the page say not ready")
	}
}

// TestStatusPageRenderedOnServer: GET / is the complete page, rendered
// on the server: every route's row with its state, times and last error
// is in the HTML, so it reads without JavaScript.
func TestStatusPageRenderedOnServer(t *testing.T) {
	srv := httptest.NewServer(New(Options{Registry: prometheus.NewRegistry(), Routes: demoCredentials(demoStatusRoutes(nil))}))
	defer srv.Close()
	resp, page := get(t, srv.URL+"/")
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /: %d %v", resp.StatusCode, resp.Header)
	}
	checkPage(t, page)
	if strings.Contains(page, "&lt;") {
		t.Errorf("the page holds escaped markup:\n%s", page)
	}
}

// TestStatusPageEscapes: what a route reports is text on the page,
// never markup.
func TestStatusPageEscapes(t *testing.T) {
	st := tokencache.Status{Route: "r", State: tokencache.StateFailing, LastError: `<script>alert(1)</script>`}
	srv := httptest.NewServer(New(Options{Routes: []Route{{Name: `<b>r</b>`, Upstream: `https://x/"><img src=x>`, Status: func() tokencache.Status { return st }}}}))
	defer srv.Close()
	_, page := get(t, srv.URL+"/")
	for _, bad := range []string{"<script>alert", "<b>r</b>", `"><img`} {
		if strings.Contains(page, bad) {
			t.Errorf("the page holds %q unescaped", bad)
		}
	}
}
