package upstreamcheck

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// testCA makes a CA and a server certificate signed by it for names (DNS
// names or IP literals).
func testCA(t *testing.T, names ...string) (*x509.CertPool, tls.Certificate) {
	t.Helper()
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	caKey, leafKey := key(), key()
	now := time.Now()
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "upstreamcheck test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ = x509.ParseCertificate(caDER)
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: names[0]},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			leaf.IPAddresses = append(leaf.IPAddresses, ip)
		} else {
			leaf.DNSNames = append(leaf.DNSNames, n)
		}
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, ca, &leafKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return pool, tls.Certificate{Certificate: [][]byte{leafDER}, PrivateKey: leafKey}
}

// upstream is an HTTPS server on 127.0.0.1 with a certificate for names,
// and the number of HTTP requests it has been sent.
func upstream(t *testing.T, names ...string) (*httptest.Server, *x509.CertPool, *atomic.Int32) {
	t.Helper()
	roots, cert := testCA(t, names...)
	var requests atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { requests.Add(1) }))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	// Failed handshakes are what these tests make.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv, roots, &requests
}

// dialTo dials addr whatever address it is asked for: a name that
// resolves, for the test, to the server.
func dialTo(addr string, asked *atomic.Value) func(context.Context, string, string) (net.Conn, error) {
	return func(ctx context.Context, network, a string) (net.Conn, error) {
		asked.Store(a)
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestHandshake: a verified handshake with the upstream passes, sending
// no HTTP request; the certificate is checked for the URL's host (the
// ServerName), at the URL's port or the scheme's default.
func TestHandshake(t *testing.T) {
	srv, roots, requests := upstream(t, "api.example.com")
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	for _, tc := range []struct {
		desc, url, wantAddr string
	}{
		{desc: "explicit port", url: "https://api.example.com:" + port + "/v2", wantAddr: "api.example.com:" + port},
		{desc: "default port", url: "https://API.example.com", wantAddr: "API.example.com:443"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			var asked atomic.Value
			err := Check(context.Background(), mustURL(t, tc.url), Options{RootCAs: roots, dial: dialTo(srv.Listener.Addr().String(), &asked)})
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			if got := asked.Load(); got != tc.wantAddr {
				t.Errorf("dialled %v, want %s", got, tc.wantAddr)
			}
		})
	}
	if n := requests.Load(); n != 0 {
		t.Errorf("the upstream was sent %d HTTP requests, want none", n)
	}
}

// TestHandshakeIPLiteral: an upstream named by its address is verified
// against the certificate's IP addresses, with the real dialer.
func TestHandshakeIPLiteral(t *testing.T) {
	srv, roots, requests := upstream(t, "127.0.0.1")
	if err := Check(context.Background(), mustURL(t, srv.URL), Options{RootCAs: roots}); err != nil {
		t.Fatalf("Check(%s): %v", srv.URL, err)
	}
	if n := requests.Load(); n != 0 {
		t.Errorf("the upstream was sent %d HTTP requests, want none", n)
	}
}

// TestFailures: each way an upstream can be unreachable is an *Error
// naming the host and the step that failed.
func TestFailures(t *testing.T) {
	srv, roots, requests := upstream(t, "api.example.com")
	other, _, _ := upstream(t, "127.0.0.1")
	plain := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(plain.Close)
	closed := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().String()
	}()
	// A listener that accepts and says nothing: the handshake times out.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { silent.Close() })
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
		}
	}()
	var asked atomic.Value
	for _, tc := range []struct {
		desc, url string
		opts      Options
		step      Step
		host      string
		want      string
	}{
		{desc: "name does not resolve", url: "https://nonexistent.invalid",
			step: Resolve, host: "nonexistent.invalid:443"},
		{desc: "certificate for another host", url: "https://127.0.0.1:" + port(srv.URL), opts: Options{RootCAs: roots},
			step: Handshake, host: "127.0.0.1:" + port(srv.URL), want: "doesn't contain any IP SANs"},
		{desc: "certificate for another name", url: "https://api.example.org", opts: Options{RootCAs: roots, dial: dialTo(srv.Listener.Addr().String(), &asked)},
			step: Handshake, host: "api.example.org:443", want: "certificate is valid for api.example.com, not api.example.org"},
		{desc: "certificate of an unknown CA", url: other.URL,
			step: Handshake, host: strings.TrimPrefix(other.URL, "https://"), want: "certificate signed by unknown authority"},
		{desc: "nothing listening", url: "https://" + closed, opts: Options{RootCAs: roots},
			step: Connect, host: closed, want: "connection refused"},
		{desc: "no TLS answer", url: "https://" + silent.Addr().String(), opts: Options{RootCAs: roots, Timeout: 200 * time.Millisecond},
			step: Handshake, host: silent.Addr().String(), want: "no answer within 200ms"},
		{desc: "plain HTTP server", url: "https://" + strings.TrimPrefix(plain.URL, "http://"), opts: Options{RootCAs: roots},
			step: Handshake, host: strings.TrimPrefix(plain.URL, "http://")},
		{desc: "http upstream not allowed", url: plain.URL,
			step: Scheme, host: strings.TrimPrefix(plain.URL, "http://"), want: "ALLOW_INSECURE_UPSTREAM"},
		{desc: "http upstream, nothing listening", url: "http://" + closed, opts: Options{AllowInsecure: true},
			step: Connect, host: closed, want: "connection refused"},
		{desc: "another scheme", url: "ftp://api.example.com",
			step: Scheme, host: "api.example.com", want: "ftp"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			start := time.Now()
			err := Check(context.Background(), mustURL(t, tc.url), tc.opts)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Check(%s) = %v, want an *Error", tc.url, err)
			}
			if e.Step != tc.step || e.Host != tc.host {
				t.Errorf("Check(%s): step %q host %q, want step %q host %q (%v)", tc.url, e.Step, e.Host, tc.step, tc.host, err)
			}
			if !strings.Contains(err.Error(), tc.host) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Check(%s) = %q, want the host %s and %q in it", tc.url, err, tc.host, tc.want)
			}
			if took := time.Since(start); took > 6*time.Second {
				t.Errorf("Check(%s) took %v", tc.url, took)
			}
		})
	}
	if n := requests.Load(); n != 0 {
		t.Errorf("the upstream was sent %d HTTP requests, want none", n)
	}
}

