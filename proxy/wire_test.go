package proxy

// Hostile upstreams on the wire: an upstream that sends more than it
// should, answers nothing, or shares a port between http and https. What
// credproxy must still guarantee: no client ever receives bytes meant for
// another, no request is sent twice, and a credential never travels in
// clear to a route that asked for https.

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"go.uber.org/zap"

	"github.com/credproxy/credproxy/exchange"
	"github.com/credproxy/credproxy/internal/logtest"
	"github.com/credproxy/credproxy/internal/secret"
	"github.com/credproxy/credproxy/mitm"
)

// strayAnswer is a whole HTTP answer an upstream sends where none belongs.
// A pool that reused the connection would hand it to the next request.
const strayAnswer = "HTTP/1.1 200 OK\r\nContent-Length: 11\r\nX-Stray: 1\r\n\r\nSTRAY-BYTES"

// split separates the parts of a raw answer that rawAPI writes one by one
// (separate TLS records, separate TCP segments).
const split = "\x00split\x00"

// pause, as a part of a raw answer, makes rawAPI wait 40 ms before the
// next part.
const pause = "\x00pause\x00"

// rawAPI is an upstream that writes its answers byte for byte, so that a
// test can make it misbehave in ways net/http's own server never would.
// It reads requests with net/http; only its answers are hand-made.
type rawAPI struct {
	ln   net.Listener
	addr string
	pool *x509.CertPool // trusts its certificate, when it speaks TLS
	// tls, when set, is the TLS config; sniff serves http and https on
	// the one port, told apart by the first byte.
	tls   *tls.Config
	sniff bool

	mu   sync.Mutex
	seen []rawSeen
	// answer returns the raw bytes answering req; "" means never answer.
	answer func(req *http.Request) string
}

type rawSeen struct {
	Method, Path, Auth string
	TLS                bool
}

// newRawAPI starts a raw upstream on loopback: plain, TLS, or both on one
// port (mode "http", "https", "both").
func newRawAPI(t *testing.T, mode string, answer func(*http.Request) string) *rawAPI {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := &rawAPI{ln: ln, addr: ln.Addr().String(), answer: answer}
	if mode != "http" {
		ca, err := mitm.NewCA("credproxy raw upstream CA")
		if err != nil {
			t.Fatal(err)
		}
		leaf, err := mitm.NewLeaves(ca, nil).Get("127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		a.pool = x509.NewCertPool()
		a.pool.AddCert(ca.Certificate())
		a.tls = &tls.Config{Certificates: []tls.Certificate{*leaf}, NextProtos: []string{"http/1.1"}}
		a.sniff = mode == "both"
	}
	var conns sync.WaitGroup
	done := make(chan struct{})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Go(func() { a.serve(c, done) })
		}
	}()
	t.Cleanup(func() { close(done); ln.Close(); conns.Wait() })
	return a
}

// sniffConn gives back the byte peeked to tell TLS from plain HTTP.
type sniffConn struct {
	net.Conn
	r io.Reader
}

func (c sniffConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func (a *rawAPI) serve(c net.Conn, done <-chan struct{}) {
	defer c.Close()
	go func() { <-done; c.Close() }()
	overTLS := a.tls != nil
	if a.sniff {
		br := bufio.NewReader(c)
		first, err := br.Peek(1)
		if err != nil {
			return
		}
		overTLS = first[0] == 0x16 // a TLS handshake record
		c = sniffConn{Conn: c, r: br}
	}
	if overTLS {
		c = tls.Server(c, a.tls)
	}
	br := bufio.NewReader(c)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		_, _ = io.Copy(io.Discard, req.Body)
		a.mu.Lock()
		a.seen = append(a.seen, rawSeen{Method: req.Method, Path: req.URL.Path, Auth: req.Header.Get("Authorization"), TLS: overTLS})
		a.mu.Unlock()
		answer := a.answer(req)
		if answer == "" {
			<-done
			return
		}
		for part := range strings.SplitSeq(answer, split) {
			if part == pause {
				time.Sleep(40 * time.Millisecond)
				continue
			}
			if _, err := io.WriteString(c, part); err != nil {
				return
			}
		}
	}
}

