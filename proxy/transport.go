package proxy

import (
	"crypto/x509"
	"net/http"
	"time"

	"github.com/credproxy/credproxy/internal/outbound"
)

// Limits of the upstream transport.
const (
	// UpstreamResponseHeaderTimeout bounds the wait for an answer's
	// headers once the request is sent: an upstream that takes a request
	// and says nothing gets 504 after it, and the request is not sent
	// again.
	UpstreamResponseHeaderTimeout = 2 * time.Minute
	// maxUpstreamHeaderBytes bounds an answer's headers.
	maxUpstreamHeaderBytes = 1 << 20
	// Pool sizes: one sidecar carries all of an app's calls to few hosts,
	// so each host may keep many idle connections.
	maxIdleConns        = 1024
	maxIdleConnsPerHost = 256
	idleConnTimeout     = 90 * time.Second
)

// Transport is the transport of requests to upstream APIs: net/http's
// own, tuned, in two pools. A request goes upstream in the HTTP version its
// client used: HTTP/1.1 for HTTP/1.x clients (every reverse-mode client,
// and most forward ones), HTTP/2 for a client that spoke HTTP/2 inside an
// intercepted tunnel (gRPC among them), where the upstream offers it. So
// an HTTP/1.1 client's requests are not funnelled into one multiplexed
// connection, which costs CPU and latency per request (bench/README.md),
// and what a client relies on (HTTP/2's streams, HTTP/1.1's upgrades)
// reaches the upstream as it was asked. nginx and HAProxy, too, speak
// HTTP/1.1 to their upstreams unless told otherwise.
//
// Every byte of HTTP on the upstream side is net/http's: its
// per-connection read loop is what drops a connection on which an
// upstream sent more than its answer ("unsolicited response"), so those
// bytes never become another client's answer. Connections are pooled by
// scheme, host and port.
//
// TLS is verified against the system roots, SSL_CERT_FILE and SSL_CERT_DIR
// adding a private CA. No proxy is taken from the environment: a sidecar
// inherits the HTTPS_PROXY its scripts use, which may be credproxy itself,
// and following it would loop. Compression is left to the client, so
// bodies pass through byte for byte.
type Transport struct {
	// h1 speaks HTTP/1.1 only; h2 offers HTTP/2 and falls back to
	// HTTP/1.1 where the upstream does not take it.
	h1, h2 *http.Transport
}

var _ http.RoundTripper = (*Transport)(nil)

// NewTransport returns the upstream transport. roots, when not nil,
// replaces the system's roots (tests); credproxy passes nil.
func NewTransport(roots *x509.CertPool) *Transport {
	t := &Transport{h1: newHTTPTransport(roots), h2: newHTTPTransport(roots)}
	t.h1.Protocols = new(http.Protocols)
	t.h1.Protocols.SetHTTP1(true)
	t.h2.Protocols = new(http.Protocols)
	t.h2.Protocols.SetHTTP1(true)
	t.h2.Protocols.SetHTTP2(true)
	return t
}

func newHTTPTransport(roots *x509.CertPool) *http.Transport {
	tc := outbound.TLSConfig()
	tc.RootCAs = roots
	return &http.Transport{
		Proxy:                  nil,
		DialContext:            outbound.Dialer().DialContext,
		TLSClientConfig:        tc,
		TLSHandshakeTimeout:    outbound.TLSHandshakeTimeout,
		ResponseHeaderTimeout:  UpstreamResponseHeaderTimeout,
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: maxUpstreamHeaderBytes,
		MaxIdleConns:           maxIdleConns,
		MaxIdleConnsPerHost:    maxIdleConnsPerHost,
		IdleConnTimeout:        idleConnTimeout,
		DisableCompression:     true,
	}
}

// RoundTrip sends req in its client's HTTP version.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.ProtoMajor == 2 {
		return t.h2.RoundTrip(req)
	}
	return t.h1.RoundTrip(req)
}

// CloseIdleConnections closes the idle connections of both pools.
func (t *Transport) CloseIdleConnections() {
	t.h1.CloseIdleConnections()
	t.h2.CloseIdleConnections()
}

// http1 returns a copy of the HTTP/1.1 transport, for traffic that is not
// a route's (the forward proxy's plain-HTTP requests to other hosts).
func (t *Transport) http1() *http.Transport { return t.h1.Clone() }
