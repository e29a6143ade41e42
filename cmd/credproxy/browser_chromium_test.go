package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/credproxy/credproxy/internal/chromiumtest"

	"github.com/credproxy/credproxy/internal/demo"
)

// dumpDOM loads url in headless Chromium with a fresh profile and returns
// the DOM after the page's scripts and loads ran for a few seconds of
// virtual time.
func dumpDOM(t *testing.T, url string) string {
	t.Helper()
	return chromiumtest.Run(t, url, chromiumtest.Options{})
}

// attackPage is a page of another origin that tries to spend the
// credential of the reverse listener at target in every way a page can
// without the user's help: a no-cors fetch, a CORS fetch that needs no
// preflight, an image and an auto-submitted form.
const attackPage = `<!doctype html><html><body>
<iframe name="sink"></iframe>
<form id="f" method="POST" action="%[1]s/api/v2/form" target="sink"><input name="name" value="x"></form>
<img src="%[1]s/api/v2/img">
<script>
fetch("%[1]s/api/v2/nocors", {method: "POST", mode: "no-cors", body: "x"}).catch(() => {});
fetch("%[1]s/api/v2/cors", {method: "POST", headers: {"Content-Type": "text/plain"}, body: "x"}).catch(() => {});
document.getElementById("f").submit();
</script></body></html>`

// TestBrowserGuardInChromium opens, in a real browser, a page of another
// origin on loopback (http://localhost:PORT, so that Private Network
// Access lets its requests reach credproxy at http://127.0.0.1:PORT) that
// attacks the reverse listener: the upstream sees nothing, and the
// denied metric shows it was credproxy's guard that refused each request,
// not the browser. The status page still renders its table.
func TestBrowserGuardInChromium(t *testing.T) {
	chromiumtest.Need(t)
	const apiToken = "browserCr-9e41-7c2d-f00d"
	_, cspURL, echo, echoURL, certFile := fakes(t, demo.CSPOptions{APIToken: apiToken, TTL: time.Hour})
	p := start(t, cspEnv(cspURL, apiToken, echoURL, certFile, onLoopback...))
	addrs := p.listeners(t, 3)
	waitReady(t, addrs["admin"])
	reverse, admin := "http://"+addrs["route default"], "http://"+addrs["admin"]

	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, attackPage, reverse)
	}))
	defer page.Close()
	dumpDOM(t, "http://localhost:"+port(t, page.URL)+"/")

	const want = `credproxy_requests_denied_total{reason="browser_request_refused",route="default"} 4`
	deadline := time.Now().Add(10 * time.Second)
	metrics := get(t, admin+"/metrics")
	for !strings.Contains(metrics, want) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		metrics = get(t, admin+"/metrics")
	}
	if n := echo.Requests(); n != 0 {
		t.Errorf("the upstream saw %d requests from another origin's page, want none", n)
	}
	if !strings.Contains(metrics, want) {
		t.Errorf("the guard did not refuse the page's 4 requests (fetch no-cors, fetch cors, img, form); /metrics has:\n%s", grepLines(metrics, "credproxy_requests_denied_total"))
	}

	dom := dumpDOM(t, admin+"/")
	if !strings.Contains(dom, `<tr data-route="default">`) || !strings.Contains(dom, "csp-api-token") {
		t.Errorf("the status page shows no row for route default in Chromium:\n%s", dom)
	}
}

// grepLines returns the lines of text that contain s.
func grepLines(text, s string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
