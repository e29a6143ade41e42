package exchange

import (
	"context"
	"time"

	"github.com/credproxy/credproxy/internal/secret"
)

// Token is an access token and its expiry.
type Token struct {
	// Value is the token to inject.
	Value secret.Secret
	// Expiry is when the service stops accepting the token. The zero time
	// means the token does not expire (the static kind).
	Expiry time.Time
}

// Equal reports whether t and o are the same token with the same expiry.
// Tokens are not comparable with ==, as secret.Secret is not.
func (t Token) Equal(o Token) bool { return t.Value.Equal(o.Value) && t.Expiry.Equal(o.Expiry) }

// Source performs one exchange of a credential for an access token.
//
// Fetch does no caching and no retrying. It may be called concurrently,
// although tokencache.Cache never does so for one route; it honours ctx for
// its whole duration, including reading the response body.
type Source interface {
	Fetch(ctx context.Context) (Token, error)
}

// SourceFunc adapts a function to Source.
type SourceFunc func(ctx context.Context) (Token, error)

// Fetch calls f.
func (f SourceFunc) Fetch(ctx context.Context) (Token, error) { return f(ctx) }

// Releaser is implemented by sources whose tokens are sessions that should
// be ended when no longer used (Splunk Observability sessions). The cache
// releases a token after it has switched to its successor, and the current
// one when it stops.
type Releaser interface {
	Release(ctx context.Context, tok Token) error
}
