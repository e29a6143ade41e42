// Package demo holds fakes of the services credproxy talks to: an identity
// service issuing short-lived tokens (VMware Cloud Services) and an echo
// API that accepts only currently valid tokens.
//
// They mirror the wire formats of PROTOCOLS.md, quirks included, and are
// served on loopback only: by `credproxy demo`, and by the tests of every
// package, which assert against what the fakes recorded.
package demo
