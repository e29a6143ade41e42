package proxy

// The injection contract against hostile clients: a body trickled until
// the token expires, a malformed body, look-alike credential headers, and
// dot segments that would climb out of UPSTREAM's base path.

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"context"

	"github.com/credproxy/credproxy/exchange"
	"github.com/credproxy/credproxy/internal/logtest"
	"github.com/credproxy/credproxy/internal/secret"
	"github.com/credproxy/credproxy/mitm"
)

// expiringTokens hands out a token that expires life after it is taken;
// its value carries its expiry, so the upstream can tell.
type expiringTokens struct{ life time.Duration }

func (e *expiringTokens) Token(context.Context) (exchange.Token, error) {
	exp := time.Now().Add(e.life)
	return exchange.Token{Value: secret.New("exp-" + strconv.FormatInt(exp.UnixNano(), 10)), Expiry: exp}, nil
}

func (e *expiringTokens) Invalidate(ctx context.Context, _ exchange.Token) (exchange.Token, error) {
	return e.Token(ctx)
}

// TestTokenReadAfterTheBodyIsBuffered: a client trickles its body for
// three times the token's lifetime; the upstream never sees an expired
// token, because the token is read once the body is in.
func TestTokenReadAfterTheBodyIsBuffered(t *testing.T) {
	log, _ := logtest.New(t)
	var mu sync.Mutex
	var late []string
	api := newTLSAPI(t, false, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		ns, _ := strconv.ParseInt(strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer exp-"), 10, 64)
		if left := time.Until(time.Unix(0, ns)); left <= 0 {
			mu.Lock()
			late = append(late, fmt.Sprintf("token expired %v before it arrived", -left))
			mu.Unlock()
		}
		fmt.Fprintf(w, "%d bytes", len(body))
	})
	u, _ := url.Parse(api.srv.URL)
	route := mustRoute(t, RouteOptions{Name: "r", Upstream: u, Header: "Authorization", Prefix: "Bearer", Tokens: &expiringTokens{life: 300 * time.Millisecond}})
	px := serveReverse(t, NewReverse(route, api.transport(t), NewMetrics(prometheus.NewRegistry()), log), log)

	pr, pw := io.Pipe()
	go func() {
		for range 9 {
			time.Sleep(100 * time.Millisecond)
			pw.Write([]byte("0123456789"))
		}
		pw.Close()
	}()
	resp, err := http.Post(px+"/ingest", "text/plain", pr)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "90 bytes" {
		t.Fatalf("POST /ingest = %d %q", resp.StatusCode, body)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(late) > 0 {
		t.Errorf("the upstream received an expired token: %v", late)
	}
}

// rawRequest writes a request byte for byte to addr and reads the answer.
func rawRequest(t *testing.T, addr, request string) (*http.Response, string) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, request); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading the answer to %q: %v", request, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(body)
}

// TestMalformedClientBodyIs400: a chunked body with a bare LF is the
// client's fault: 400, logged at debug, not 502 upstream_unavailable.
func TestMalformedClientBodyIs400(t *testing.T) {
	log, logs := logtest.New(t)
	up := newUpstream(t, "body-tok-01")
	px, _ := startReverse(t, up, &fakeTokens{tok: exchange.Token{Value: secret.New("body-tok-01")}}, log)
	addr := strings.TrimPrefix(px.URL, "http://")
	resp, body := rawRequest(t, addr, "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n")
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "bad_request") {
		t.Errorf("malformed chunked body = %d %q, want 400 bad_request", resp.StatusCode, body)
	}
	if strings.Contains(logs.String(), `"level":"warn"`) || strings.Contains(logs.String(), "upstream unavailable") {
		t.Errorf("a client's malformed body was logged as an upstream failure:\n%s", logs.String())
	}
	if n := len(up.seen()); n != 0 {
		t.Errorf("the upstream received %d requests from a malformed body", n)
	}
}

