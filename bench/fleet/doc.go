// Package fleet simulates a fleet of credproxy sidecars against one
// identity service, in virtual time, to show what the renewal policy does
// at scale: exchanges per second at the service during a rollout, in
// steady state, through an identity-service outage and with sidecars
// restarting, and which sidecars fail closed (hold no usable token).
//
// Each credproxy sidecar is a real tokencache.Cache, run by its own Run
// loop over a fake exchange.Source; the identity service they share
// answers every exchange at once (after a fixed latency), or with a 503
// during an outage, and counts exchanges per second. For comparison,
// wavefront-proxy's policy (docs/protocols.md 1d: renew at expires_in -
// 180 s, no jitter, a fixed 10 s retry after a failure) runs against the
// same service as a small loop of its own.
//
// Simulate uses package time only. Called inside a testing/synctest
// bubble (synctest.Test), the clock is virtual: a day of 10,000 sidecars
// takes seconds, and the figures are the same on every machine and under
// any load, since nothing depends on real time. Outside a bubble it runs
// in real time. The tests in this package run it in bubbles; `go run
// ./bench -fleet` runs them with 10,000 sidecars, and TestFleetFigures
// writes bench/fleet.json and bench/fleet.svg.
package fleet
