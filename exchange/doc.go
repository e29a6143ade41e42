// Package exchange turns a long-lived credential into a short-lived access
// token: one Source per credential kind.
//
// A Source does one exchange per call and keeps nothing: caching, renewal,
// backoff and deduplication belong to package tokencache, which wraps any
// Source. Secrets configured through *_FILE variables are read again at
// every Fetch, so a rotated Kubernetes Secret takes effect at the next
// exchange.
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
package exchange
