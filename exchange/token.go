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
	// Credential is what the exchange that obtained the token learnt of
	// the long-lived credential behind it; nil when it learnt nothing
	// (every kind but oauth2-refresh-token, and a refresh whose answer
	// neither rotated the refresh token nor said when it expires). It is
	// news about this exchange, not a property of the token: Equal
	// ignores it, and tokencache moves it to the Exchange it reports,
	// so that the tokens it serves carry none.
	Credential *CredentialNews
}

// CredentialNews is what one exchange learnt of the long-lived credential
// it used. It travels forward with the Token, to whoever consumes the
// Source's tokens (tokencache, which hands it to its OnExchange hook;
// credproxy check), rather than through callbacks set on the Source (see
// the package documentation).
type CredentialNews struct {
	// ExpiryReported says the answer said when the credential expires
	// (refresh_expires_in, an extension some providers send, Keycloak
	// among them); ExpiresAt is then that expiry, counted from when the
	// request was sent, and the zero time for 0, which such providers
	// send for a refresh token without expiry (Keycloak's offline
	// tokens). An answer without it leaves ExpiryReported false.
	ExpiryReported bool
	ExpiresAt      time.Time
	// Rotated is set when the provider rotated the refresh token: the new
	// one is used from then on.
	Rotated *Rotation
}

// Rotation is what became of a rotated refresh token.
type Rotation struct {
	// WrittenBack says the new refresh token was written back to the file
	// the configured one came from. False with a nil Err: there is no
	// file (the token was configured as a value); it is kept in memory.
	WrittenBack bool
	// Err is why writing it back failed; the new token is then kept in
	// memory only, and a restart reuses the old one. It names the file,
	// never the token.
	Err error
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
