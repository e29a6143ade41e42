package proxy

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"go.uber.org/zap"

	"github.com/credproxy/credproxy/exchange"
	"github.com/credproxy/credproxy/internal/logtest"
	"github.com/credproxy/credproxy/internal/secret"
	"github.com/credproxy/credproxy/mitm"
)

const fwdToken = "forward-token-abc123"

// forwardSetup is a forward proxy with one route for an upstream TLS API.
type forwardSetup struct {
	up      *upstream
	fwd     *Forward
	srv     *servedForward
	proxy   *url.URL
	ca      *mitm.CA
	metrics *Metrics
}

func newForwardSetup(t *testing.T, opts ForwardOptions, log *zap.Logger) *forwardSetup {
	t.Helper()
	up := newUpstream(t, fwdToken)
	ca, err := mitm.NewCA("credproxy test CA")
	if err != nil {
		t.Fatal(err)
	}
	opts.CA = ca
	m := NewMetrics(prometheus.NewRegistry())
	route := mustRoute(t, RouteOptions{Name: "api", Upstream: up.url(t), Header: "Authorization", Prefix: "Bearer",
		Tokens: &fakeTokens{tok: exchange.Token{Value: secret.New(fwdToken)}}})
	fwd := NewForward([]*Route{route}, up.transport(), m, opts, log)
	srv := serveForward(t, fwd)
	pu, _ := url.Parse(srv.URL)
	return &forwardSetup{up: up, fwd: fwd, srv: srv, proxy: pu, ca: ca, metrics: m}
}

// servedForward is a Forward serving on loopback as the app serves it
// (Serve), with the fields of an httptest.Server the tests use.
type servedForward struct {
	URL      string
	Listener net.Listener
	fwd      *Forward
	tb       testing.TB
}

// listenForward binds a loopback listener for fwd; start serves it. The
// test's cleanup closes fwd and waits for it.
func listenForward(tb testing.TB, fwd *Forward) *servedForward {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { fwd.Close(); fwd.Wait() })
	return &servedForward{URL: "http://" + ln.Addr().String(), Listener: ln, fwd: fwd, tb: tb}
}

func (s *servedForward) start() {
	go func() {
		if err := s.fwd.Serve(s.Listener); !errors.Is(err, http.ErrServerClosed) {
			s.tb.Errorf("Forward.Serve = %v", err)
		}
	}()
}

// serveForward is listenForward and start.
func serveForward(tb testing.TB, fwd *Forward) *servedForward {
	tb.Helper()
	s := listenForward(tb, fwd)
	s.start()
	return s
}

// client trusts credproxy's CA plus extra certificates, and uses the proxy.
func (s *forwardSetup) client(extra ...*x509.Certificate) *http.Client {
	pool := x509.NewCertPool()
	pool.AddCert(s.ca.Certificate())
	for _, c := range extra {
		pool.AddCert(c)
	}
	return &http.Client{Transport: &http.Transport{
		Proxy:           http.ProxyURL(s.proxy),
		TLSClientConfig: &tls.Config{RootCAs: pool},
	}}
}

