package exchange

import (
	"fmt"
	"net/http"
	"time"

	"github.com/credproxy/credproxy/internal/outbound"
)

// NewHTTPClient returns the client credproxy uses for identity services.
//
// TLS is verified against the system roots (SSL_CERT_FILE and SSL_CERT_DIR
// add a private CA). No proxy is taken from the environment: a sidecar
// inherits the HTTPS_PROXY of the scripts it serves, which may point at
// credproxy itself. Redirects are returned, not followed, so a credential
// is never re-sent to a host it was not configured for. The overall
// deadline of an exchange comes from the caller's context.
func NewHTTPClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:                  nil,
			DialContext:            outbound.Dialer().DialContext,
			TLSClientConfig:        outbound.TLSConfig(),
			TLSHandshakeTimeout:    outbound.TLSHandshakeTimeout,
			ResponseHeaderTimeout:  30 * time.Second,
			MaxResponseHeaderBytes: 64 << 10,
			IdleConnTimeout:        90 * time.Second,
			MaxIdleConnsPerHost:    2,
			ForceAttemptHTTP2:      true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// sender returns the client an exchange is sent with: a shallow copy of
// client that never follows a redirect, whatever client's own policy. A
// nil client, or one without a Transport (which would mean
// http.DefaultTransport and its proxy taken from the environment), is a
// programming error and is reported as one; nothing falls back to
// http.DefaultClient.
func sender(op string, client *http.Client) (*http.Client, error) {
	switch {
	case client == nil:
		return nil, fmt.Errorf("%s: no HTTP client given (a programming error: build the Source with exchange.NewHTTPClient())", op)
	case client.Transport == nil:
		return nil, fmt.Errorf("%s: the HTTP client has no Transport, and http.DefaultTransport takes a proxy from the environment (a programming error: use exchange.NewHTTPClient())", op)
	}
	cl := *client
	cl.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &cl, nil
}
