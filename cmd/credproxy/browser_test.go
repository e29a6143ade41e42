package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/credproxy/credproxy/internal/demo"
)

// browserAnswer sends req with client and returns its status and JSON
// error code.
func browserAnswer(t *testing.T, client *http.Client, req *http.Request) (int, string) {
	t.Helper()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var body struct{ Error string }
	_ = json.Unmarshal(b, &body)
	return resp.StatusCode, body.Error
}

// browserRequest is method url with the given Host (empty: the URL's)
// and headers (name, value pairs).
func browserRequest(t *testing.T, method, u, host string, kv ...string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(`{"name":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	for i := 0; i+1 < len(kv); i += 2 {
		req.Header.Set(kv[i], kv[i+1])
	}
	return req
}

// TestBrowserGuardBinary runs the binary and plays a web page against
// each listener: cross-site requests to the reverse listener and the
// forward proxy are refused with nothing sent upstream, a DNS-rebound
// name gets nothing from the admin listener, and callers that are not
// browsers are served as before.
func TestBrowserGuardBinary(t *testing.T) {
	const apiToken = "browserE2e-51c3-a0d2-feed"
	_, cspURL, echo, echoURL, certFile := fakes(t, demo.CSPOptions{APIToken: apiToken, TTL: time.Hour})
	p := start(t, cspEnv(cspURL, apiToken, echoURL, certFile, onLoopback...))
	addrs := p.listeners(t, 3)
	waitReady(t, addrs["admin"])
	reverse, admin := "http://"+addrs["route default"], "http://"+addrs["admin"]
	plain := &http.Client{}

	refused := []struct {
		desc string
		req  *http.Request
	}{
		{"cross-site POST (fetch or form)", browserRequest(t, "POST", reverse+"/api/v2/source", "", "Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site")},
		{"cross-origin POST without Sec-Fetch-Site", browserRequest(t, "POST", reverse+"/api/v2/source", "", "Origin", "http://localhost:8000")},
		{"Origin null", browserRequest(t, "POST", reverse+"/api/v2/source", "", "Origin", "null")},
		{"cross-site <img> GET", browserRequest(t, "GET", reverse+"/api/v2/source", "", "Sec-Fetch-Site", "cross-site")},
		{"same-site GET", browserRequest(t, "GET", reverse+"/api/v2/source", "", "Sec-Fetch-Site", "same-site")},
		{"DNS-rebound name", browserRequest(t, "GET", reverse+"/api/v2/source", "evil.example.com:"+port(t, reverse), "Sec-Fetch-Site", "same-origin")},
	}
	for _, tc := range refused {
		if code, e := browserAnswer(t, plain, tc.req); code != 403 || e != "browser_request_refused" {
			t.Errorf("reverse listener, %s: %d %q, want 403 browser_request_refused", tc.desc, code, e)
		}
	}
	if n := echo.Requests(); n != 0 {
		t.Errorf("the upstream saw %d requests from web pages, want none", n)
	}
	for _, req := range []*http.Request{
		browserRequest(t, "POST", reverse+"/api/v2/source", ""),
		browserRequest(t, "POST", reverse+"/api/v2/source", "localhost:"+port(t, reverse), "Origin", "http://localhost:"+port(t, reverse), "Sec-Fetch-Site", "same-origin"),
	} {
		if code, e := browserAnswer(t, plain, req); code != 200 {
			t.Errorf("reverse listener, %s with Host %s: %d %q, want 200", req.Method, req.Host, code, e)
		}
	}

	for _, path := range []string{"/readyz", "/status.json", "/metrics", "/"} {
		if code, e := browserAnswer(t, plain, browserRequest(t, "GET", admin+path, "evil.example.com:"+port(t, admin))); code != 403 || e != "browser_request_refused" {
			t.Errorf("admin %s under a rebound name: %d %q, want 403 browser_request_refused", path, code, e)
		}
		if code, _ := browserAnswer(t, plain, browserRequest(t, "GET", admin+path, "", "Sec-Fetch-Site", "same-origin")); code != 200 {
			t.Errorf("admin %s from its own page: %d, want 200", path, code)
		}
	}
	metrics := get(t, admin+"/metrics")
	for _, want := range []string{
		`credproxy_requests_denied_total{reason="browser_request_refused",route="default"} 6`,
		`credproxy_requests_denied_total{reason="browser_request_refused",route=""} 4`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if logs := p.stderr.String(); !strings.Contains(logs, `"origin":"https://evil.example"`) || !strings.Contains(logs, `"host":"evil.example.com:`) {
		t.Errorf("the refusals are not logged with their origin and host:\n%s", logs)
	}
}

