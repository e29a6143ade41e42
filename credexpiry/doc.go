// Package credexpiry watches when each route's long-lived credential
// expires and warns ahead of it.
//
// The access token renews itself; the secret behind it does not. A CSP API
// token has a lifetime set when it was made, a refresh token may expire,
// and an operator may simply know the date. A Watcher learns that date
// from up to three places (docs/design.md, "Long-lived credential expiry"):
//
//   - the configuration (CREDENTIAL_EXPIRES_AT), given to New;
//   - a Lookup that asks the identity service (CSP's api-tokens/details,
//     exchange.CSPAPIToken.CredentialExpiry), at start and every 6 hours;
//   - what an exchange's answer says (refresh_expires_in), told to Observe.
//
// The earliest date known is the credential's expiry. It is logged once
// as a warning at 30, 7 and 1 days left and once as an error when it has
// passed, per process; it is shown through Status (/readyz, the status
// page), OnChange, and the gauge credproxy_credential_expiry_timestamp_seconds
// (NewMetrics, Options.Metrics).
//
// Report is the one-shot form, for credproxy check: the same sources
// asked once, and a warning from the same thresholds, so that check and
// a running credproxy agree on whether an expiry is worth a warning.
//
// Why a package of its own, and not part of tokencache: the cache's job is
// the access token, on a schedule of minutes, and its lookups decide
// readiness and serving. The credential's expiry is another object, on a
// schedule of hours and days, learnt from a different endpoint whose
// failures must never touch serving or readiness. Keeping it out of the
// cache makes that structural: nothing here can delay, fail or change a
// token, and a broken or missing details endpoint (an on-premises identity
// service) costs a debug line. Its only link to the cache is the expiry an
// exchange reports, which arrives through Observe.
//
// Time comes from package time, as in tokencache: the tests run a Watcher
// in a testing/synctest bubble and drive the 6-hour lookups and the
// 30-day countdown in virtual time, to the nanosecond, without sleeping.
// The jitter of the lookup schedule is injected (Options.Rand).
package credexpiry