func TestForwardInterceptsRouteHost(t *testing.T) {
	log, logs := logtest.New(t)
	s := newForwardSetup(t, ForwardOptions{}, log)
	req, _ := http.NewRequest("GET", s.up.srv.URL+"/api/v2/source", nil)
	req.Header.Set("Authorization", "Bearer client-supplied")
	resp, err := s.client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "hello /api/v2/source" {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	if got := s.up.seen()[0].Auth; got != "Bearer "+fwdToken {
		t.Errorf("upstream saw %q", got)
	}
	if resp.TLS == nil || resp.TLS.PeerCertificates[0].Issuer.CommonName != "credproxy test CA" {
		t.Errorf("the client did not talk to credproxy's interception")
	}
	logtest.AssertNoSecrets(t, "logs", logs.String(), fwdToken)
}

func TestForwardTunnelsOtherHostsUntouched(t *testing.T) {
	log, _ := logtest.New(t)
	s := newForwardSetup(t, ForwardOptions{}, log)
	other := newUpstream(t, "the-clients-own-token")
	req, _ := http.NewRequest("GET", other.srv.URL+"/x", nil)
	req.Header.Set("Authorization", "Bearer the-clients-own-token")
	resp, err := s.client(other.srv.Certificate()).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.TLS.PeerCertificates[0].Issuer.CommonName == "credproxy test CA" {
		t.Fatalf("got %d, tunnelled=%v", resp.StatusCode, resp.TLS.PeerCertificates[0].Issuer.CommonName)
	}
	if got := other.seen()[0].Auth; got != "Bearer the-clients-own-token" {
		t.Errorf("other host saw %q", got)
	}

	// Plain http to another host passes through untouched too.
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "auth=", r.Header.Get("Authorization"))
	}))
	defer plain.Close()
	resp, err = s.client().Get(plain.URL + "/y")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "auth=" {
		t.Errorf("plain other host got %q", b)
	}
}

func TestForwardDenyOthers(t *testing.T) {
	log, _ := logtest.New(t)
	s := newForwardSetup(t, ForwardOptions{DenyOthers: true}, log)
	other := newUpstream(t)
	_, err := s.client(other.srv.Certificate()).Get(other.srv.URL + "/x")
	if err == nil || !strings.Contains(err.Error(), "Forbidden") {
		t.Errorf("CONNECT to another host: err = %v, want 403", err)
	}
	plain := httptest.NewServer(http.NotFoundHandler())
	defer plain.Close()
	resp, err := s.client().Get(plain.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Errorf("plain http to another host: %d, want 403", resp.StatusCode)
	}
	if n := len(other.seen()); n != 0 {
		t.Errorf("other host reached %d times", n)
	}
	// Route hosts still work.
	resp, err = s.client().Get(s.up.srv.URL + "/ok")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("route host in deny mode: %d", resp.StatusCode)
	}
}

func TestForwardPlainHTTPUpgradedToHTTPS(t *testing.T) {
	log, _ := logtest.New(t)
	s := newForwardSetup(t, ForwardOptions{}, log)
	// The script asks for http://host:port; the upstream speaks only TLS
	// on that port, and must see the credential over TLS.
	u := strings.Replace(s.up.srv.URL, "https://", "http://", 1)
	resp, err := s.client().Get(u + "/api/v2/plain")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "hello /api/v2/plain" {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	if got := s.up.seen()[0].Auth; got != "Bearer "+fwdToken {
		t.Errorf("upstream saw %q", got)
	}
}

// TestForwardHostSmuggling: CONNECT to the route host, then a request with
// another Host inside the tunnel: refused, no injection.
func TestForwardHostSmuggling(t *testing.T) {
	log, logs := logtest.New(t)
	s := newForwardSetup(t, ForwardOptions{}, log)
	evilHits := atomic.Int32{}
	evil := httptest.NewTLSServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { evilHits.Add(1) }))
	defer evil.Close()

	conn := connectThrough(t, s, s.up.srv.Listener.Addr().String())
	defer conn.Close()
	fmt.Fprintf(conn, "GET /steal HTTP/1.1\r\nHost: %s\r\n\r\n", evil.Listener.Addr())
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMisdirectedRequest {
		t.Errorf("status = %d, want 421", resp.StatusCode)
	}
	if evilHits.Load() != 0 || len(s.up.seen()) != 0 {
		t.Errorf("smuggled request went out (evil %d, upstream %d)", evilHits.Load(), len(s.up.seen()))
	}
	if !strings.Contains(logs.String(), "addressed to another host") {
		t.Errorf("refusal not logged")
	}
}

// connectThrough opens a CONNECT tunnel to addr and a TLS session inside it
// that trusts credproxy's CA.
func connectThrough(t *testing.T, s *forwardSetup, addr string) *tls.Conn {
	t.Helper()
	conn, err := tryConnectThrough(s, addr)
	if err != nil {
		t.Fatal(err)
	}
	return conn
}

