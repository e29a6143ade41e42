package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credproxy/credproxy/credexpiry"
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

// chromiumPath is Debian's chromium, which CI installs.
const chromiumPath = "/usr/bin/chromium"

// demoCredentials gives demoStatusRoutes their credential expiries: one
// with weeks left, one under the 7-day warning, one expired, and the
// static route's unknown.
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

// demoStatusRoutes are four routes in the states an on-call person meets.
func demoStatusRoutes() []Route {
	now := time.Now()
	fixed := func(st tokencache.Status) func() tokencache.Status {
		return func() tokencache.Status {
			if !st.ExpiresAt.IsZero() {
				st.ExpiresIn = time.Until(st.ExpiresAt).Seconds()
			}
			return st
		}
	}
	return []Route{
		{Name: "wavefront", Upstream: "https://example.wavefront.com", Listen: "127.0.0.1:8080", Status: fixed(tokencache.Status{
			Route: "wavefront", Kind: "csp-oauth-app", State: "valid", Ready: true,
			ExpiresAt: now.Add(27*time.Minute + 41*time.Second), LastAttempt: now.Add(-2*time.Minute - 19*time.Second), NextExchange: now.Add(17*time.Minute + 3*time.Second)})},
		{Name: "splunk", Upstream: "https://api.us1.signalfx.com", Listen: "127.0.0.1:8081", Status: fixed(tokencache.Status{
			Route: "splunk", Kind: "splunk-session", State: "renewing", Ready: true, ConsecutiveFailures: 3,
			ExpiresAt: now.Add(9*24*time.Hour + 5*time.Hour), LastAttempt: now.Add(-41 * time.Second), NextExchange: now.Add(19 * time.Second),
			LastError: "splunk: POST https://api.us1.signalfx.com/v2/session: HTTP 503: service unavailable"})},
		{Name: "ingest", Upstream: "https://ingest.us1.signalfx.com", Listen: "127.0.0.1:8082", Status: fixed(tokencache.Status{
			Route: "ingest", Kind: "static", State: "valid", Ready: true, LastAttempt: now.Add(-3 * time.Minute), NextExchange: now.Add(2 * time.Minute)})},
		{Name: "billing", Upstream: "https://billing.example.com", Status: fixed(tokencache.Status{
			Route: "billing", Kind: "oauth2-client-credentials", State: "pending", ConsecutiveFailures: 4,
			LastAttempt: now.Add(-12 * time.Second), NextExchange: now.Add(48 * time.Second),
			LastError: "oauth2: token endpoint https://login.example.com/oauth2/token: HTTP 401: invalid_client: client authentication failed"})},
	}
}

// runChromium loads url in headless Chromium and returns the DOM after
// the page's scripts ran for a few seconds of virtual time. With shot set
// it writes a screenshot there instead of dumping the DOM.
func runChromium(t *testing.T, url, shot string) string {
	t.Helper()
	args := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-default-apps", "--disable-extensions", "--mute-audio", "--hide-scrollbars",
		"--user-data-dir=" + t.TempDir(), "--virtual-time-budget=3000"}
	if shot != "" {
		args = append(args, "--window-size=1400,430", "--force-device-scale-factor=1", "--screenshot="+shot)
	} else {
		args = append(args, "--dump-dom")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, chromiumPath, append(args, url)...)
	cmd.WaitDelay = 5 * time.Second
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium: %v\n%s", err, stderr.String())
	}
	return string(out)
}