func (a *rawAPI) requests() []rawSeen {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]rawSeen(nil), a.seen...)
}

// ownAnswer is a correct answer naming the request it answers.
func ownAnswer(req *http.Request) string {
	body := "own:" + req.URL.Path
	if req.Method == http.MethodHead {
		return fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", len(body))
	}
	return fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
}

// strayShapes are the ways an upstream sends bytes past the end of an
// answer, by request path.
var strayShapes = map[string]struct {
	method string
	answer string
}{
	"/twice":        {"GET", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst" + split + strayAnswer},
	"/body-on-204":  {"GET", "HTTP/1.1 204 No Content\r\n\r\n" + split + strayAnswer},
	"/body-on-head": {"HEAD", fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", len(strayAnswer)) + split + strayAnswer},
}

func strayOrOwn(req *http.Request) string {
	if s, ok := strayShapes[req.URL.Path]; ok {
		return s.answer
	}
	return ownAnswer(req)
}

// wireTransport is the upstream transport a test's routes share, trusting
// api's certificate.
func wireTransport(t *testing.T, api *rawAPI) *Transport {
	tr := NewTransport(api.pool)
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

// wireRoute is a route to api with its own token.
func wireRoute(name, scheme string, api *rawAPI) *Route {
	r, err := NewRoute(RouteOptions{Name: name, Upstream: &url.URL{Scheme: scheme, Host: api.addr}, Header: "Authorization", Prefix: "Bearer",
		AllowInsecure: scheme == "http", Tokens: &fakeTokens{tok: exchange.Token{Value: secret.New("tok-" + name)}}})
	if err != nil {
		panic(err) // the options above are valid
	}
	return r
}

// serveReverse serves h as the app does, on loopback.
func serveReverse(t *testing.T, h http.Handler, log *zap.Logger) string {
	px := httptest.NewUnstartedServer(h)
	px.Config = NewServer(h, log)
	px.Start()
	t.Cleanup(px.Close)
	return px.URL
}

// call sends one request through its own client (its own connection) and
// returns the status, the X-Stray header and the body; an error reads as
// status 0.
func call(t *testing.T, client *http.Client, method, u string) (int, string, string) {
	t.Helper()
	req, _ := http.NewRequest(method, u, nil)
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("X-Stray"), string(b)
}

// assertOwnAnswer fails when the answer to GET /own was not its own: the
// stray bytes, or anything but "own:/own" or a credproxy error.
func assertOwnAnswer(t *testing.T, what string, status int, stray, body string) {
	t.Helper()
	if stray != "" || strings.Contains(body, "STRAY") {
		t.Fatalf("%s received the bytes the upstream sent past another answer: %d %q", what, status, body)
	}
	if status == http.StatusOK && body != "own:/own" {
		t.Fatalf("%s = %d %q, want its own answer", what, status, body)
	}
}

// TestStrayUpstreamBytesNeverReachAnotherClient: bytes an upstream sends
// past the end of an answer (an answer sent twice, a body after a 204, a
// body on a HEAD answer) never become the answer of the next request on
// that connection, another client's on another route of the same host,
// over TLS and plain, in reverse mode.
func TestStrayUpstreamBytesNeverReachAnotherClient(t *testing.T) {
	for _, scheme := range []string{"https", "http"} {
		for path, shape := range strayShapes {
			t.Run(scheme+path, func(t *testing.T) {
				log, _ := logtest.New(t)
				api := newRawAPI(t, scheme, strayOrOwn)
				tr := wireTransport(t, api)
				m := NewMetrics(prometheus.NewRegistry())
				a := serveReverse(t, NewReverse(wireRoute("a", scheme, api), tr, m, log), log)
				b := serveReverse(t, NewReverse(wireRoute("b", scheme, api), tr, m, log), log)

				status, stray, body := call(t, &http.Client{Transport: &http.Transport{}}, shape.method, a+path)
				if status != http.StatusOK && status != http.StatusNoContent {
					t.Fatalf("%s %s = %d %q", shape.method, path, status, body)
				}
				_ = stray
				// The stray bytes are on their way while the next client
				// comes; give them time to arrive first.
				time.Sleep(50 * time.Millisecond)
				for i := range 3 {
					status, stray, body := call(t, &http.Client{Transport: &http.Transport{}}, "GET", b+"/own")
					assertOwnAnswer(t, fmt.Sprintf("request %d of another client on another route", i+1), status, stray, body)
				}
			})
		}
	}
}

// TestStrayUpstreamBytesForwardMode: the same attack through the forward
// proxy, whose intercepted requests share the upstream pool.
func TestStrayUpstreamBytesForwardMode(t *testing.T) {
	for path, shape := range strayShapes {
		t.Run(path, func(t *testing.T) {
			log, _ := logtest.New(t)
			api := newRawAPI(t, "https", strayOrOwn)
			ca, err := mitm.NewCA("credproxy wire CA")
			if err != nil {
				t.Fatal(err)
			}
			fwd := NewForward([]*Route{wireRoute("a", "https", api)}, wireTransport(t, api), NewMetrics(prometheus.NewRegistry()), ForwardOptions{CA: ca}, log)
			px := serveForward(t, fwd).URL
			pool := x509.NewCertPool()
			pool.AddCert(ca.Certificate())
			pu, _ := url.Parse(px)
			client := func() *http.Client {
				return &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(pu), TLSClientConfig: &tls.Config{RootCAs: pool}}}
			}
			base := "https://" + api.addr
			if status, _, body := call(t, client(), shape.method, base+path); status != http.StatusOK && status != http.StatusNoContent {
				t.Fatalf("%s %s = %d %q", shape.method, path, status, body)
			}
			time.Sleep(50 * time.Millisecond)
			for i := range 3 {
				status, stray, body := call(t, client(), "GET", base+"/own")
				assertOwnAnswer(t, fmt.Sprintf("request %d of another client", i+1), status, stray, body)
			}
		})
	}
}

// TestUpstreamPoolKeepsSchemesApart: a route to http://h:p and one to
// https://h:p never share a connection, so the https route's credential
// never goes out in clear on the other's plain connection.
func TestUpstreamPoolKeepsSchemesApart(t *testing.T) {
	log, _ := logtest.New(t)
	api := newRawAPI(t, "both", ownAnswer)
	tr := wireTransport(t, api)
	m := NewMetrics(prometheus.NewRegistry())
	plain := serveReverse(t, NewReverse(wireRoute("plain", "http", api), tr, m, log), log)
	secure := serveReverse(t, NewReverse(wireRoute("secure", "https", api), tr, m, log), log)
	for _, base := range []string{plain, secure, plain, secure} {
		if status, _, body := call(t, http.DefaultClient, "GET", base+"/own"); status != http.StatusOK {
			t.Fatalf("GET %s/own = %d %q", base, status, body)
		}
	}
	for _, s := range api.requests() {
		if s.Auth == "Bearer tok-secure" && !s.TLS {
			t.Fatalf("the https route's credential was sent over a plain connection: %+v", s)
		}
	}
}

// wireClient serves route on tr in mode ("reverse" or "forward") and
// returns a client and the base URL that reach it through credproxy.
func wireClient(t *testing.T, mode string, route *Route, tr *Transport, log *zap.Logger) (*http.Client, string) {
	t.Helper()
	if mode == "reverse" {
		return &http.Client{}, serveReverse(t, NewReverse(route, tr, NewMetrics(prometheus.NewRegistry()), log), log)
	}
	ca, err := mitm.NewCA("credproxy wire CA")
	if err != nil {
		t.Fatal(err)
	}
	fwd := NewForward([]*Route{route}, tr, NewMetrics(prometheus.NewRegistry()), ForwardOptions{CA: ca}, log)
	pu, _ := url.Parse(serveForward(t, fwd).URL)
	pool := x509.NewCertPool()
	pool.AddCert(ca.Certificate())
	return &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(pu), TLSClientConfig: &tls.Config{RootCAs: pool}}}, "https://" + route.upstream.Host
}

