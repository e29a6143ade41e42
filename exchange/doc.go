// Package exchange turns a long-lived credential into a short-lived access
// token: one Source per credential kind.
//
// A Source does one exchange per call and keeps no access token: caching,
// renewal, backoff and deduplication belong to package tokencache, which
// wraps any Source. The one thing a Source keeps is OAuth2RefreshToken's
// rotated refresh token, the credential itself once the provider has
// replaced it (also written back to its file when that is writable).
// Secrets configured through *_FILE variables are read again at every
// Fetch, so a rotated Kubernetes Secret takes effect at the next exchange
// (for a rotated refresh token, a change of the file still wins over the
// one kept).
//
// Failures reported by an identity service are returned as *Error, which
// carries the HTTP status, the service's own message and request ID (for a
// support ticket) and whether retrying with the same credential can help.
// Neither errors nor Tokens ever format a secret: tokens travel as
// secret.Secret, and everything a service sent that goes into an error
// (its message, codes, request ID, headers, and net/http's own text about
// a broken answer) is scrubbed, as it is taken, of every credential the
// exchange sent and every token the answer held, in any encoding, case or
// 8-byte piece (see secret.Redactor).
//
// What an exchange learns about the long-lived credential (a refresh
// token's expiry from refresh_expires_in, a rotated refresh token and
// whether it was written back) travels forward with the Token it
// returns, as Token.Credential (CredentialNews), and not through
// callbacks set on the Source or a reporter interface it would
// implement. Why: a Source is then complete once constructed, with no
// hook to be found by type assertion and set afterwards; the fact
// arrives with the exchange that produced it, in its order, on the
// goroutine that consumes tokens anyway (tokencache's loop, which hands
// it to its OnExchange hook as Exchange.Credential, even when it refuses
// the token itself; `credproxy check`, which reads it off its one
// token); and a Source that learns nothing needs no code at all. A
// declared interface (CredentialReporter) would have kept one
// post-construction setter per Source kind, and every wrapper of a
// Source would have had to forward it.
package exchange