func TestStatusPageInChromium(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("CREDPROXY_REQUIRE_CHROMIUM") == "1" {
			t.Fatalf("CREDPROXY_REQUIRE_CHROMIUM=1 but %s is missing (apt-get install chromium): %v", chromiumPath, err)
		}
		t.Skipf("%s not installed; CI installs it and sets CREDPROXY_REQUIRE_CHROMIUM=1", chromiumPath)
	}
	admin := New(Options{Registry: prometheus.NewRegistry(), Routes: demoCredentials(demoStatusRoutes())})
	srv := httptest.NewServer(admin) // 127.0.0.1
	defer srv.Close()

	dom := runChromium(t, srv.URL+"/", "")
	rows := regexp.MustCompile(`(?s)<tr data-route="([^"]+)">(.*?)</tr>`).FindAllStringSubmatch(dom, -1)
	if len(rows) != 4 {
		t.Fatalf("the page shows %d routes, want 4; DOM:\n%s", len(rows), dom)
	}
	cellText := func(row, class string) string {
		m := regexp.MustCompile(`<td class="` + class + `[^"]*"[^>]*>(.*?)</td>`).FindStringSubmatch(row)
		if m == nil {
			return ""
		}
		return regexp.MustCompile(`<[^>]+>`).ReplaceAllString(m[1], "")
	}
	countdown := regexp.MustCompile(`^(\d+d \d{2}h \d{2}m|\d+h \d{2}m \d{2}s|\d+m \d{2}s|\d+s)$`)
	want := []struct {
		route, kind, state, countdown, errorPart string
		// credential is the credential cell's text; credentialHTML is
		// how the cell holds it (the warning colour is a pill class).
		credential, credentialHTML string
	}{
		{"wavefront", "csp-oauth-app", "valid", "2", "", "20 days", "<span>20 days</span>"},
		{"splunk", "splunk-session", "renewing", "9d 0", "HTTP 503", "3 days", `<span class="pill soon">3 days</span>`},
		{"ingest", "static", "valid", "never", "", "-", "-"},
		{"billing", "oauth2-client-credentials", "pending", "-", "invalid_client", "expired", `<span class="pill expired">expired</span>`},
	}
	for i, w := range want {
		route, row := rows[i][1], rows[i][2]
		if route != w.route {
			t.Errorf("row %d is %q, want %q", i, route, w.route)
		}
		if got := cellText(row, "route"); got != w.route {
			t.Errorf("%s: route cell %q", w.route, got)
		}
		if got := cellText(row, "kind"); got != w.kind {
			t.Errorf("%s: kind %q, want %q", w.route, got, w.kind)
		}
		if got := cellText(row, "state"); !strings.HasPrefix(got, w.state) {
			t.Errorf("%s: state %q, want %q", w.route, got, w.state)
		}
		got := cellText(row, "countdown")
		if !strings.HasPrefix(got, w.countdown) || (w.countdown != "never" && w.countdown != "-" && !countdown.MatchString(got)) {
			t.Errorf("%s: expires in %q, want a countdown from %q", w.route, got, w.countdown)
		}
		if got := cellText(row, "credential"); got != w.credential {
			t.Errorf("%s: credential %q, want %q", w.route, got, w.credential)
		}
		if m := regexp.MustCompile(`<td class="credential"[^>]*>(.*?)</td>`).FindStringSubmatch(row); m == nil || m[1] != w.credentialHTML {
			t.Errorf("%s: credential cell %v, want %s", w.route, m, w.credentialHTML)
		}
		if got := cellText(row, "error"); !strings.Contains(got, w.errorPart) {
			t.Errorf("%s: last error %q, want it to mention %q", w.route, got, w.errorPart)
		}
		if got := cellText(row, "last"); !strings.HasSuffix(got, " ago") {
			t.Errorf("%s: last exchange %q", w.route, got)
		}
	}
	// The countdown runs in the browser between fetches: seconds of
	// virtual time after a fetch of a token with 27m 41s left show less
	// than that, and (however slow the machine) more than 20 minutes.
	var mins, secs int
	if got := cellText(rows[0][2], "countdown"); func() bool {
		_, err := fmt.Sscanf(got, "%dm %ds", &mins, &secs)
		return err != nil
	}() || mins*60+secs >= 27*60+41 || mins < 20 {
		t.Errorf("countdown did not run: %q", got)
	}
	if !strings.Contains(dom, `id="overall" class="pill ready">ready<`) && !strings.Contains(dom, `id="overall" class="pill notready">not ready<`) {
		t.Errorf("overall readiness missing:\n%s", dom)
	}
	if !strings.Contains(dom, ">not ready<") {
		t.Errorf("a pending route must make the page say not ready")
	}

	// CREDPROXY_STATUS_SCREENSHOT=/abs/path/status.png writes the README's
	// screenshot (docs/status.png).
	if shot := os.Getenv("CREDPROXY_STATUS_SCREENSHOT"); shot != "" {
		runChromium(t, srv.URL+"/", shot)
		if fi, err := os.Stat(shot); err != nil || fi.Size() == 0 {
			t.Fatalf("screenshot %s not written: %v", shot, err)
		}
		fmt.Fprintf(os.Stderr, "wrote %s\n", shot)
	}
}
