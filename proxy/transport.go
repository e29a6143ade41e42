package proxy

import (
	"crypto/x509"
	"net/http"
	"sync"
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
// bytes never become another client's answer. That check races with the
// pool, though: net/http puts a connection back in the pool before its
// read loop looks for such bytes, and an answer that arrives after the
// next request was sent cannot be told from that request's own by any
// HTTP/1.1 client. So connections are never shared between routes (two
// credentials, two identities): each route has a pool of its own
// (ForRoute), and so may each caller identity later (ForIdentity). On a
// route's HTTP/1.1 connections, bytes that arrive while the connection
// sits idle fail it at once (guardedConn), before they can be taken for
// the next request's answer. Within a pool, connections are keyed by
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
	// guarded is set on the pools of a route or identity: their
	// connections are guardedConns and requests are watched.
	guarded bool

	// mu guards routes and identities: pools are made when a route's
	// proxy is built (and, later, at a caller's first request), never
	// looked up per request by a route.
	mu         sync.Mutex
	routes     map[string]*Transport
	identities *keyedPools
}

var _ http.RoundTripper = (*Transport)(nil)

// NewTransport returns the upstream transport. roots, when not nil,
// replaces the system's roots (tests); credproxy passes nil. Its own
// pools carry traffic that is no route's; routes get theirs from
// ForRoute.
func NewTransport(roots *x509.CertPool) *Transport {
	t := &Transport{h1: newHTTPTransport(roots), h2: newHTTPTransport(roots)}
	t.h1.Protocols = new(http.Protocols)
	t.h1.Protocols.SetHTTP1(true)
	t.h2.Protocols = new(http.Protocols)
	t.h2.Protocols.SetHTTP1(true)
	t.h2.Protocols.SetHTTP2(true)
	return t
}

// guardedClone returns new, empty pools with t's settings, whose
// connections are guarded.
func (t *Transport) guardedClone() *Transport {
	p := &Transport{h1: t.h1.Clone(), h2: t.h2.Clone(), guarded: true}
	if !t.guarded { // a clone of guarded pools has the guarded dialers
		guardDials(p.h1, []string{"http/1.1"})
		guardDials(p.h2, []string{"h2", "http/1.1"})
	}
	return p
}

// ForRoute returns the pools of the route named name, made on the first
// call: upstream connections are never shared between routes, so an
// answer an upstream sends where none belongs (a bug, or a hostile
// upstream) can reach, at worst, another client of the same route. A
// route's reverse and forward proxies share its pools.
func (t *Transport) ForRoute(name string) *Transport {
	t.mu.Lock()
	defer t.mu.Unlock()
	if p, ok := t.routes[name]; ok {
		return p
	}
	if t.routes == nil {
		t.routes = map[string]*Transport{}
	}
	p := t.guardedClone()
	t.routes[name] = p
	return p
}

// ForIdentity returns the pools of one caller identity (a client key's
// name, a peer uid) within t, a route's pools: callers of different
// identities must not share connections either. At most
// maxIdentityPools are kept; the least recently used beyond that is
// dropped and its idle connections closed (those in use close when
// their answer is done and they sit idle for idleConnTimeout).
func (t *Transport) ForIdentity(key string) *Transport {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.identities == nil {
		t.identities = newKeyedPools(maxIdentityPools, t.guardedClone)
	}
	return t.identities.get(key)
}

// maxIdentityPools bounds the identity pools of a route.
const maxIdentityPools = 256

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

// RoundTrip sends req in its client's HTTP version. On a route's pools
// the request is watched: its connection is told when it is in use and
// when it goes back to the pool (guardedConn).
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.guarded {
		req = watchConn(req)
	}
	if req.ProtoMajor == 2 {
		return t.h2.RoundTrip(req)
	}
	return t.h1.RoundTrip(req)
}

// CloseIdleConnections closes the idle connections of t's pools and of
// every route's and identity's.
func (t *Transport) CloseIdleConnections() {
	t.h1.CloseIdleConnections()
	t.h2.CloseIdleConnections()
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, p := range t.routes {
		p.CloseIdleConnections()
	}
	if t.identities != nil {
		t.identities.closeIdle()
	}
}

// http1 returns a copy of the HTTP/1.1 transport, for traffic that is not
// a route's (the forward proxy's plain-HTTP requests to other hosts): a
// pool of its own, whose dialer the caller may wrap.
func (t *Transport) http1() *http.Transport { return t.h1.Clone() }