// TestMalformedAnswerQuotingTheTokenLeaksNothing: an upstream whose
// answer is malformed where net/http quotes it (a header line, the status
// code, the version, Content-Length, Transfer-Encoding) and which puts the
// token it received there gets the client a 502 that does not hold it,
// nor does any log line, in both modes.
func TestMalformedAnswerQuotingTheTokenLeaksNothing(t *testing.T) {
	const tok = "tok-a" // wireRoute's token for route "a"
	shapes := map[string]func(string) string{
		"header line":       func(v string) string { return "HTTP/1.1 200 OK\r\nbad line " + v + "\r\n\r\n" },
		"status code":       func(v string) string { return "HTTP/1.1 2" + v + " OK\r\n\r\n" },
		"version":           func(v string) string { return "HTTP/9" + v + " 200 OK\r\n\r\n" },
		"Content-Length":    func(v string) string { return "HTTP/1.1 200 OK\r\nContent-Length: " + v + "\r\n\r\n" },
		"Transfer-Encoding": func(v string) string { return "HTTP/1.1 200 OK\r\nTransfer-Encoding: " + v + "\r\n\r\n" },
	}
	for _, mode := range []string{"reverse", "forward"} {
		for name, shape := range shapes {
			t.Run(mode+"/"+name, func(t *testing.T) {
				h := logtest.NewHygiene(t, tok, "Bearer "+tok)
				log, _ := h.Logger("logs")
				api := newRawAPI(t, "https", func(req *http.Request) string {
					return shape(strings.TrimPrefix(req.Header.Get("Authorization"), "Bearer "))
				})
				client, base := wireClient(t, mode, wireRoute("a", "https", api), wireTransport(t, api), log)
				status, _, body := call(t, client, "GET", base+"/x")
				h.Add("answer", body)
				if status != http.StatusBadGateway || !strings.Contains(body, "upstream_unavailable") {
					t.Errorf("GET /x = %d %q, want 502 upstream_unavailable", status, body)
				}
				if got := api.requests(); len(got) == 0 || got[0].Auth != "Bearer "+tok {
					t.Fatalf("the upstream did not get the token: %+v", got)
				}
			})
		}
	}
}

