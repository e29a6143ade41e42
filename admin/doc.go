// Package admin serves credproxy's admin listener: /healthz, /readyz, the
// status page, /metrics (with the token metrics it owns), the forward
// proxy's /ca.pem, and the token APIs that hand a route's token to a local
// caller.
//
// It reads the routes' token state (tokencache) and serves the metrics
// registry the proxy's metrics are registered on; nothing it serves ever
// holds a secret, and a token leaves it only in a token API's answer to a
// caller that passed its guards.
package admin
