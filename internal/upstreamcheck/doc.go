// Package upstreamcheck tells whether an upstream API can be reached, for
// `credproxy check`: it resolves the upstream's host, connects with the
// dialer every outbound connection uses (internal/outbound), and
// completes a TLS handshake verified for the host, then hangs up. It
// sends no HTTP request, so no credential ever leaves with it.
//
// Without it a misspelt upstream host passes check, and the first request
// through credproxy gets 502.
package upstreamcheck