// TestSilentUpstreamOneRequestOne504: an upstream that takes a request
// and never answers gets it once; the client gets one 504 when the
// response-header timeout passes, and the request is not sent again on
// another connection, even on a connection that was reused.
func TestSilentUpstreamOneRequestOne504(t *testing.T) {
	for _, mode := range []string{"reverse", "forward"} {
		t.Run(mode, func(t *testing.T) {
			log, _ := logtest.New(t)
			api := newRawAPI(t, "https", func(req *http.Request) string {
				if req.URL.Path == "/silent" {
					return ""
				}
				return ownAnswer(req)
			})
			tr := wireTransport(t, api)
			tr.h1.ResponseHeaderTimeout = 300 * time.Millisecond
			tr.h2.ResponseHeaderTimeout = 300 * time.Millisecond
			client, base := wireClient(t, mode, wireRoute("a", "https", api), tr, log)
			// A first request leaves a kept-alive connection to reuse.
			if status, _, body := call(t, client, "GET", base+"/own"); status != http.StatusOK {
				t.Fatalf("GET /own = %d %q", status, body)
			}
			status, _, body := call(t, client, "GET", base+"/silent")
			if status != http.StatusGatewayTimeout || !strings.Contains(body, "upstream_timeout") {
				t.Errorf("GET /silent = %d %q, want 504 upstream_timeout", status, body)
			}
			time.Sleep(300 * time.Millisecond)
			n := 0
			for _, s := range api.requests() {
				if s.Path == "/silent" {
					n++
				}
			}
			if n != 1 {
				t.Errorf("the silent upstream received the request %d times, want once", n)
			}
		})
	}
}

