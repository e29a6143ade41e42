package edge

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/credproxy/credproxy/internal/jsonerror"
	"github.com/credproxy/credproxy/internal/logtest"
	"github.com/credproxy/credproxy/internal/promtest"
)

// guardCase is one request through a guard and whether it must reach the
// handler behind it.
type guardCase struct {
	desc string
	// target is the request target: a path (origin form) or an absolute
	// URL; host overrides the Host header when set.
	target, host string
	header       map[string]string
	pass         bool
}

// serveGuard sends tc through h (a guard around a handler that records
// being reached) and checks the answer: the handler reached, or a 403
// browser_request_refused with nothing behind it reached.
func serveGuard(t *testing.T, wrap func(http.Handler) http.Handler, tc guardCase) {
	t.Helper()
	reached := false
	h := wrap(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { reached = true }))
	target := tc.target
	if target == "" {
		target = "/api/v2/x"
	}
	r := httptest.NewRequest("POST", target, nil)
	if !strings.HasPrefix(target, "http") {
		r.Host = "127.0.0.1:8080"
	}
	if tc.host != "" {
		r.Host = tc.host
	}
	for k, v := range tc.header {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if tc.pass {
		if !reached || w.Code != 200 {
			t.Errorf("%s: refused (%d %s), want it let through", tc.desc, w.Code, w.Body)
		}
		return
	}
	if reached {
		t.Errorf("%s: reached the handler, want it refused", tc.desc)
		return
	}
	var body jsonerror.Body
	if err := json.Unmarshal(w.Body.Bytes(), &body); w.Code != 403 || err != nil || body.Error != ReasonBrowser {
		t.Errorf("%s: %d %s, want 403 %s", tc.desc, w.Code, w.Body, ReasonBrowser)
	}
}

// TestBrowserOrigin covers the Origin and Sec-Fetch-Site rules of a
// request addressed to a loopback listener.
func TestBrowserOrigin(t *testing.T) {
	b := NewBrowser(BrowserOptions{Loopback: true, AllowedOrigins: []string{"https://grafana.example.com", "http://localhost:3000"}})
	tcs := []guardCase{
		{desc: "no browser headers (curl, SDKs)", pass: true},
		{desc: "own origin", header: map[string]string{"Origin": "http://127.0.0.1:8080"}, pass: true},
		{desc: "own origin, upper case", header: map[string]string{"Origin": "HTTP://127.0.0.1:8080"}, pass: true},
		{desc: "own origin with the default port", host: "localhost", header: map[string]string{"Origin": "http://localhost:80"}, pass: true},
		{desc: "own origin, https scheme: another origin", header: map[string]string{"Origin": "https://127.0.0.1:8080"}},
		{desc: "own host, another port", header: map[string]string{"Origin": "http://127.0.0.1:8081"}},
		{desc: "foreign origin", header: map[string]string{"Origin": "https://evil.example"}},
		{desc: "foreign origin with the own origin as a prefix", header: map[string]string{"Origin": "http://127.0.0.1:8080.evil.example"}},
		{desc: "Origin null (sandboxed frame, file:, redirects)", header: map[string]string{"Origin": "null"}},
		{desc: "empty Origin", header: map[string]string{"Origin": ""}},
		{desc: "localhost page to 127.0.0.1: another origin", header: map[string]string{"Origin": "http://localhost:8080"}},
		{desc: "allowed origin", header: map[string]string{"Origin": "https://grafana.example.com"}, pass: true},
		{desc: "allowed origin, default port spelled out", header: map[string]string{"Origin": "https://grafana.example.com:443"}, pass: true},
		{desc: "allowed origin, cross-site fetch", header: map[string]string{"Origin": "http://localhost:3000", "Sec-Fetch-Site": "cross-site"}, pass: true},
		{desc: "allowed origin's host over http", header: map[string]string{"Origin": "http://grafana.example.com"}},
		{desc: "Sec-Fetch-Site cross-site (no-cors GET sends no Origin)", header: map[string]string{"Sec-Fetch-Site": "cross-site"}},
		{desc: "Sec-Fetch-Site same-site", header: map[string]string{"Sec-Fetch-Site": "same-site"}},
		{desc: "Sec-Fetch-Site same-site upper case", header: map[string]string{"Sec-Fetch-Site": "Same-Site"}},
		{desc: "Sec-Fetch-Site same-origin", header: map[string]string{"Sec-Fetch-Site": "same-origin"}, pass: true},
		{desc: "Sec-Fetch-Site none (typed in the address bar)", header: map[string]string{"Sec-Fetch-Site": "none"}, pass: true},
		{desc: "own Origin but cross-site", header: map[string]string{"Origin": "http://127.0.0.1:8080", "Sec-Fetch-Site": "cross-site"}},
		{desc: "own Origin, same-origin", header: map[string]string{"Origin": "http://127.0.0.1:8080", "Sec-Fetch-Site": "same-origin"}, pass: true},
	}
	for _, tc := range tcs {
		serveGuard(t, b.Wrap, tc)
	}
}