// TestLookalikeCredentialHeadersDropped: a client header whose name
// differs from the injected one only by case or '_' for '-' does not
// reach the upstream beside the injected value.
func TestLookalikeCredentialHeadersDropped(t *testing.T) {
	log, logs := logtest.New(t)
	var got http.Header
	var mu sync.Mutex
	api := newTLSAPI(t, false, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = r.Header.Clone()
		mu.Unlock()
	})
	u, _ := url.Parse(api.srv.URL)
	route := mustRoute(t, RouteOptions{Name: "sf", Upstream: u, Header: "X-Sf-Token", Tokens: &fakeTokens{tok: exchange.Token{Value: secret.New("org-token-inj")}}})
	px := serveReverse(t, NewReverse(route, api.transport(t), NewMetrics(prometheus.NewRegistry()), log), log)
	addr := strings.TrimPrefix(px, "http://")
	resp, _ := rawRequest(t, addr, "GET /v2/metric HTTP/1.1\r\nHost: a\r\nX_SF_Token: client-1\r\nx-sf_token: client-2\r\nX-SF-TOKEN: client-3\r\nX-Keep_Me: yes\r\n\r\n")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	mu.Lock()
	defer mu.Unlock()
	for k, v := range got {
		if sameHeaderName(k, "X-Sf-Token") && (k != "X-Sf-Token" || len(v) != 1 || v[0] != "org-token-inj") {
			t.Errorf("the upstream received %s: %q beside the injected credential", k, v)
		}
	}
	if got.Get("X-Sf-Token") != "org-token-inj" || got.Get("X-Keep_me") != "yes" {
		t.Errorf("upstream headers %v: want the injected X-Sf-Token and the unrelated X-Keep_Me", got)
	}
	logtest.AssertNoSecrets(t, "logs", logs.String(), "org-token-inj", "client-1", "client-2", "client-3")
}

// TestUpstreamBasePathIsABoundary: with UPSTREAM=https://h/base, no client
// path reaches the upstream outside /base/, dot segments encoded or not.
func TestUpstreamBasePathIsABoundary(t *testing.T) {
	log, _ := logtest.New(t)
	var mu sync.Mutex
	var uris []string
	api := newTLSAPI(t, false, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		uris = append(uris, r.RequestURI)
		mu.Unlock()
	})
	u, _ := url.Parse(api.srv.URL + "/base")
	route := mustRoute(t, RouteOptions{Name: "r", Upstream: u, Header: "Authorization", Prefix: "Bearer", Tokens: &fakeTokens{tok: exchange.Token{Value: secret.New("base-tok-01")}}})
	srv := httptest.NewServer(NewReverse(route, api.transport(t), NewMetrics(prometheus.NewRegistry()), log))
	t.Cleanup(srv.Close)
	addr := srv.Listener.Addr().String()
	for _, c := range []struct{ path, want string }{
		{"/../x", "/base/x"},
		{"/%2e%2e/x", "/base/x"},
		{"/%2E./x", "/base/x"},
		{"/.%2E/x?q=1", "/base/x?q=1"},
		{"/a/../../../x", "/base/x"},
		{"/a/./b", "/base/a/b"},
		{"/a/b/..", "/base/a/"},
		{"/..", "/base/"},
		{"/v1/chart.json", "/base/v1/chart.json"},
		{"/a%2Fb", "/base/a%2Fb"},
		{"/..%2fx", "400"},
		{"/..%2Fx", "400"},
		{"/..%5cx", "400"},
		{"/a/%2e%2e%2f%2e%2e%2fx", "400"},
		// Path parameters: Tomcat, Jetty and Spring read "..;" as "..".
		{"/..;/admin", "400"},
		{"/a/..;/..;/admin", "400"},
		{"/%2e%2e;/admin", "400"},
		{"/.;x/admin", "400"},
		{"/a;v=1/b", "/base/a;v=1/b"},
		// Encoded twice: an upstream that decodes again climbs out.
		{"/%252e%252e%252fadmin", "400"},
		{"/a/..%252f..%252fadmin", "400"},
		{"/%252e%252e/admin", "400"},
		{"/a%2520b", "/base/a%2520b"},
	} {
		mu.Lock()
		uris = nil
		mu.Unlock()
		resp, body := rawRequest(t, addr, "GET "+c.path+" HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
		mu.Lock()
		seen := append([]string(nil), uris...)
		mu.Unlock()
		switch {
		case c.want == "400":
			if resp.StatusCode != http.StatusBadRequest || len(seen) != 0 {
				t.Errorf("GET %s = %d %q, upstream saw %q; want 400 and nothing sent", c.path, resp.StatusCode, body, seen)
			}
		case len(seen) != 1 || seen[0] != c.want:
			t.Errorf("GET %s reached the upstream as %q, want %q", c.path, seen, c.want)
		}
	}
}