// TestEarlyHintsReachTheClient: a 103 Early Hints answer before the real
// one reaches the client, in both modes.
func TestEarlyHintsReachTheClient(t *testing.T) {
	for _, mode := range faultModes {
		t.Run(mode.name, func(t *testing.T) {
			log, _ := logtest.New(t)
			up := newUpstream(t, "hint-tok-01")
			up.handler = func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Link", "</style.css>; rel=preload; as=style")
				w.WriteHeader(http.StatusEarlyHints)
				fmt.Fprint(w, "final")
			}
			target := mode.setup(t, up, &fakeTokens{tok: exchange.Token{Value: secret.New("hint-tok-01")}}, log)
			var hints []string
			trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
				hints = append(hints, fmt.Sprintf("%d %s", code, h.Get("Link")))
				return nil
			}}
			req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", target.base+"/page", nil)
			resp, err := target.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(body) != "final" {
				t.Fatalf("GET /page = %d %q", resp.StatusCode, body)
			}
			if want := "103 </style.css>; rel=preload; as=style"; len(hints) != 1 || hints[0] != want {
				t.Errorf("informational answers = %q, want [%q]", hints, want)
			}
		})
	}
}

// TestTrailersAndUpgradesPassThrough: response trailers reach the client
// and a protocol upgrade carries data both ways, in both modes.
func TestTrailersAndUpgradesPassThrough(t *testing.T) {
	for _, mode := range faultModes {
		t.Run(mode.name, func(t *testing.T) {
			log, _ := logtest.New(t)
			up := newUpstream(t, "trail-tok-1")
			up.handler = func(w http.ResponseWriter, r *http.Request) {
				if r.Header.Get("Upgrade") == "echo" {
					upgradeEcho(w)
					return
				}
				w.Header().Set("Trailer", "X-Checksum")
				fmt.Fprint(w, "part one,")
				w.(http.Flusher).Flush()
				fmt.Fprint(w, "part two")
				w.Header().Set("X-Checksum", "c0ffee")
			}
			target := mode.setup(t, up, &fakeTokens{tok: exchange.Token{Value: secret.New("trail-tok-1")}}, log)
			resp, err := target.client.Get(target.base + "/trailer")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(body) != "part one,part two" || resp.Trailer.Get("X-Checksum") != "c0ffee" {
				t.Errorf("body %q, trailer %q; want the whole body and X-Checksum: c0ffee", body, resp.Trailer.Get("X-Checksum"))
			}

			req, _ := http.NewRequest("GET", target.base+"/up", nil)
			req.Header.Set("Connection", "Upgrade")
			req.Header.Set("Upgrade", "echo")
			resp, err = target.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			rw, ok := resp.Body.(io.ReadWriteCloser)
			if resp.StatusCode != http.StatusSwitchingProtocols || !ok {
				t.Fatalf("upgrade = %d, body %T", resp.StatusCode, resp.Body)
			}
			fmt.Fprint(rw, "ping\n")
			line, _ := bufio.NewReader(rw).ReadString('\n')
			if line != "echo ping\n" {
				t.Errorf("upgraded connection answered %q", line)
			}
		})
	}
}

// upgradeEcho switches to the "echo" protocol and echoes one line.
func upgradeEcho(w http.ResponseWriter) {
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	fmt.Fprint(brw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
	brw.Flush()
	line, _ := brw.ReadString('\n')
	fmt.Fprintf(brw, "echo %s", line)
	brw.Flush()
}
