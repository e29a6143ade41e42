package exchange

import (
	"crypto/tls"
	"net"
	"net/http"
	"time"
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
			Proxy: nil,
			DialContext: (&net.Dialer{
				Timeout:   10 * time.Second,
				KeepAlive: 30 * time.Second,
			}).DialContext,
			TLSClientConfig:        &tls.Config{MinVersion: tls.VersionTLS12},
			TLSHandshakeTimeout:    10 * time.Second,
			ResponseHeaderTimeout:  30 * time.Second,
			MaxResponseHeaderBytes: 64 << 10,
			IdleConnTimeout:        90 * time.Second,
			MaxIdleConnsPerHost:    2,
			ForceAttemptHTTP2:      true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