// TestBrowserHost covers the DNS-rebinding rule: which Host values a
// listener accepts, by where it is bound.
func TestBrowserHost(t *testing.T) {
	loopback := NewBrowser(BrowserOptions{Loopback: true, AllowedHosts: []string{"credproxy.internal", "Sidecar"}})
	elsewhere := NewBrowser(BrowserOptions{Loopback: false})
	restricted := NewBrowser(BrowserOptions{Loopback: false, AllowedHosts: []string{"credproxy.svc"}})
	tcs := []struct {
		b *Browser
		guardCase
	}{
		{loopback, guardCase{desc: "loopback: IPv4 literal", host: "127.0.0.1:8080", pass: true}},
		{loopback, guardCase{desc: "loopback: IPv4 literal without port", host: "127.0.0.1", pass: true}},
		{loopback, guardCase{desc: "loopback: another IPv4 literal", host: "10.1.2.3:8080", pass: true}},
		{loopback, guardCase{desc: "loopback: IPv6 literal", host: "[::1]:8080", pass: true}},
		{loopback, guardCase{desc: "loopback: IPv6 literal without port", host: "[::1]", pass: true}},
		{loopback, guardCase{desc: "loopback: localhost", host: "localhost:8080", pass: true}},
		{loopback, guardCase{desc: "loopback: LocalHost, no port", host: "LocalHost", pass: true}},
		{loopback, guardCase{desc: "loopback: localhost.", host: "localhost.:8080", pass: true}},
		{loopback, guardCase{desc: "loopback: allowed name", host: "credproxy.internal:8080", pass: true}},
		{loopback, guardCase{desc: "loopback: allowed name, other case, trailing dot", host: "SIDECAR.:9901", pass: true}},
		{loopback, guardCase{desc: "loopback: rebinding name", host: "evil.example.com:8080"}},
		{loopback, guardCase{desc: "loopback: rebinding name without port", host: "evil.example.com"}},
		{loopback, guardCase{desc: "loopback: rebinding name, same origin", host: "evil.example.com:8080", header: map[string]string{"Origin": "http://evil.example.com:8080", "Sec-Fetch-Site": "same-origin"}}},
		{loopback, guardCase{desc: "loopback: a localhost subdomain", host: "a.localhost:8080"}},
		{loopback, guardCase{desc: "loopback: localhost as a prefix", host: "localhost.evil.example:8080"}},
		{loopback, guardCase{desc: "loopback: absolute-form to a name", target: "http://evil.example.com:8080/x"}},
		{loopback, guardCase{desc: "loopback: no Host (HTTP/1.0 script)", host: " ", pass: true}},
		{elsewhere, guardCase{desc: "elsewhere: any name", host: "credproxy.default.svc:8080", pass: true}},
		{elsewhere, guardCase{desc: "elsewhere: a name, foreign origin", host: "credproxy.default.svc:8080", header: map[string]string{"Origin": "https://evil.example"}}},
		{elsewhere, guardCase{desc: "elsewhere: a name, own origin", host: "credproxy.default.svc:8080", header: map[string]string{"Origin": "http://credproxy.default.svc:8080"}, pass: true}},
		{restricted, guardCase{desc: "restricted: allowed name", host: "credproxy.svc:8080", pass: true}},
		{restricted, guardCase{desc: "restricted: IP literal", host: "10.0.0.7:8080", pass: true}},
		{restricted, guardCase{desc: "restricted: other name", host: "other.svc:8080"}},
	}
	for _, tc := range tcs {
		if tc.host == " " {
			tc.host = ""
			serveGuard(t, func(next http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { r.Host = ""; tc.b.Wrap(next).ServeHTTP(w, r) })
			}, tc.guardCase)
			continue
		}
		serveGuard(t, tc.b.Wrap, tc.guardCase)
	}
}