// tryConnectThrough is connectThrough for goroutines other than the
// test's: it returns its failure.
func tryConnectThrough(s *forwardSetup, addr string) (*tls.Conn, error) {
	raw, err := net.Dial("tcp", s.proxy.Host)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(raw, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", addr, addr)
	br := bufio.NewReader(raw)
	resp, err := http.ReadResponse(br, &http.Request{Method: "CONNECT"})
	if err != nil || resp.StatusCode != 200 {
		raw.Close()
		return nil, fmt.Errorf("CONNECT: %v %v", resp, err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(s.ca.Certificate())
	host, _, _ := net.SplitHostPort(addr)
	conn := tls.Client(raw, &tls.Config{RootCAs: pool, ServerName: host, NextProtos: []string{"http/1.1"}})
	if err := conn.Handshake(); err != nil {
		raw.Close()
		return nil, fmt.Errorf("TLS inside the tunnel: %w", err)
	}
	return conn, nil
}

// TestForwardIgnoresEnvironmentProxy: credproxy's own HTTPS_PROXY (here
// pointing at itself) is not used for its upstream calls.
func TestForwardIgnoresEnvironmentProxy(t *testing.T) {
	log, _ := logtest.New(t)
	loopHits := atomic.Int32{}
	loop := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		loopHits.Add(1)
		w.WriteHeader(502)
	}))
	defer loop.Close()
	t.Setenv("HTTPS_PROXY", loop.URL)
	t.Setenv("HTTP_PROXY", loop.URL)
	s := newForwardSetup(t, ForwardOptions{}, log)
	other := newUpstream(t)
	for _, u := range []string{s.up.srv.URL + "/a", other.srv.URL + "/b"} {
		resp, err := s.client(other.srv.Certificate()).Get(u)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if loopHits.Load() != 0 {
		t.Errorf("the environment's proxy was used %d times", loopHits.Load())
	}
}

func TestForwardIdleTunnelClosed(t *testing.T) {
	log, _ := logtest.New(t)
	s := newForwardSetup(t, ForwardOptions{TunnelIdleTimeout: 200 * time.Millisecond}, log)
	// A silent TCP server: the tunnel carries nothing.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	raw, err := net.Dial("tcp", s.proxy.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	fmt.Fprintf(raw, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", ln.Addr(), ln.Addr())
	br := bufio.NewReader(raw)
	resp, err := http.ReadResponse(br, &http.Request{Method: "CONNECT"})
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("CONNECT: %v %v", resp, err)
	}
	_ = raw.SetReadDeadline(time.Now().Add(10 * time.Second))
	start := time.Now()
	if _, err := br.ReadByte(); err == nil {
		t.Fatal("read a byte from a silent tunnel")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the tunnel was not closed by credproxy within 10 s")
	}
	if took := time.Since(start); took < 150*time.Millisecond {
		t.Errorf("tunnel closed after %v, before the idle timeout", took)
	}
}

func TestForwardOneSignaturePerHost(t *testing.T) {
	log, _ := logtest.New(t)
	s := newForwardSetup(t, ForwardOptions{}, log)
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			c, err := tryConnectThrough(s, s.up.srv.Listener.Addr().String())
			if err != nil {
				t.Error(err)
				return
			}
			c.Close()
		})
	}
	wg.Wait()
	if n := s.fwd.SignedLeaves(); n != 1 {
		t.Errorf("signed %d leaves for one host under 50 racing CONNECTs", n)
	}
	if got := counterValue(t, s.metrics, "credproxy_forward_connects_total", "decision", "intercept"); got != 50 {
		t.Errorf("connects metric = %v", got)
	}
}