// TestBrowserGuardForwardBinary: through the forward proxy, a request of
// another site's page to a route host, inside an intercepted tunnel or as
// a plain absolute-form request, is refused and nothing reaches the API;
// a client that is not a browser, and the API's own origin, get through.
func TestBrowserGuardForwardBinary(t *testing.T) {
	const apiToken = "browserFwd-77a1-0b3e-beef"
	_, cspURL, echo, echoURL, certFile := fakes(t, demo.CSPOptions{APIToken: apiToken, TTL: time.Hour})
	p := start(t, cspEnv(cspURL, apiToken, echoURL, certFile, onLoopback...))
	addrs := p.listeners(t, 3)
	waitReady(t, addrs["admin"])
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(get(t, "http://"+addrs["admin"]+"/ca.pem")))
	pu, _ := url.Parse("http://" + addrs["forward"])
	client := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(pu), TLSClientConfig: &tls.Config{RootCAs: pool}}}
	plainURL := strings.Replace(echoURL, "https://", "http://", 1)

	for _, req := range []*http.Request{
		browserRequest(t, "POST", echoURL+"/api/v2/source", "", "Origin", "https://evil.example"),
		browserRequest(t, "GET", echoURL+"/api/v2/source", "", "Sec-Fetch-Site", "cross-site"),
		browserRequest(t, "POST", plainURL+"/api/v2/source", "", "Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site"),
	} {
		if code, e := browserAnswer(t, client, req); code != 403 || e != "browser_request_refused" {
			t.Errorf("forward proxy, %s %s from another site: %d %q, want 403 browser_request_refused", req.Method, req.URL, code, e)
		}
	}
	if n := echo.Requests(); n != 0 {
		t.Errorf("the upstream saw %d requests from another site's pages, want none", n)
	}
	for _, req := range []*http.Request{
		browserRequest(t, "POST", echoURL+"/api/v2/source", ""),
		browserRequest(t, "POST", echoURL+"/api/v2/source", "", "Origin", echoURL, "Sec-Fetch-Site", "same-origin"),
	} {
		if code, e := browserAnswer(t, client, req); code != 200 {
			t.Errorf("forward proxy, %s %v: %d %q, want 200", req.Method, req.Header, code, e)
		}
	}
	// Requests to the forward listener itself are guarded like any.
	req := browserRequest(t, "GET", "http://"+addrs["forward"]+"/", "evil.example.com:"+port(t, "http://"+addrs["forward"]))
	if code, e := browserAnswer(t, &http.Client{}, req); code != 403 || e != "browser_request_refused" {
		t.Errorf("forward listener under a rebound name: %d %q, want 403 browser_request_refused", code, e)
	}
	if metrics := get(t, "http://"+addrs["admin"]+"/metrics"); !strings.Contains(metrics, `credproxy_requests_denied_total{reason="browser_request_refused",route="default"} 3`) {
		t.Errorf("/metrics does not count the 3 refusals of route default:\n%s", metrics)
	}
}

// port is the port of a URL.
func port(t *testing.T, u string) string {
	t.Helper()
	pu, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	return pu.Port()
}
