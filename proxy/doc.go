// Package proxy puts credentials on the wire: the reverse proxy (one
// listener per route), the shared injection and 401-replay logic, the
// upstream transport and the admin listener.
//
// The proxy knows a route's token supply (Tokens) and header rule, nothing
// about how tokens are made. Injection is one function for every mode: it
// refuses to put a route's credential on a request whose destination is
// not one of the route's hosts over HTTPS, and it fails closed (503)
// rather than send a request without a valid credential.
package proxy
