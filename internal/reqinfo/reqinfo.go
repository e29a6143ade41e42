// Package reqinfo carries what the edge learns about a proxied request
// (the caller's identity) to the proxy, and what the proxy did with it
// (the token it sent) back to the edge's audit record, through the
// request's context.
//
// It is allocated only when the edge's gate is on: a request without an
// Info in its context takes the proxy's unchanged path.
package reqinfo

import (
	"context"

	"github.com/credproxy/credproxy/internal/secret"
)

// Info is one request's shared record. The gate creates it before the
// request reaches the proxy and reads it after the proxy's handler
// returned; the proxy writes it while it serves the request. Those steps
// are ordered (a handler's return follows its transport's round trip), so
// Info needs no lock.
type Info struct {
	// Identity is the caller's identity for connection pooling ("key:ci",
	// "uid:1000"); empty: none, the route's pools.
	Identity string
	// Token is the last credential the proxy put on the request (the
	// replay's, after an upstream 401); empty when none was sent.
	Token secret.Secret
}

type infoKey struct{}

// With returns ctx carrying info.
func With(ctx context.Context, info *Info) context.Context {
	return context.WithValue(ctx, infoKey{}, info)
}

// From returns the Info in ctx, or nil.
func From(ctx context.Context) *Info {
	info, _ := ctx.Value(infoKey{}).(*Info)
	return info
}

type callerKey struct{}

// WithCaller returns ctx naming the caller a listener in front of the
// route authenticated (the forward listener's key name), for the gate of
// a route that has no client keys of its own.
func WithCaller(ctx context.Context, name string) context.Context {
	return context.WithValue(ctx, callerKey{}, name)
}

// Caller returns the name WithCaller put in ctx, or "".
func Caller(ctx context.Context) string {
	name, _ := ctx.Value(callerKey{}).(string)
	return name
}
