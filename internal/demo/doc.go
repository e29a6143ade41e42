// Package demo holds in-memory fakes of the services credproxy talks to:
// VMware Cloud Services issuing short-lived tokens (CSP), an observability
// API that accepts only currently valid tokens and echoes what it received
// (Echo), Splunk Observability Cloud sessions (Splunk) and a generic
// OAuth 2.0 token endpoint (OAuth2). Control is the knob `credproxy demo`
// serves beside its CSP to simulate an outage of it.
//
// The fakes mirror the wire formats of docs/protocols.md 1, 2 and 3, quirks
// included (raw, not form-encoded, Basic credentials for CSP; expires_in one
// second short of the lifetime), because credproxy's tests are only as good as the
// fakes' fidelity. They record what they received so that tests assert the
// exact request, and they take an injected clock so that tests drive
// expiry without sleeping.
//
// They are test and demonstration code: they hold credentials in memory,
// make no effort to resist an attacker, and must only be served on loopback (httptest.NewServer, or
// `credproxy demo`, which binds 127.0.0.1). They never echo a credential:
// answers carry at most a fingerprint or the last four characters.
package demo