// TestForwardConnectionCloseReusesUpstream: single-shot clients that send
// Connection: close do not each open an upstream TLS connection.
func TestForwardConnectionCloseReusesUpstream(t *testing.T) {
	log, _ := logtest.New(t)
	s := newForwardSetup(t, ForwardOptions{}, log)
	for range 20 {
		c := s.client()
		req, _ := http.NewRequest("GET", s.up.srv.URL+"/once", nil)
		req.Close = true
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if n := s.up.conns.Load(); n > 2 {
		t.Errorf("20 Connection: close requests opened %d upstream connections", n)
	}
}

func TestForwardStreamingFlushed(t *testing.T) {
	log, _ := logtest.New(t)
	s := newForwardSetup(t, ForwardOptions{}, log)
	release := make(chan struct{})
	s.up.handler = func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, `{"n":1}`)
		w.(http.Flusher).Flush()
		<-release
		fmt.Fprintln(w, `{"n":2}`)
	}
	for _, u := range []string{s.up.srv.URL, strings.Replace(s.up.srv.URL, "https://", "http://", 1)} {
		resp, err := s.client().Get(u + "/stream")
		if err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(resp.Body).ReadString('\n')
		if err != nil || line != "{\"n\":1}\n" {
			t.Fatalf("%s: first line %q %v", u, line, err)
		}
		release <- struct{}{}
		resp.Body.Close()
	}
	close(release)
}

func TestForwardWebsocketCarriesHeader(t *testing.T) {
	log, _ := logtest.New(t)
	s := newForwardSetup(t, ForwardOptions{}, log)
	s.up.handler = func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "websocket" {
			http.Error(w, "not an upgrade", 400)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		fmt.Fprint(brw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		line, _ := brw.ReadString('\n')
		fmt.Fprintf(brw, "echo %s", line)
		brw.Flush()
	}
	conn := connectThrough(t, s, s.up.srv.Listener.Addr().String())
	defer conn.Close()
	fmt.Fprintf(conn, "GET /ws HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n", s.up.srv.Listener.Addr())
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	fmt.Fprint(conn, "ping\n")
	got, _ := br.ReadString('\n')
	if got != "echo ping\n" {
		t.Errorf("websocket data %q", got)
	}
	if auth := s.up.seen()[0].Auth; auth != "Bearer "+fwdToken {
		t.Errorf("upgrade request carried %q", auth)
	}
}

func TestForwardHTTP2InsideTunnel(t *testing.T) {
	log, _ := logtest.New(t)
	s := newForwardSetup(t, ForwardOptions{}, log)
	c := s.client()
	c.Transport.(*http.Transport).ForceAttemptHTTP2 = true
	resp, err := c.Get(s.up.srv.URL + "/h2")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.StatusCode != 200 {
		t.Errorf("got %s %d, want HTTP/2 200", resp.Proto, resp.StatusCode)
	}
	if got := s.up.seen()[0]; got.Auth != "Bearer "+fwdToken || got.Proto != "HTTP/2.0" {
		t.Errorf("upstream saw %s with %q, want HTTP/2.0 with the token", got.Proto, got.Auth)
	}
}

// TestHTTP1ClientsSpeakHTTP1Upstream: an upstream offering HTTP/2 gets
// HTTP/1.1 from credproxy for HTTP/1.1 clients, in both modes, so that
// their requests are not multiplexed into one connection.
func TestHTTP1ClientsSpeakHTTP1Upstream(t *testing.T) {
	log, _ := logtest.New(t)
	s := newForwardSetup(t, ForwardOptions{}, log)
	resp, err := s.client().Get(s.up.srv.URL + "/h1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := s.up.seen()[0]; resp.StatusCode != 200 || got.Proto != "HTTP/1.1" || got.Auth != "Bearer "+fwdToken {
		t.Errorf("forward: %d, upstream saw %s with %q; want 200 and HTTP/1.1 with the token", resp.StatusCode, got.Proto, got.Auth)
	}

	up := newUpstream(t, "rev-token-h1")
	px, _ := startReverse(t, up, &fakeTokens{tok: exchange.Token{Value: secret.New("rev-token-h1")}}, log)
	resp, err = http.Get(px.URL + "/h1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := up.seen()[0]; resp.StatusCode != 200 || got.Proto != "HTTP/1.1" {
		t.Errorf("reverse: %d, upstream saw %s; want 200 and HTTP/1.1", resp.StatusCode, got.Proto)
	}
}