// TestInsecureUpstream: an http:// upstream, where allowed, passes once a
// TCP connection is made; nothing is sent on it.
func TestInsecureUpstream(t *testing.T) {
	var requests atomic.Int32
	plain := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { requests.Add(1) }))
	t.Cleanup(plain.Close)
	if err := Check(context.Background(), mustURL(t, plain.URL), Options{AllowInsecure: true}); err != nil {
		t.Fatalf("Check(%s): %v", plain.URL, err)
	}
	if n := requests.Load(); n != 0 {
		t.Errorf("the upstream was sent %d HTTP requests, want none", n)
	}
}

// TestContextEnds: the caller's context bounds the whole check.
func TestContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	srv, roots, _ := upstream(t, "127.0.0.1")
	err := Check(ctx, mustURL(t, srv.URL), Options{RootCAs: roots})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Check with an ended context = %v, want context.Canceled", err)
	}
}

func port(rawURL string) string {
	u, _ := url.Parse(rawURL)
	return u.Port()
}

// TestInvalidNamesAskNoNameServer: a host under .invalid (RFC 6761) fails
// to resolve without a dial or a lookup, so checking the example settings
// sends nothing off the machine.
func TestInvalidNamesAskNoNameServer(t *testing.T) {
	for _, raw := range []string{"https://nonexistent.invalid", "https://API.Example.INVALID.:8443"} {
		u, _ := url.Parse(raw)
		dialled := false
		err := Check(context.Background(), u, Options{dial: func(context.Context, string, string) (net.Conn, error) {
			dialled = true
			return nil, errors.New("dialled")
		}})
		var e *Error
		if !errors.As(err, &e) || e.Step != Resolve || dialled {
			t.Errorf("%s: err %v, dialled %v; want a resolve error and no dial", raw, err, dialled)
		}
	}
}