// TestAsteriskFormNotForwarded: the HTTP/2 connection preface sent to the
// plain reverse listener ("PRI * HTTP/2.0") is refused with 400, and
// "OPTIONS *", which net/http answers itself, is about the listener:
// neither goes upstream with the credential.
func TestAsteriskFormNotForwarded(t *testing.T) {
	log, _ := logtest.New(t)
	up := newUpstream(t, "star-tok-01")
	px, _ := startReverse(t, up, &fakeTokens{tok: exchange.Token{Value: secret.New("star-tok-01")}}, log)
	addr := px.Listener.Addr().String()
	resp, body := rawRequest(t, addr, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("the HTTP/2 preface = %d %q, want 400", resp.StatusCode, body)
	}
	rawRequest(t, addr, "OPTIONS * HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
	if got := up.seen(); len(got) != 0 {
		t.Errorf("the upstream got %+v", got)
	}
}

// TestTokenAPINotReachableThroughTheForwardProxy: a caller that reaches
// the token API through credproxy's own forward proxy, by plain request or
// CONNECT, by IP or as localhost, gets no token. (The token API's own
// refusal of Via and X-Forwarded-* is tested in admin.)
func TestTokenAPINotReachableThroughTheForwardProxy(t *testing.T) {
	log, logs := logtest.New(t)
	// A stand-in for the admin listener that hands its token to anyone:
	// only the forward proxy's refusal keeps it from the caller.
	const apiTestToken = "selfguard-SECRET-41c7"
	admin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"access_token":%q}`, apiTestToken)
	}))
	t.Cleanup(admin.Close)
	ca, err := mitm.NewCA("credproxy self CA")
	if err != nil {
		t.Fatal(err)
	}
	fwd := NewForward(nil, NewTransport(nil), NewMetrics(prometheus.NewRegistry()), ForwardOptions{CA: ca}, log)
	px := listenForward(t, fwd)
	fwd.RefuseSelf(admin.Listener.Addr())
	fwd.RefuseSelf(px.Listener.Addr())
	px.start()
	pu, _ := url.Parse(px.URL)
	_, adminPort, _ := net.SplitHostPort(admin.Listener.Addr().String())
	client := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(pu)}}
	for _, target := range []string{
		admin.URL + "/v1/token/wf",                           // plain request by IP
		"http://localhost:" + adminPort + "/v1/token/wf",     // plain request as localhost
		"https://" + admin.Listener.Addr().String() + "/x",   // CONNECT to the admin listener
		"https://" + px.Listener.Addr().String() + "/x",      // CONNECT to the forward proxy itself
		"http://" + px.Listener.Addr().String() + "/healthz", // a loop to itself
	} {
		req, _ := http.NewRequest("GET", target, nil)
		req.Header.Set("Metadata", "true")
		resp, err := client.Do(req)
		if err != nil {
			continue // the CONNECT was refused: no token either
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden || strings.Contains(string(body), apiTestToken) {
			t.Errorf("GET %s through the forward proxy = %d %q, want 403 and no token", target, resp.StatusCode, body)
		}
	}
	logtest.AssertNoSecrets(t, "logs", logs.String(), apiTestToken)
}

// TestForwardGuardCatchesNamesThatResolveToItself: a host name of no
// route that resolves to one of credproxy's listeners is refused when
// dialled, whatever the name.
func TestForwardGuardCatchesNamesThatResolveToItself(t *testing.T) {
	var s selfAddrs
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	s.add(ln.Addr())
	dial := s.guard((&net.Dialer{}).DialContext)
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	if c, err := dial(context.Background(), "tcp", "localhost:"+port); err == nil {
		c.Close()
		t.Fatal("a name resolving to a listener of credproxy's own was dialled")
	}
	other, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	c, err := dial(context.Background(), "tcp", other.Addr().String())
	if err != nil {
		t.Fatalf("another local service was refused: %v", err)
	}
	c.Close()
	unspecified := &selfAddrs{}
	unspecified.add(&net.TCPAddr{IP: net.IPv4zero, Port: 9901})
	if !unspecified.is(net.IPv4(127, 0, 0, 1), 9901) || unspecified.is(net.IPv4(127, 0, 0, 1), 9902) {
		t.Error("a listener on 0.0.0.0 must be recognised at 127.0.0.1, on its own port only")
	}
}
