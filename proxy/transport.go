package proxy

import (
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

// NewTransport returns the transport of requests to upstream APIs:
// net/http's own, tuned. Every byte of HTTP on the upstream side is
// net/http's: its per-connection read loop is what drops a connection on
// which an upstream sent more than its answer ("unsolicited response"), so
// those bytes never become another client's answer. Connections are
// pooled by scheme, host and port.
//
// TLS is verified against the system roots; SSL_CERT_FILE and SSL_CERT_DIR
// add a private CA. No proxy is taken from the environment: a sidecar
// inherits the HTTPS_PROXY its scripts use, which may be credproxy itself,
// and following it would loop. HTTP/2 is used where the upstream offers
// it. Compression is left to the client, so bodies pass through byte for
// byte.
func NewTransport() *http.Transport {
	return &http.Transport{
		Proxy:                  nil,
		DialContext:            outbound.Dialer().DialContext,
		TLSClientConfig:        outbound.TLSConfig(),
		TLSHandshakeTimeout:    outbound.TLSHandshakeTimeout,
		ResponseHeaderTimeout:  UpstreamResponseHeaderTimeout,
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: maxUpstreamHeaderBytes,
		MaxIdleConns:           maxIdleConns,
		MaxIdleConnsPerHost:    maxIdleConnsPerHost,
		IdleConnTimeout:        idleConnTimeout,
		DisableCompression:     true,
		ForceAttemptHTTP2:      true,
	}
}
