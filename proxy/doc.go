// Package proxy puts credentials on the wire: a reverse proxy per route
// (the app calls http://127.0.0.1:8080 instead of the API) and the forward
// proxy for all routes (HTTPS_PROXY; TLS intercepted only for route hosts,
// other hosts tunnelled untouched or refused), both through one injection
// step and one upstream transport, net/http's own.
//
// The proxy knows a route's token supply (Tokens) and header rule, nothing
// about how tokens are made. Injection refuses to put a route's
// credential on a request whose destination is not one of the route's
// hosts over HTTPS, replaces any credential the client sent, renews and
// replays once on an upstream 401, and fails closed (503) rather than send
// a request without a valid credential. The forward proxy never reaches
// credproxy's own listeners.
//
// A route is built once, by NewRoute. The forward proxy lives as
// ghostunnel's does: NewForward starts nothing, Serve serves its listener
// and the connections it intercepts, Shutdown or Close stop it (either
// may be called twice, or without Serve), and Wait sees it finished.
package proxy
