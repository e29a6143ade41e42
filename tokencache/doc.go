// Package tokencache holds one route's access token and keeps it fresh.
//
// A Cache wraps any exchange.Source. Its Run loop is the only goroutine
// that exchanges and the only writer of the current token, which is
// published through an atomic.Pointer: reading a valid token (the hot path
// of every proxied request) is two atomic loads (the token, and a flag a
// timer clears when it gets within a second of unusable), with no clock
// read, no lock and no allocation; only in that last second is the
// monotonic clock read. Deduplication therefore needs no flag: however
// many requests wait, however many upstream 401s arrive, however many
// Renew calls (credproxy's SIGHUP) come together, there is one loop and so
// at most one exchange in flight per route.
//
// The lifecycle is the contract of docs/design.md, "Token lifecycle":
//
//   - the first exchange starts as soon as Run does;
//   - a token is renewed up to 10% of its lifetime before RefreshAt of it
//     has passed (jitter, so that a fleet of sidecars does not synchronise
//     its exchanges), never later, so the time left to ride out an outage
//     holds for every sidecar (docs/design.md "Token lifecycle" says why
//     the jitter comes before RefreshAt rather than around it);
//   - after a failure the loop retries with exponential backoff and full
//     jitter (1 s doubling to 60 s); a rejected credential (a 4xx other
//     than 408, 425 and 429) is retried between half the ceiling and the
//     ceiling; a Retry-After is honoured, except that while a
//     usable token is held the retry comes no later than halfway to the
//     moment it stops being usable, so that a renewable token is never let
//     expire for want of an attempt;
//   - meanwhile the old token is served until it is within the expiry
//     margin of its expiry, then requests fail closed: Token waits up to
//     TokenWait for an exchange and returns *UnavailableError;
//   - two exchanges of one route never start less than MinGap apart;
//   - an upstream 401 renews at once, unless a token that such a renewal
//     obtained was refused too before any request succeeded with it (a
//     path that refuses every token): then 401-triggered renewals are
//     held back, 1 s doubling to 5 min, until a request succeeds
//     (Succeeded, two atomic loads on the hot path).
//
// The token metrics live here, beside what changes them: NewMetrics
// registers them once, and each Cache given them (Options.Metrics) counts
// its exchanges and registers its route's gauges. Without them a Cache
// counts nothing and needs no registry.
//
// Time comes from package time. The lifecycle tests run the cache inside a
// testing/synctest bubble, where time is virtual: they advance through
// hours of renewals and backoff without sleeping, to the nanosecond. The
// jitter source is injected (Options.Rand) so tests can pin its extremes.
package tokencache