// TestBrowserProxyListener: on the forward-proxy listener, proxy requests
// (CONNECT, absolute form) are addressed to their target and pass Wrap;
// requests to the listener itself are checked.
func TestBrowserProxyListener(t *testing.T) {
	b := NewBrowser(BrowserOptions{Loopback: true, ProxyListener: true})
	for _, tc := range []guardCase{
		{desc: "absolute form to any host", target: "http://api.example.com/x", header: map[string]string{"Origin": "https://evil.example"}, pass: true},
		{desc: "request to the listener, foreign origin", header: map[string]string{"Origin": "https://evil.example"}},
		{desc: "request to the listener, rebinding name", host: "evil.example.com:3128"},
		{desc: "request to the listener, plain", pass: true},
	} {
		serveGuard(t, b.Wrap, tc)
	}
	reached := false
	r := httptest.NewRequest("CONNECT", "https://api.example.com:443", nil)
	r.Host = "api.example.com:443"
	b.Wrap(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { reached = true })).ServeHTTP(httptest.NewRecorder(), r)
	if !reached {
		t.Error("CONNECT to a host name was refused; its Host is the target")
	}
}

// TestBrowserProxied covers requests the forward proxy carries to a route
// host: their own origin is the target's, and any Host passes.
func TestBrowserProxied(t *testing.T) {
	b := NewBrowser(BrowserOptions{Loopback: true, AllowedOrigins: []string{"https://grafana.example.com"}})
	wrap := func(next http.Handler) http.Handler { return b.Proxied("wavefront", next) }
	intercepted := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			r.TLS = tlsState // inside an intercepted tunnel
			wrap(next).ServeHTTP(w, r)
		})
	}
	for _, tc := range []guardCase{
		{desc: "intercepted, no browser headers", host: "api.example.com", pass: true},
		{desc: "intercepted, the API's own origin", host: "api.example.com", header: map[string]string{"Origin": "https://api.example.com", "Sec-Fetch-Site": "same-origin"}, pass: true},
		{desc: "intercepted, the API's own origin, port spelled out", host: "api.example.com:443", header: map[string]string{"Origin": "https://api.example.com"}, pass: true},
		{desc: "intercepted, another site's page", host: "api.example.com", header: map[string]string{"Origin": "https://evil.example"}},
		{desc: "intercepted, no-cors from another site", host: "api.example.com", header: map[string]string{"Sec-Fetch-Site": "cross-site"}},
		{desc: "intercepted, allowed origin", host: "api.example.com", header: map[string]string{"Origin": "https://grafana.example.com", "Sec-Fetch-Site": "cross-site"}, pass: true},
		{desc: "intercepted, http origin of the API host", host: "api.example.com", header: map[string]string{"Origin": "http://api.example.com"}},
	} {
		serveGuard(t, intercepted, tc)
	}
	for _, tc := range []guardCase{
		{desc: "absolute form, own origin", target: "http://api.example.com/x", header: map[string]string{"Origin": "http://api.example.com"}, pass: true},
		{desc: "absolute form, another site", target: "http://api.example.com/x", header: map[string]string{"Origin": "https://evil.example"}},
		{desc: "absolute form, cross-site", target: "http://api.example.com/x", header: map[string]string{"Sec-Fetch-Site": "cross-site"}},
		{desc: "absolute form, no browser", target: "http://api.example.com/x", pass: true},
	} {
		serveGuard(t, wrap, tc)
	}
}

