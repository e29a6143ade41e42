// Package outbound holds what every outbound connection of credproxy
// shares, to identity services and to upstream APIs alike: how it dials
// and how it verifies TLS. Each caller builds its own http.Transport with
// its own pool sizes and timeouts on top.
package outbound

import (
	"crypto/tls"
	"net"
	"time"
)

// Limits of a connection being set up.
const (
	// DialTimeout bounds connecting.
	DialTimeout = 10 * time.Second
	// TLSHandshakeTimeout bounds the TLS handshake.
	TLSHandshakeTimeout = 10 * time.Second
	// keepAlive is the TCP keep-alive period of every connection.
	keepAlive = 30 * time.Second
)

// Dialer returns the dialer of outbound connections: bounded connect,
// TCP keep-alive. It never goes through a proxy: a sidecar inherits the
// HTTPS_PROXY of the scripts it serves, which may be credproxy itself.
func Dialer() *net.Dialer {
	return &net.Dialer{Timeout: DialTimeout, KeepAlive: keepAlive}
}

// TLSConfig returns the client TLS settings: TLS 1.2 at least, verified
// against the system roots (SSL_CERT_FILE and SSL_CERT_DIR add a private
// CA). Each call returns a new config, so that callers may set RootCAs or
// ServerName without touching another's.
func TLSConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12}
}