// TestBrowserRefusalRecorded: a refusal is counted by route and reason
// and logged at info with the origin and host.
func TestBrowserRefusalRecorded(t *testing.T) {
	reg := prometheus.NewRegistry()
	log, logs := logtest.New(t)
	m := NewMetrics(reg)
	b := NewBrowser(BrowserOptions{Listener: "route default", Route: "default", Loopback: true, Log: log, Metrics: m})
	serveGuard(t, b.Wrap, guardCase{desc: "foreign origin", header: map[string]string{"Origin": "https://evil.example"}})
	serveGuard(t, b.Wrap, guardCase{desc: "rebinding", host: "rebind.example:8080"})
	serveGuard(t, func(next http.Handler) http.Handler { return b.Proxied("splunk", next) },
		guardCase{desc: "proxied", target: "http://api.example.com/", header: map[string]string{"Sec-Fetch-Site": "cross-site"}})
	if got := promtest.CounterSum(t, reg, "credproxy_requests_denied_total", "route", "default"); got != 2 {
		t.Errorf("denied{route=default} = %v, want 2", got)
	}
	if got := promtest.CounterSum(t, reg, "credproxy_requests_denied_total", "route", "splunk"); got != 1 {
		t.Errorf("denied{route=splunk} = %v, want 1", got)
	}
	if got := promtest.CounterSum(t, reg, "credproxy_requests_denied_total", "reason", ReasonBrowser); got != 3 {
		t.Errorf("denied{reason=%s} = %v, want 3", ReasonBrowser, got)
	}
	text := logs.String()
	for _, want := range []string{`"level":"info"`, `"origin":"https://evil.example"`, `"host":"rebind.example:8080"`, `"listener":"route default"`, ReasonBrowser} {
		if !strings.Contains(text, want) {
			t.Errorf("logs lack %s:\n%s", want, text)
		}
	}
}

func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{"127.0.0.1:8080": true, "127.3.2.1:1": true, "[::1]:8080": true, "0.0.0.0:8080": false, "[::]:80": false, "10.0.0.1:80": false} {
		a, err := net.ResolveTCPAddr("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := IsLoopback(a); got != want {
			t.Errorf("IsLoopback(%s) = %v, want %v", addr, got, want)
		}
	}
	if IsLoopback(&net.UnixAddr{Name: "/run/credproxy.sock", Net: "unix"}) {
		t.Error("a unix socket is not a loopback TCP listener")
	}
}

// TestBrowserHostOnLoopbackConnection: a listener bound to every address
// (a gateway on 0.0.0.0) checks Host on the connections that arrive over
// loopback, where a local browser's DNS-rebound page would come from, and
// takes any name from other machines.
func TestBrowserHostOnLoopbackConnection(t *testing.T) {
	b := NewBrowser(BrowserOptions{Loopback: false})
	tcs := []struct {
		desc  string
		local net.Addr
		host  string
		pass  bool
	}{
		{"over loopback: rebinding name", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8080}, "evil.example.com:8080", false},
		{"over loopback: IP literal", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8080}, "127.0.0.1:8080", true},
		{"over IPv6 loopback: rebinding name", &net.TCPAddr{IP: net.IPv6loopback, Port: 8080}, "evil.example.com:8080", false},
		{"from the network: a service name", &net.TCPAddr{IP: net.IPv4(10, 0, 0, 7), Port: 8080}, "credproxy.default.svc:8080", true},
	}
	for _, tc := range tcs {
		reached := false
		h := b.Wrap(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { reached = true }))
		r := httptest.NewRequest("GET", "/api/v2/x", nil)
		r.Host = tc.host
		r = r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, tc.local))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if reached != tc.pass {
			t.Errorf("%s: reached=%v (status %d), want %v", tc.desc, reached, w.Code, tc.pass)
		}
	}
}
